// The authenticated API: every call carries the viewer key; a 401 anywhere signs the page out.

export class Unauthorized extends Error {}

export class HttpError extends Error {
  constructor(path, status, text) {
    super(`${path} answered ${status}: ${text.slice(0, 200)}`);
    this.status = status;
  }
}

export class Api {
  constructor(key, onUnauthorized) {
    this.key = key;
    this.onUnauthorized = onUnauthorized;
  }

  headers(extra = {}) {
    return { Authorization: `Bearer ${this.key}`, ...extra };
  }

  // A 401 signs the page out and ends the caller's work.
  refuseUnauthorized(response) {
    if (response.status === 401) {
      this.onUnauthorized();
      throw new Unauthorized("the API key was not accepted");
    }
  }

  // JSON of GET path; null for a 404 (an endpoint this service does not have yet).
  async get(path, params = {}) {
    const response = await fetch(withQuery(path, params), { headers: this.headers() });
    this.refuseUnauthorized(response);
    if (response.status === 404) return null;
    if (!response.ok) throw new HttpError(path, response.status, await response.text());
    return response.json();
  }

  // Every page of a cursor-paged list (GET /v1/events), at most maxPages pages.
  async allEvents(params, maxPages = 20) {
    const events = [];
    let after = 0;
    for (let page = 0; page < maxPages; page++) {
      const body = await this.get("/v1/events", { ...params, after, limit: 1000 });
      if (body === null) break;
      events.push(...body.events);
      if (body.next_after === null) break;
      after = body.next_after;
    }
    return events;
  }
}

export function withQuery(path, params) {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value === null || value === undefined) continue;
    for (const v of Array.isArray(value) ? value : [value]) query.append(name, String(v));
  }
  const text = query.toString();
  return text ? `${path}?${text}` : path;
}

// The live event stream (GET /v1/events/stream) read with fetch(), not EventSource: EventSource
// cannot send the Authorization header, and a key in the URL would end up in logs. Starts after
// event `after` (the seq of the snapshot the page shows); reconnects by itself (after a network
// drop, a service restart, or a silent connection) and resumes with Last-Event-ID, so no event
// is missed. `event: fences` messages report the fence-set version (onFences).
export class EventStream {
  constructor(api, { after, onEvents, onStatus, onFences, quietLimitMs = 40000, path = "/v1/events/stream" }) {
    this.api = api;
    this.path = path; // /v1/me/stream: an officer's own events
    this.onEvents = onEvents;
    this.onStatus = onStatus;
    this.onFences = onFences;
    this.quietLimitMs = quietLimitMs; // the server sends a comment every 15 s
    this.lastId = after === undefined ? null : String(after);
    this.retryMs = 1000;
    this.stopped = false;
    this.controller = null;
  }

  start() {
    this.loop();
  }

  stop() {
    this.stopped = true;
    this.controller?.abort();
  }

  async loop() {
    let failures = 0;
    while (!this.stopped) {
      try {
        await this.readOnce();
        failures = 0;
      } catch (error) {
        if (error instanceof Unauthorized) return;
        failures += 1;
      }
      if (this.stopped) return;
      this.onStatus("reconnecting");
      await sleep(Math.min(this.retryMs * 2 ** Math.min(failures, 3), 10000));
    }
  }

  async readOnce() {
    this.controller = new AbortController();
    const headers = this.api.headers({ Accept: "text/event-stream" });
    if (this.lastId !== null) headers["Last-Event-ID"] = this.lastId;
    const response = await fetch(this.path, { headers, signal: this.controller.signal, cache: "no-store" });
    this.api.refuseUnauthorized(response);
    if (!response.ok || !response.body) throw new Error(`event stream answered ${response.status}`);
    this.onStatus("live");
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    let watchdog = this.arm();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        clearTimeout(watchdog);
        watchdog = this.arm();
        buffer += value.replace(/\r\n?/g, "\n");
        let end;
        const batch = [];
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const message = this.parse(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
          if (message) batch.push(message);
        }
        if (batch.length) this.onEvents(batch);
      }
    } finally {
      clearTimeout(watchdog);
      this.controller.abort();
    }
  }

  // A connection that stays silent past the server's heartbeat is dead: drop it and reconnect.
  arm() {
    return setTimeout(() => this.controller.abort(), this.quietLimitMs);
  }

  parse(block) {
    let id = null;
    let kind = "message";
    let data = "";
    for (const line of block.split("\n")) {
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "id") id = value;
      else if (field === "event") kind = value;
      else if (field === "data") data += (data ? "\n" : "") + value;
      else if (field === "retry" && /^\d+$/.test(value)) this.retryMs = Number(value);
    }
    if (id !== null) this.lastId = id;
    if (!data) return null;
    if (kind === "fences") {
      this.onFences(JSON.parse(data).fence_version);
      return null;
    }
    return { ...JSON.parse(data), seq: id === null ? null : Number(id) };
  }
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
