// How times and figures read on the page.

export function escapeHtml(text) {
  return String(text ?? "").replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

export function ago(seconds) {
  if (!Number.isFinite(seconds)) return "never";
  if (seconds < 90) return `${Math.max(0, Math.round(seconds))} s ago`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min ago`;
  return `${(seconds / 3600).toFixed(1)} h ago`;
}

// Local wall-clock time of epoch seconds, e.g. "21:07".
export function clock(epochS) {
  return new Date(epochS * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

export function minutes(seconds) {
  return `${Math.round((seconds ?? 0) / 60)} min`;
}

// Epoch seconds of the last local midnight: "today" on the page is the viewer's day.
export function localMidnight(nowS) {
  const d = new Date(nowS * 1000);
  d.setHours(0, 0, 0, 0);
  return d.getTime() / 1000;
}

// "1 visit", "3 visits".
export function count(n, noun) {
  return `${n} ${noun}${n === 1 ? "" : "s"}`;
}
