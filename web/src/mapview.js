// The map: fences and officers drawn on canvas (thousands of each stay smooth), restyled one by one.
/* global L */
import { ago, escapeHtml } from "./format.js";
import { fenceIdOf } from "./live.js";

// Outlines at least 2 px wide: a 50 m hot spot on a city-wide view still shows its colour.
export const FENCE_STYLES = {
  inside: { color: "#1b5e20", weight: 3, fillColor: "#43a047", fillOpacity: 0.6 },
  "inside-due": { color: "#b71c1c", weight: 4, fillColor: "#43a047", fillOpacity: 0.6 },
  due: { color: "#b71c1c", weight: 3, fillColor: "#e53935", fillOpacity: 0.55 },
  idle: { color: "#455a64", weight: 2, fillColor: "#90a4ae", fillOpacity: 0.3 },
};
// Below this zoom level hot spots also get a ring (see drawBadges).
const BADGE_BELOW_ZOOM = 15;
// Fixes older than this are drawn faded (the officer may have moved on).
const STALE_S = 120;
const OFFICER_STYLES = {
  fresh: { radius: 5, color: "#ffffff", weight: 2, fillColor: "#1565c0", fillOpacity: 1, dashArray: null },
  stale: { radius: 5, color: "#1565c0", weight: 1, fillColor: "#90caf9", fillOpacity: 0.8, dashArray: null },
  lost: { radius: 8, color: "#d50000", weight: 3, fillColor: "#ffffff", fillOpacity: 0.9, dashArray: "4 3" },
};

// More changed boxes than this in a frame: the whole canvas is redrawn instead.
const MAX_PATCHES = 200;

// Leaflet's canvas redraws the union of the boxes of every shape that changed since the last frame:
// with changes spread over a city that is the whole map, all 5,000 fences (~150 ms in software).
// This renderer clears and redraws only the changed boxes, with the shapes that touch them, in one pass.
const PatchCanvas = L.Canvas.extend({
  _extendRedrawBounds(layer) {
    const b = layer._pxBounds;
    if (!b) return;
    const pad = (layer.options.weight || 0) + 1;
    this._patches = this._patches || [];
    this._patches.push([Math.floor(b.min.x - pad), Math.floor(b.min.y - pad), Math.ceil(b.max.x + pad), Math.ceil(b.max.y + pad)]);
  },

  _updatePaths() {
    this._patches = []; // everything is redrawn
    L.Canvas.prototype._updatePaths.call(this);
  },

  _redraw() {
    this._redrawRequest = null;
    const patches = this._patches || [];
    this._patches = [];
    this._redrawBounds = null;
    if (!patches.length || patches.length > MAX_PATCHES) {
      this._clear();
      this._draw();
      return;
    }
    const ctx = this._ctx;
    ctx.save();
    ctx.beginPath();
    for (const [x0, y0, x1, y1] of patches) {
      ctx.clearRect(x0, y0, x1 - x0, y1 - y0);
      ctx.rect(x0, y0, x1 - x0, y1 - y0);
    }
    ctx.clip(); // the union of the boxes
    this._drawing = true;
    for (let order = this._drawFirst; order; order = order.next) {
      const b = order.layer._pxBounds;
      if (b && touchesAny(b, patches)) order.layer._updatePath();
    }
    this._drawing = false;
    ctx.restore();
  },
});

function touchesAny(b, patches) {
  for (const [x0, y0, x1, y1] of patches) {
    if (b.min.x <= x1 && b.max.x >= x0 && b.min.y <= y1 && b.max.y >= y0) return true;
  }
  return false;
}

export function officerLook(device, nowS) {
  if (device.lost) return "lost";
  return nowS - device.ts > STALE_S ? "stale" : "fresh";
}

export class MapView {
  constructor(element, { tileUrl, tileAttribution, onFence, onOfficer }) {
    this.map = L.map(element, { preferCanvas: true, zoomControl: true, attributionControl: Boolean(tileUrl) });
    this.map.createPane("officers").style.zIndex = 450;
    this.fenceRenderer = new PatchCanvas({ padding: 0.2 });
    this.officerRenderer = new PatchCanvas({ padding: 0.2, pane: "officers" });
    if (tileUrl) {
      // Tiles that cannot be reached leave the plain background: fences and officers still show.
      // A relative URL is the service's own --basemap tiles, credited as the MBTiles file says.
      const host = new URL(tileUrl.replace("{s}", "a"), window.location.href).host;
      const credit = tileAttribution ?? `Map tiles: ${host}`;
      L.tileLayer(tileUrl, { maxZoom: 19, attribution: escapeHtml(credit) }).addTo(this.map);
    }
    this.fenceLayers = new Map();
    this.officerMarkers = new Map(); // device id -> marker, with the look it is drawn in (marker.look)
    this.officerGroup = L.featureGroup().addTo(this.map);
    this.officerGroup.bindTooltip((marker) => officerTooltip(marker.device));
    this.officerGroup.on("click", (e) => this.onOfficer(e.layer.device.id));
    this.onFence = onFence;
    this.onOfficer = onOfficer;
    this.selected = null;
  }

  // One layer group per kind, so one tooltip and one click handler serve thousands of shapes.
  // fit: frame every hot spot (at load; a reload of changed fences leaves the view where it is).
  drawFences(live, fit = true) {
    this.fenceGroup?.remove();
    this.fenceLayers.clear();
    this.fenceGroup = L.geoJSON(
      [...live.fences.values()].map((f) => f.feature),
      {
        renderer: this.fenceRenderer,
        style: (feature) => FENCE_STYLES[live.stateOf(fenceIdOf(feature))],
        onEachFeature: (feature, layer) => this.fenceLayers.set(fenceIdOf(feature), layer),
      },
    );
    this.fenceGroup.bindTooltip((layer) => fenceTooltip(live, fenceIdOf(layer.feature)), { sticky: true });
    this.fenceGroup.on("click", (e) => this.onFence(fenceIdOf(e.layer.feature)));
    this.fenceGroup.addTo(this.map);
    this.drawBadges(live);
    this.toggleBadges();
    if (!fit) return;
    const bounds = this.fenceGroup.getBounds();
    if (bounds.isValid()) this.map.fitBounds(bounds, { padding: [20, 20] });
    else this.map.setView([51.5, -0.12], 12);
  }

  // Zoomed out, a hot spot is a few pixels under its officers' marks: a ring in its colour around
  // its centre keeps its state visible; zoomed in, the polygon alone.
  drawBadges(live) {
    this.badgeGroup?.remove();
    this.fenceBadges = new Map();
    this.badgeGroup = L.featureGroup();
    for (const [id, layer] of this.fenceLayers) {
      const badge = L.circleMarker(layer.getBounds().getCenter(), { renderer: this.fenceRenderer, ...badgeStyle(live, id) });
      badge.fenceId = id;
      this.fenceBadges.set(id, badge);
      this.badgeGroup.addLayer(badge);
    }
    this.badgeGroup.bindTooltip((badge) => fenceTooltip(live, badge.fenceId));
    this.badgeGroup.on("click", (e) => this.onFence(e.layer.fenceId));
    const toggle = () => {
      const wanted = this.map.getZoom() < BADGE_BELOW_ZOOM;
      if (wanted !== this.map.hasLayer(this.badgeGroup)) wanted ? this.badgeGroup.addTo(this.map) : this.badgeGroup.remove();
    };
    this.map.off("zoomend", this.toggleBadges);
    this.toggleBadges = toggle;
    this.map.on("zoomend", toggle);
  }

  restyleFences(live, ids) {
    for (const id of ids) {
      const layer = this.fenceLayers.get(id);
      if (!layer) continue;
      const style = FENCE_STYLES[live.stateOf(id)];
      layer.setStyle(id === this.selected ? { ...style, weight: style.weight + 3 } : style);
      this.fenceBadges.get(id)?.setStyle(badgeStyle(live, id));
    }
  }

  select(live, fenceId) {
    const previous = this.selected;
    this.selected = fenceId;
    this.restyleFences(live, [previous, fenceId].filter((id) => id !== null));
  }

  // Place or move the markers of the given officers (all when ids is null); restyle those whose look changed.
  updateOfficers(live, ids, nowS) {
    for (const id of ids ?? live.devices.keys()) {
      const device = live.devices.get(id);
      if (!device || device.lat === null) continue;
      const look = officerLook(device, nowS);
      let marker = this.officerMarkers.get(id);
      if (!marker) {
        marker = L.circleMarker([device.lat, device.lon], { renderer: this.officerRenderer, ...OFFICER_STYLES[look] });
        marker.device = device;
        this.officerGroup.addLayer(marker);
        this.officerMarkers.set(id, marker);
      } else {
        const at = marker.getLatLng();
        if (at.lat !== device.lat || at.lng !== device.lon) marker.setLatLng([device.lat, device.lon]);
        if (marker.look !== look) marker.setStyle(OFFICER_STYLES[look]);
      }
      marker.look = look;
    }
  }

  // Fixes age without events: restyle the officers whose fix went stale since the last look.
  ageOfficers(live, nowS) {
    const changed = [];
    for (const [id, marker] of this.officerMarkers) {
      if (officerLook(marker.device, nowS) !== marker.look) changed.push(id);
    }
    this.updateOfficers(live, changed, nowS);
  }

  focusFence(id) {
    const layer = this.fenceLayers.get(id);
    if (layer) this.map.fitBounds(layer.getBounds(), { maxZoom: 17, padding: [40, 40] });
  }

  focusOfficer(id) {
    const marker = this.officerMarkers.get(id);
    if (marker) this.map.setView(marker.getLatLng(), Math.max(this.map.getZoom(), 16));
  }
}

function badgeStyle(live, id) {
  return { radius: 9, color: FENCE_STYLES[live.stateOf(id)].fillColor, weight: 3, opacity: 0.9, fill: false };
}

function fenceTooltip(live, id) {
  const fence = live.fences.get(id);
  const who = [...fence.inside.keys()].map((d) => live.devices.get(d)?.callsign ?? d);
  const due = fence.due ? ` · behind plan by ${Math.round(fence.due.shortfall_minutes)} min` : "";
  return `${escapeHtml(fence.name)}${due}<br>${who.length ? escapeHtml(who.join(", ")) : "nobody inside"}`;
}

function officerTooltip(device) {
  const name = device.callsign ?? device.id;
  const state = device.lost ? " · SIGNAL LOST" : "";
  return `${escapeHtml(name)} · fix ${ago(Date.now() / 1000 - device.ts)}${state}`;
}
