// What the page knows now: fences with who is inside, due rows, officers' last fixes.
// Pure state (no DOM, no map): events in, the ids of what changed out.

export function epoch(ts) {
  return typeof ts === "number" ? ts : Date.parse(ts) / 1000;
}

export function fenceIdOf(feature) {
  return String(feature.id ?? feature.properties?.id);
}

export class Live {
  constructor() {
    this.fences = new Map(); // fence id -> {id, name, feature, inside: Map(device id -> since), due: row|null}
    this.devices = new Map(); // device id -> {id, callsign, officerId, lat, lon, ts, lost}
    this.lastSeq = 0;
    this.applied = 0; // events applied since the page loaded
  }

  setFences(features) {
    this.fences.clear();
    for (const feature of features) {
      const id = fenceIdOf(feature);
      this.fences.set(id, { id, name: feature.properties?.name ?? id, feature, inside: new Map(), due: null });
    }
  }

  // GET /v1/presence: who is inside each fence now (authoritative for the inside sets).
  setPresence(answer) {
    for (const fence of this.fences.values()) fence.inside.clear();
    for (const { fence_id: fenceId, devices } of answer.fences) {
      const fence = this.fences.get(fenceId);
      for (const d of devices) {
        fence?.inside.set(d.device_id, d.since);
        this.fix(d.device_id, d.last_ts, d.lat, d.lon, d.callsign, d.officer_id, d.lost);
      }
    }
  }

  // GET /v1/presence/devices: every officer's last known position and lost flag.
  setDevices(answer) {
    for (const d of answer.devices) this.fix(d.device_id, d.last_seen, d.lat, d.lon, d.callsign, d.officer_id, d.lost);
  }

  // Live events, in stream order; returns {fences, devices}: the ids whose look may have changed.
  apply(events) {
    const fences = new Set();
    const devices = new Set();
    for (const e of events) {
      if (e.seq !== null && e.seq !== undefined) {
        if (e.seq <= this.lastSeq) continue; // a repeat after a reconnect
        this.lastSeq = e.seq;
      }
      this.applied += 1;
      this.applyToDevice(e);
      devices.add(e.device_id);
      const fence = this.fences.get(e.fence_id); // none for a device-only event (no fence_id)
      if (!fence) continue;
      if (e.type === "enter") fence.inside.set(e.device_id, epoch(e.ts));
      else if (e.type === "exit") fence.inside.delete(e.device_id);
      else continue;
      fences.add(fence.id);
    }
    return { fences, devices };
  }

  applyToDevice(e) {
    const lost = e.type === "signal_lost" ? true : e.type === "signal_restored" || e.type === "enter" ? false : undefined;
    this.fix(e.device_id, epoch(e.ts), e.lat, e.lon, e.callsign, e.officer_id, lost);
  }

  fix(id, ts, lat, lon, callsign, officerId, lost) {
    let d = this.devices.get(id);
    if (!d) {
      d = { id, callsign: null, officerId: null, lat: null, lon: null, ts: -Infinity, lost: false };
      this.devices.set(id, d);
    }
    if (callsign) d.callsign = callsign;
    if (officerId) d.officerId = officerId;
    if (ts >= d.ts && Number.isFinite(lat) && Number.isFinite(lon)) {
      d.ts = ts;
      d.lat = lat;
      d.lon = lon;
    }
    if (lost !== undefined && ts >= (d.lostTs ?? -Infinity)) {
      d.lost = lost;
      d.lostTs = ts;
    }
  }

  // GET /v1/compliance/due rows: the fences behind plan now; returns the fences whose due row changed.
  setDue(rows) {
    const changed = new Set();
    const byFence = new Map();
    for (const r of rows) if (!byFence.has(r.fence_id)) byFence.set(r.fence_id, r); // the largest shortfall first
    for (const fence of this.fences.values()) {
      const row = byFence.get(fence.id) ?? null;
      if ((row === null) !== (fence.due === null)) changed.add(fence.id);
      fence.due = row;
    }
    return changed;
  }

  // "inside": an officer is there now; "due": behind its plan and nobody there; "idle": neither.
  stateOf(fenceId) {
    const fence = this.fences.get(fenceId);
    if (!fence) return null;
    if (fence.inside.size > 0) return fence.due ? "inside-due" : "inside";
    return fence.due ? "due" : "idle";
  }

  fencesOf(deviceId) {
    return [...this.fences.values()].filter((f) => f.inside.has(deviceId));
  }
}
