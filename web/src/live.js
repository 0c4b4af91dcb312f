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
    this.unloaded = new Map(); // fence id -> inside (device id -> since) of fences newer than those loaded
    this.fenceVersion = -1; // of the fence set loaded
    this.lastSeq = 0;
    this.applied = 0; // events applied since the page loaded
  }

  // GET /v1/fences (again when the fence set moved on): who is inside a fence that stays is kept,
  // and a new fence takes the inside set its events built up before it was loaded.
  setFences(answer) {
    const before = this.fences;
    this.fences = new Map();
    for (const feature of answer.features) {
      const id = fenceIdOf(feature);
      const inside = before.get(id)?.inside ?? this.unloaded.get(id) ?? new Map();
      this.unloaded.delete(id);
      this.fences.set(id, { id, name: feature.properties?.name ?? id, feature, inside, due: before.get(id)?.due ?? null });
    }
    this.fenceVersion = answer.fence_set_version ?? this.fenceVersion;
  }

  // Whether the fence set has moved past the one loaded (a fence version from the stream or an event).
  fencesMoved(version) {
    return Number.isInteger(version) && version > this.fenceVersion;
  }

  // GET /v1/presence: who is inside each fence now (authoritative for the inside sets).
  setPresence(answer) {
    for (const fence of this.fences.values()) fence.inside.clear();
    this.unloaded.clear();
    for (const { fence_id: fenceId, devices } of answer.fences) {
      const inside = this.insideOf(fenceId);
      for (const d of devices) {
        inside.set(d.device_id, d.since);
        this.fix(d.device_id, d.last_ts, d.lat, d.lon, d.callsign, d.officer_id, d.lost);
      }
    }
  }

  // GET /v1/presence/devices: every officer's last known position and lost flag.
  setDevices(answer) {
    for (const d of answer.devices) this.fix(d.device_id, d.last_seen, d.lat, d.lon, d.callsign, d.officer_id, d.lost);
  }

  // Who is inside a fence, loaded or not yet (a hot spot created after the page loaded its fences).
  insideOf(fenceId) {
    const fence = this.fences.get(fenceId);
    if (fence) return fence.inside;
    if (!this.unloaded.has(fenceId)) this.unloaded.set(fenceId, new Map());
    return this.unloaded.get(fenceId);
  }

  // Live events, in stream order; returns {fences, devices}: the ids whose look may have changed,
  // and reloadFences: an event was matched against a newer fence set than the one loaded.
  apply(events) {
    const fences = new Set();
    const devices = new Set();
    let reloadFences = false;
    for (const e of events) {
      if (e.seq !== null && e.seq !== undefined) {
        if (e.seq <= this.lastSeq) continue; // a repeat after a reconnect
        this.lastSeq = e.seq;
      }
      this.applied += 1;
      this.applyToDevice(e);
      devices.add(e.device_id);
      if (e.fence_id === null || e.fence_id === undefined) continue; // a device-only event
      const unknown = !this.fences.has(e.fence_id) && !this.unloaded.has(e.fence_id); // asked once per fence
      if (unknown || this.fencesMoved(e.fence_version)) reloadFences = true;
      const inside = this.insideOf(e.fence_id);
      if (e.type === "enter") inside.set(e.device_id, epoch(e.ts));
      else if (e.type === "exit") inside.delete(e.device_id);
      else continue;
      fences.add(e.fence_id);
    }
    return { fences, devices, reloadFences };
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

  // The visits of a device shown as open now: [[fence id, since], ...].
  openVisitsOf(deviceId) {
    return this.fencesOf(deviceId).map((f) => [f.id, f.inside.get(deviceId)]);
  }
}
