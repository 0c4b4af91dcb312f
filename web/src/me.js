// The officer's page (/me): due hot spots, a visit timer, warnings, the shift's figures, feedback.
// Reads GET /v1/me with an officer key; the stream of this officer's own events (/v1/me/stream)
// triggers a re-read, and a re-read every REFRESH_MS keeps the due list moving between events.
// Works offline-tolerant: what is shown keeps its age on screen, and the timer keeps counting.
import { Api, EventStream, HttpError, Unauthorized } from "./api.js";
import { ago, clock, escapeHtml } from "./format.js";

const KEY = "hotspots.officerKey"; // sessionStorage: gone when the tab closes
const NOTICE = "hotspots.officerNotice"; // why the last session ended, shown on the sign-in form
const REFRESH_MS = 30000;
const STALE_S = 90; // figures older than this are marked as such
const NO_FIX_S = 120; // a radio silent this long is worth a warning before the stream calls it lost

const form = document.getElementById("signin");
form.addEventListener("submit", (event) => {
  event.preventDefault();
  start(document.getElementById("signin-key").value.trim());
});
document.getElementById("signout").addEventListener("click", () => signOut(""));
const saved = sessionStorage.getItem(KEY);
if (saved) start(saved);
else {
  form.hidden = false;
  document.getElementById("signin-error").textContent = sessionStorage.getItem(NOTICE) ?? "";
}
sessionStorage.removeItem(NOTICE);

function signOut(notice) {
  sessionStorage.removeItem(KEY);
  if (notice) sessionStorage.setItem(NOTICE, notice);
  location.reload();
}

function start(key) {
  sessionStorage.setItem(KEY, key);
  new MePage(new Api(key, () => signOut("The key was not accepted."))).start();
}

const now = () => Date.now() / 1000;

class MePage {
  constructor(api) {
    this.api = api;
    this.me = null; // the last answer of GET /v1/me
    this.fetchedAt = null; // this device's clock when it came
    this.skew = 0; // the service's clock minus this device's, from the first answer
    this.loads = 0;
    this.loading = null;
  }

  async start() {
    try {
      await this.load();
    } catch (error) {
      if (error instanceof Unauthorized) return;
      if (error instanceof HttpError && error.status === 403) return signOut("That is not an officer's key.");
    }
    form.hidden = true;
    document.getElementById("app").hidden = false;
    this.stream = new EventStream(this.api, {
      path: "/v1/me/stream",
      onEvents: () => this.reload(),
      onStatus: (s) => this.status(s),
      onFences: () => this.reload(),
    });
    this.stream.start();
    setInterval(() => this.reload(), REFRESH_MS);
    setInterval(() => this.tick(), 1000);
    document.getElementById("feedback").addEventListener("submit", (e) => this.send(e));
    window.mePage = Object.freeze({ ready: () => this.loads > 0, loads: () => this.loads, skew: () => this.skew });
  }

  reload() {
    this.load().catch(() => this.status("offline"));
  }

  async load() {
    if (this.loading) return this.loading;
    this.loading = (async () => {
      const asked = now();
      const answer = await this.api.get("/v1/me");
      this.me = answer;
      this.fetchedAt = now();
      // The phone's clock against the service's, measured once: the timer then runs on the phone's clock.
      if (this.loads === 0) this.skew = answer.as_of - (asked + this.fetchedAt) / 2;
      this.loads += 1;
      this.render();
    })().finally(() => (this.loading = null));
    return this.loading;
  }

  status(s) {
    const el = document.getElementById("status");
    el.dataset.status = s;
    el.textContent = s;
  }

  // Every second: the timer, the age of what is shown, the warnings (they depend on time passing).
  tick() {
    if (!this.me) return;
    const age = now() - this.fetchedAt;
    const el = document.getElementById("age");
    el.textContent = `updated ${ago(age)}`;
    el.toggleAttribute("data-stale", age > STALE_S);
    this.renderTimer();
    this.renderWarning();
  }

  render() {
    const me = this.me;
    document.getElementById("who").textContent = me.officer_id + (me.team ? ` · ${me.team}` : "");
    document.getElementById("due").innerHTML = me.due.length
      ? me.due
          .map(
            (r) => `<li data-fence="${escapeHtml(r.fence_id)}"><strong>${escapeHtml(r.fence_name ?? r.fence_id)}</strong>
              <span class="shortfall">${Math.ceil(r.shortfall_minutes)} min behind</span><br />
              <small class="muted">${r.delivered_visits}/${r.planned_visits} visits · until ${clock(r.window_end)}</small></li>`,
          )
          .join("")
      : `<li class="muted">Nothing behind plan now.</li>`;
    const s = me.shift;
    const figures = s
      ? [["Inside hot spots", `${Math.round(s.inside_min)} min`], ["Outside", `${Math.round(s.outside_min)} min`],
         ["Signal lost", `${Math.round(s.lost_min)} min`], ["Shift since", clock(s.start)]]
      : [["Shift", "not started"]];
    figures.push(["Visits today", `${me.visits_today} (${me.qualifying_visits_today} long enough)`]);
    document.getElementById("shift").innerHTML = figures
      .map(([k, v]) => `<dt>${escapeHtml(k)}</dt><dd>${escapeHtml(v)}</dd>`)
      .join("");
    document.getElementById("visits").innerHTML = me.visits.length
      ? `<tr><th>Hot spot</th><th>From</th><th>Minutes</th></tr>` +
        me.visits
          .map(
            (v) => `<tr data-length="${v.length}"><td>${escapeHtml(v.fence_name ?? v.fence_id)}</td><td>${clock(v.start)}</td>
              <td>${Math.round(v.minutes)} / ${v.target_visit_min} (${v.length})</td></tr>`,
          )
          .join("")
      : "";
    const fences = new Map([...me.due, ...me.inside_now].map((r) => [r.fence_id, r.fence_name ?? r.fence_id]));
    const select = document.getElementById("fb-fence");
    const chosen = select.value;
    select.innerHTML =
      `<option value="">(no hot spot)</option>` +
      [...fences].map(([id, name]) => `<option value="${escapeHtml(id)}">${escapeHtml(name)}</option>`).join("");
    select.value = fences.has(chosen) ? chosen : (me.inside_now[0]?.fence_id ?? "");
    document.getElementById("replies").innerHTML = me.feedback
      .map(
        (f) => `<li>${escapeHtml(f.text)} <small class="muted">(${f.state})</small>
          ${f.reply ? `<div class="reply">Reply: ${escapeHtml(f.reply)}</div>` : ""}</li>`,
      )
      .join("");
    this.tick();
  }

  // The visit timer: time in the hot spot by the service's clock; marks the plan's minimum visit
  // (10 min) and suggests moving on past its guideline length (15 min).
  renderTimer() {
    const inside = this.me.inside_now[0];
    const box = document.getElementById("timer");
    box.hidden = !inside;
    if (!inside) return;
    const elapsed = Math.max(0, now() + this.skew - inside.since);
    const m = Math.floor(elapsed / 60);
    document.getElementById("timer-where").textContent = `In ${inside.fence_name ?? inside.fence_id}`;
    document.getElementById("timer-clock").textContent = `${m}:${String(Math.floor(elapsed % 60)).padStart(2, "0")}`;
    const min = inside.min_visit_min;
    const target = inside.target_visit_min;
    let stage = "";
    let note = min === null ? "No plan for this hot spot." : `${Math.ceil(min - elapsed / 60)} min to a full visit.`;
    if (min !== null && elapsed >= min * 60) [stage, note] = ["min", `${min} min reached: the visit counts.`];
    if (target !== null && elapsed >= target * 60) {
      const next = this.me.due.find((r) => r.fence_id !== inside.fence_id);
      stage = "move";
      note = `${target} min: time to move on${next ? ` to ${next.fence_name ?? next.fence_id}` : ""}.`;
    }
    box.dataset.stage = stage;
    document.getElementById("timer-note").textContent = note;
  }

  renderWarning() {
    const warnings = [];
    for (const r of this.me.radios) {
      const silent = r.age_s + (now() - this.fetchedAt);
      if (r.lost) warnings.push(`Signal lost: radio ${r.device_id} not seen for ${ago(silent).replace(" ago", "")}. Your time is not being counted.`);
      else if (silent > NO_FIX_S) warnings.push(`No position from radio ${r.device_id} for ${ago(silent).replace(" ago", "")}.`);
      else if (r.poor_fix) warnings.push(`Poor GPS fix (±${Math.round(r.accuracy_m)} m): your position may be wrong.`);
    }
    if (!this.me.radios.length) warnings.push("No radio is tracked for you yet.");
    const el = document.getElementById("warning");
    el.hidden = !warnings.length;
    el.textContent = warnings.join(" ");
  }

  async send(event) {
    event.preventDefault();
    const result = document.getElementById("fb-result");
    const body = {
      kind: document.getElementById("fb-kind").value,
      text: document.getElementById("fb-text").value.trim(),
      fence_id: document.getElementById("fb-fence").value || null,
    };
    if (document.getElementById("fb-here").checked && navigator.geolocation) {
      try {
        const pos = await new Promise((ok, fail) => navigator.geolocation.getCurrentPosition(ok, fail, { timeout: 10000 }));
        Object.assign(body, { lat: pos.coords.latitude, lon: pos.coords.longitude, at: pos.timestamp / 1000 });
      } catch {
        result.textContent = "Could not read this phone's position: sent without it.";
      }
    }
    const response = await fetch("/v1/feedback", {
      method: "POST",
      headers: this.api.headers({ "Content-Type": "application/json" }),
      body: JSON.stringify(body),
    });
    this.api.refuseUnauthorized(response);
    result.textContent = response.ok ? `Sent at ${clock(now())}.` : `Not sent (${response.status}): ${(await response.text()).slice(0, 200)}`;
    if (response.ok) {
      document.getElementById("fb-text").value = "";
      this.reload();
    }
  }
}
