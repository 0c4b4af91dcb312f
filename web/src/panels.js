// The side panels (a bottom sheet with tabs on a phone): due list, hot spot detail, officer detail.
import { ago, clock, count, escapeHtml, localMidnight, minutes } from "./format.js";
import { epoch } from "./live.js";

const STATE_NAMES = {
  inside: "officer inside",
  "inside-due": "officer inside · behind plan",
  due: "due · behind plan",
  idle: "idle",
};

export class Panels {
  constructor({ api, live, map }) {
    this.api = api;
    this.live = live;
    this.map = map;
    this.fenceId = null;
    this.deviceId = null;
    this.dueAvailable = true;
    for (const tab of document.querySelectorAll("[data-tab]")) {
      tab.addEventListener("click", () => this.showTab(tab.dataset.tab));
    }
    for (const id of ["due-list", "fence-detail", "officer-detail"]) {
      document.getElementById(id).addEventListener("click", (e) => this.followLink(e));
    }
  }

  showTab(name) {
    for (const tab of document.querySelectorAll("[data-tab]")) tab.setAttribute("aria-selected", tab.dataset.tab === name);
    for (const panel of document.querySelectorAll("[data-panel]")) panel.hidden = panel.dataset.panel !== name;
  }

  followLink(e) {
    const link = e.target.closest("[data-fence],[data-device]");
    if (!link) return;
    e.preventDefault();
    if (link.dataset.fence) this.showFence(link.dataset.fence, true);
    else this.showOfficer(link.dataset.device, true);
  }

  // GET /v1/compliance/due: null when this service has no compliance endpoint (404).
  renderDue(answer) {
    const el = document.getElementById("due-list");
    if (answer === null) {
      el.innerHTML = `<p class="muted">This service does not report patrol plans (no /v1/compliance/due).</p>`;
      return;
    }
    const rows = answer.due;
    document.getElementById("due-count").textContent = rows.length ? String(rows.length) : "";
    if (!rows.length) {
      el.innerHTML = `<p class="muted">No hot spot is behind its plan (as of ${clock(answer.as_of)}).</p>`;
      return;
    }
    el.innerHTML = `<table class="due"><thead><tr><th>Hot spot</th><th>Team</th><th>Visits</th><th>Minutes</th>
      <th>Behind</th><th>Until</th></tr></thead><tbody>${rows
        .map(
          (r) => `<tr data-fence="${escapeHtml(r.fence_id)}" data-plan="${escapeHtml(r.plan_id)}">
          <td><a href="#" data-fence="${escapeHtml(r.fence_id)}">${escapeHtml(r.fence_name ?? r.fence_id)}</a></td>
          <td>${escapeHtml(r.team ?? "")}</td>
          <td>${r.delivered_visits}/${r.planned_visits}</td>
          <td>${Math.round(r.delivered_minutes)}/${Math.round(r.planned_minutes)}</td>
          <td class="shortfall">${Math.round(r.shortfall_minutes)} min</td>
          <td>${clock(r.window_end)}</td></tr>`,
        )
        .join("")}</tbody></table>
      <p class="muted">As of ${clock(answer.as_of)}; the most behind first.</p>`;
  }

  // Re-render the open detail when live events touched it (who is inside, an officer's fix).
  refresh(changed) {
    if (this.fenceId !== null && changed.fences.has(this.fenceId)) this.renderWhoIsThere();
    if (this.deviceId !== null && changed.devices.has(this.deviceId)) this.renderFix();
  }

  async showFence(id, focus = false) {
    const fence = this.live.fences.get(id);
    if (!fence) return;
    this.fenceId = id;
    this.map.select(this.live, id);
    if (focus) this.map.focusFence(id);
    this.showTab("fence");
    const el = document.getElementById("fence-detail");
    el.dataset.fenceId = id;
    el.innerHTML = `<h2>${escapeHtml(fence.name)} <small>${escapeHtml(id)}</small></h2>
      <p class="state" id="fence-state"></p>
      <h3>Inside now</h3><ul id="fence-inside"></ul>
      <h3>Today</h3><p id="fence-today" class="muted">loading…</p>
      <h3>Dosage vs plan</h3><p id="fence-plan" class="muted">loading…</p>
      <h3>Last 24 hours</h3><div id="fence-timeline" class="timeline"></div><ol id="fence-events" class="events"></ol>`;
    this.renderWhoIsThere();
    const now = Date.now() / 1000;
    const today = localMidnight(now);
    const [dwell, events, plan] = await Promise.all([
      orNull(this.api.get("/v1/dwell", { from: today, to: now, fence_id: id, group_by: "fence" })),
      orNull(this.api.allEvents({ fence_id: id, from: now - 86400, type: ["enter", "exit"] }, 5)),
      fence.due ? null : orNull(this.api.get("/v1/compliance", { from: today, to: now, group_by: "fence", fence_id: id })),
    ]);
    if (this.fenceId !== id) return;
    const row = dwell?.rows?.[0];
    setText("fence-today", row ? `${count(row.visits, "visit")}, ${minutes(row.dwell_s)} of officer time` : "No visits today.");
    setText("fence-plan", planText(fence.due, plan?.rows?.[0]));
    this.renderTimeline(events ?? [], now);
  }

  renderWhoIsThere() {
    const fence = this.live.fences.get(this.fenceId);
    const state = this.live.stateOf(this.fenceId);
    const el = document.getElementById("fence-state");
    el.textContent = STATE_NAMES[state];
    el.dataset.state = state;
    document.getElementById("fence-inside").innerHTML =
      [...fence.inside]
        .map(([device, since]) => {
          const name = this.live.devices.get(device)?.callsign ?? device;
          return `<li><a href="#" data-device="${escapeHtml(device)}">${escapeHtml(name)}</a> since ${clock(since)}</li>`;
        })
        .join("") || `<li class="muted">nobody</li>`;
  }

  renderTimeline(events, now) {
    const start = now - 86400;
    const open = new Map();
    const spans = [];
    for (const e of events) {
      if (e.type === "enter") open.set(e.device_id, epoch(e.ts));
      else if (e.type === "exit") spans.push([open.get(e.device_id) ?? start, epoch(e.ts)]), open.delete(e.device_id);
    }
    const inside = this.live.fences.get(this.fenceId)?.inside ?? new Map();
    for (const [device, since] of inside) if (!open.has(device)) open.set(device, since); // inside all day
    for (const since of open.values()) spans.push([since, now]);
    const pct = (t) => (100 * (Math.max(t, start) - start)) / 86400;
    const bars = spans.map(([a, b]) => {
      const bar = document.createElement("span"); // positioned through CSSOM: the CSP allows no inline styles
      bar.style.left = `${pct(a)}%`;
      bar.style.width = `${Math.max(pct(b) - pct(a), 0.3)}%`;
      return bar;
    });
    document.getElementById("fence-timeline").replaceChildren(...bars);
    document.getElementById("fence-events").innerHTML =
      events
        .slice(-50)
        .reverse()
        .map((e) => {
          const name = e.callsign ?? e.device_id;
          const what = e.type === "exit" ? `left after ${minutes(e.dwell_s)}` : "arrived";
          return `<li>${clock(epoch(e.ts))} <a href="#" data-device="${escapeHtml(e.device_id)}">${escapeHtml(name)}</a> ${what}</li>`;
        })
        .join("") || `<li class="muted">no visits in the last 24 hours</li>`;
  }

  async showOfficer(id, focus = false) {
    this.deviceId = id;
    if (focus) this.map.focusOfficer(id);
    this.showTab("officer");
    const device = this.live.devices.get(id);
    const el = document.getElementById("officer-detail");
    el.dataset.deviceId = id;
    el.innerHTML = `<h2>${escapeHtml(device?.callsign ?? id)} <small>${escapeHtml(id)}</small></h2>
      <p id="officer-fix"></p>
      <h3>Today</h3><p id="officer-time" class="muted">loading…</p>
      <ol id="officer-visits" class="events"></ol>
      <div id="officer-shifts"></div>`;
    this.renderFix();
    const now = Date.now() / 1000;
    const today = localMidnight(now);
    const [dwell, events, shifts] = await Promise.all([
      orNull(this.api.get("/v1/dwell", { from: today, to: now, device_id: id, group_by: "device" })),
      orNull(this.api.allEvents({ device_id: id, from: today, type: ["enter", "exit"] }, 5)),
      orNull(this.api.get("/v1/officers/time", { from: today, to: now, device_id: id })),
    ]);
    if (this.deviceId !== id) return;
    const row = dwell?.rows?.[0];
    setText(
      "officer-time",
      row
        ? `${count(row.visits, "visit")} · inside ${minutes(row.inside_s)} · outside ${minutes(row.outside_s)} · lost ${minutes(row.lost_s)}`
        : "No fixes today.",
    );
    document.getElementById("officer-visits").innerHTML = visitsOf(events ?? [], this.live.openVisitsOf(id))
      .map(([fenceId, a, b]) => {
        const name = this.live.fences.get(fenceId)?.name ?? fenceId;
        const until = b === null ? "now" : clock(b);
        return `<li>${clock(a)}–${until} <a href="#" data-fence="${escapeHtml(fenceId)}">${escapeHtml(name)}</a>
          ${b === null ? "" : minutes(b - a)}</li>`;
      })
      .join("");
    const shiftRows = shifts?.officers?.[0]?.shifts ?? [];
    if (shiftRows.length) document.getElementById("officer-shifts").innerHTML = shiftsTable(shiftRows);
  }

  renderFix() {
    const device = this.live.devices.get(this.deviceId);
    const el = document.getElementById("officer-fix");
    if (!device || !el) return;
    const where = this.live.fencesOf(device.id).map((f) => `<a href="#" data-fence="${escapeHtml(f.id)}">${escapeHtml(f.name)}</a>`);
    el.innerHTML = `${device.lost ? `<strong class="lost">SIGNAL LOST</strong> · ` : ""}last fix ${ago(Date.now() / 1000 - device.ts)}
      · ${where.length ? `inside ${where.join(", ")}` : "outside the hot spots"}`;
  }
}

// A detail that could not be fetched leaves its line empty rather than failing the panel.
function orNull(promise) {
  return promise.catch(() => null);
}

function setText(id, text) {
  const el = document.getElementById(id);
  el.textContent = text;
  el.classList.remove("muted");
}

// "Dosage vs plan": the due row while the fence is behind, else today's compliance figures if any.
function planText(due, row) {
  const r = due ?? row;
  if (!r) return "No patrol plan covers this hot spot today.";
  const figures = `${r.delivered_visits}/${r.planned_visits} visits, ${Math.round(r.delivered_minutes)}/${Math.round(r.planned_minutes)} min`;
  return due ? `${figures}; behind by ${Math.round(due.shortfall_minutes)} min until ${clock(due.window_end)}` : figures;
}

// The visits of one device since midnight: [fence, enter ts, exit ts or null while still inside],
// by start. One that began before midnight has no ENTER among the events: its EXIT's dwell_s gives
// its start, or, still open, the live state does (openNow: [[fence, since], ...]).
export function visitsOf(events, openNow) {
  const open = new Map();
  const visits = [];
  for (const e of events) {
    if (e.type === "enter") {
      const visit = [e.fence_id, epoch(e.ts), null];
      open.set(e.fence_id, visit);
      visits.push(visit);
    } else if (e.type === "exit") {
      const visit = open.get(e.fence_id);
      open.delete(e.fence_id);
      if (visit) visit[2] = epoch(e.ts);
      else visits.push([e.fence_id, epoch(e.ts) - (e.dwell_s ?? 0), epoch(e.ts)]);
    }
  }
  for (const [fenceId, since] of openNow) if (!open.has(fenceId)) visits.push([fenceId, since, null]);
  return visits.sort((a, b) => a[1] - b[1]);
}

// GET /v1/officers/time: today's shifts of the officer, with their minutes inside, outside and lost.
function shiftsTable(shifts) {
  const rows = shifts.map(
    (r) => `<tr><td>${clock(r.start)}–${clock(r.end)}</td><td>${minutes(r.inside_s)}</td><td>${minutes(r.outside_s)}</td>
      <td>${minutes(r.lost_s)}</td><td>${r.losses}</td></tr>`,
  );
  return `<h3>Shifts</h3><table><thead><tr><th>Shift</th><th>Inside</th><th>Outside</th><th>Lost</th><th>Losses</th></tr>
    </thead><tbody>${rows.join("")}</tbody></table>`;
}
