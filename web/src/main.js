// The control-room page: sign in with a viewer key, then a live map of hot spots and officers.
import { Api, EventStream, HttpError, sleep, Unauthorized } from "./api.js";
import { Live } from "./live.js";
import { MapView } from "./mapview.js";
import { Panels } from "./panels.js";

const KEY = "hotspots.apiKey"; // sessionStorage: gone when the tab closes
const NOTICE = "hotspots.notice";
const DUE_EVERY_MS = 15000;
const DUE_AFTER_VISIT_MS = 2000;
const AGE_EVERY_MS = 10000;
// A fence reload that failed is tried again after this long.
const FENCES_RETRY_MS = 5000;

const form = document.getElementById("signin");
form.addEventListener("submit", (e) => {
  e.preventDefault();
  const given = document.getElementById("signin-key").value.trim();
  if (given) start(given);
});
const key = sessionStorage.getItem(KEY);
if (key) start(key);
else showSignIn(sessionStorage.getItem(NOTICE) ?? "");
sessionStorage.removeItem(NOTICE);

function showSignIn(notice) {
  document.getElementById("signin-error").textContent = notice;
  form.hidden = false;
  form.querySelector("button").disabled = false;
}

// Drop the key and everything shown with it: a reload starts from the sign-in form.
function signOut(notice) {
  sessionStorage.removeItem(KEY);
  if (notice) sessionStorage.setItem(NOTICE, notice);
  window.location.reload();
}

async function start(apiKey) {
  form.querySelector("button").disabled = true;
  const api = new Api(apiKey, () => signOut("The API key was not accepted (revoked or wrong). Sign in again."));
  let fences;
  try {
    fences = await api.get("/v1/fences");
  } catch (error) {
    if (error instanceof Unauthorized) return;
    showSignIn(error instanceof HttpError && error.status === 403 ? "This key has no viewer role." : error.message);
    return;
  }
  sessionStorage.setItem(KEY, apiKey);
  form.hidden = true;
  document.getElementById("app").hidden = false;
  document.getElementById("signout").addEventListener("click", () => signOut(null));
  const config = await fetch("config.json")
    .then((r) => r.json())
    .catch(() => ({}));
  new ControlRoom(api, config, fences).run();
}

class ControlRoom {
  constructor(api, config, fences) {
    this.api = api;
    this.live = new Live();
    this.live.setFences(fences);
    this.map = new MapView(document.getElementById("map"), {
      tileUrl: config.map_tile_url,
      tileAttribution: config.map_attribution,
      onFence: (id) => this.panels.showFence(id),
      onOfficer: (id) => this.panels.showOfficer(id),
    });
    this.panels = new Panels({ api, live: this.live, map: this.map });
    this.queued = [];
    this.frame = 0;
    this.loaded = false; // ...and the due list too: everything is on show
    this.status = "connecting";
    this.dueTimer = 0;
    this.fenceLoad = null; // the fence reload under way, if any
    this.fencesAgain = false; // ...and whether the fence set moved again meanwhile
    this.exposeForTests();
  }

  async run() {
    this.map.drawFences(this.live);
    const now = Date.now() / 1000;
    let presence;
    let devices;
    for (let waitMs = 1000; ; waitMs = Math.min(2 * waitMs, 10000)) {
      try {
        [presence, devices] = await Promise.all([this.api.get("/v1/presence"), this.api.get("/v1/presence/devices")]);
        break;
      } catch (error) {
        if (error instanceof Unauthorized) return;
        await sleep(waitMs); // the service is away or busy
      }
    }
    this.live.setDevices(devices);
    this.live.setPresence(presence);
    // Each answer reflects the events up to its seq: the stream resumes after the older of the two,
    // so no event recorded between the snapshot and the stream is missed (a repeat changes nothing).
    const seq = Math.min(presence.seq, devices.seq);
    this.live.lastSeq = seq;
    this.stream = new EventStream(this.api, {
      after: seq,
      onEvents: (batch) => this.queue(batch),
      onStatus: (status) => this.setStatus(status),
      onFences: (version) => this.live.fencesMoved(version) && this.reloadFences(),
    });
    this.stream.start();
    this.map.restyleFences(this.live, this.live.fences.keys());
    this.map.updateOfficers(this.live, null, now);
    this.showCounts();
    await this.refreshDue();
    setInterval(() => this.refreshDue(), DUE_EVERY_MS);
    setInterval(() => this.map.ageOfficers(this.live, Date.now() / 1000), AGE_EVERY_MS);
    this.panels.showTab("due");
    this.loaded = true;
  }

  // The fence set moved on (a hot spot added, changed or removed): load it again and redraw.
  async reloadFences() {
    if (this.fenceLoad) {
      this.fencesAgain = true;
      return;
    }
    this.fenceLoad = (async () => {
      do {
        this.fencesAgain = false;
        let answer;
        try {
          answer = await this.api.get("/v1/fences");
        } catch (error) {
          if (error instanceof Unauthorized) return;
          setTimeout(() => this.reloadFences(), FENCES_RETRY_MS);
          return;
        }
        this.live.setFences(answer);
        this.map.drawFences(this.live, false);
        if (this.map.selected !== null) this.map.select(this.live, this.map.selected);
        this.showCounts();
      } while (this.fencesAgain);
    })();
    try {
      await this.fenceLoad;
    } finally {
      this.fenceLoad = null;
    }
  }

  // Events are applied once per animation frame, however many arrive in between.
  queue(batch) {
    this.queued.push(...batch);
    if (this.frame) return;
    this.frame = document.hidden ? setTimeout(() => this.flush(), 1000) : requestAnimationFrame(() => this.flush());
  }

  flush() {
    this.frame = 0;
    const events = this.queued;
    this.queued = [];
    const changed = this.live.apply(events);
    this.map.restyleFences(this.live, changed.fences);
    this.map.updateOfficers(this.live, changed.devices, Date.now() / 1000);
    this.panels.refresh(changed);
    this.showCounts();
    if (changed.reloadFences) this.reloadFences();
    if (changed.fences.size && !this.dueTimer) {
      this.dueTimer = setTimeout(() => this.refreshDue(), DUE_AFTER_VISIT_MS); // a visit may take a fence off the list
    }
  }

  async refreshDue() {
    clearTimeout(this.dueTimer);
    this.dueTimer = 0;
    let answer;
    try {
      answer = await this.api.get("/v1/compliance/due");
    } catch {
      return; // shown again at the next refresh
    }
    this.panels.renderDue(answer);
    this.map.restyleFences(this.live, this.live.setDue(answer?.due ?? []));
    this.showCounts();
  }

  setStatus(status) {
    this.status = status;
    const el = document.getElementById("status");
    el.textContent = status === "live" ? "live" : "reconnecting…";
    el.dataset.status = status;
  }

  showCounts() {
    let inside = 0;
    let due = 0;
    for (const id of this.live.fences.keys()) {
      const state = this.live.stateOf(id);
      if (state.startsWith("inside")) inside += 1;
      if (state.endsWith("due")) due += 1;
    }
    let lost = 0;
    for (const d of this.live.devices.values()) if (d.lost) lost += 1;
    document.getElementById("counts").textContent =
      `${this.live.fences.size} hot spots · ${inside} with officers · ${due} behind plan · ` +
      `${this.live.devices.size} officers (${lost} lost)`;
  }

  // A read-only view for the browser tests, the bench and the console.
  exposeForTests() {
    const { live, map } = this;
    window.controlRoom = Object.freeze({
      fenceState: (id) => live.stateOf(id),
      fenceFill: (id) => map.fenceLayers.get(id)?.options.fillColor ?? null, // as drawn on the canvas
      insideOf: (id) => [...(live.fences.get(id)?.inside.keys() ?? [])].sort(),
      fencesOnScreen: () => {
        const view = map.map.getBounds();
        return [...map.fenceLayers.values()].filter((layer) => view.intersects(layer.getBounds())).length;
      },
      officersShown: () => map.officerMarkers.size,
      lostShown: () => [...live.devices.values()].filter((d) => d.lost && map.officerMarkers.has(d.id)).length,
      pointOf: (lat, lon) => {
        const at = map.map.latLngToContainerPoint([lat, lon]);
        const box = map.map.getContainer().getBoundingClientRect();
        return [box.left + at.x, box.top + at.y];
      },
      lastSeq: () => live.lastSeq,
      applied: () => live.applied,
      fenceVersion: () => live.fenceVersion,
      fenceIds: () => [...live.fences.keys()].sort(),
      ready: () => this.loaded,
      status: () => this.status,
    });
  }
}
