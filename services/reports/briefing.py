"""The sergeant's briefing pack: one printable A4 page per team for the start of a shift.

For a team and a local day D (the day of the briefing), in the timezone setting:

- *the last shift* is the team's plan windows starting on D-1 (a night window 20:00-04:00
  ends on D); officer time and signal loss cover their span, from the first one's start to the
  last one's end (the whole of D-1 for a team without windows that day);
- dosage against plan per hot spot and visits per officer are plan compliance over those
  windows (services/measures/compliance.py: merged visits clipped to the windows, qualifying
  ones counted), as of the briefing's making;
- *the team's officers* are those who made a visit counted in a window of the team's plans,
  and those whose shifts their radio's assignment puts in the team; their inside / outside /
  lost minutes are officer_time's (all hot spots, split at handovers, as in the weekly report);
- the hot spots most behind are those with the most planned visits not delivered over the
  seven days D-7 to D-1, then the largest shortfall of minutes;
- signal-loss problems are the team's radios with a loss in the period, or still lost
  (services/measures/signal_loss.py); open feedback is that sent by the team or about one of
  its hot spots (services/store/feedback.py);
- the week's trend is the weekly report's dosage chart for the team's hot spots: officer
  minutes in them per day (Store.dwell), against the minutes its windows starting that day plan.

Every figure comes from the measures the weekly report uses, so the two agree. The page is
self-contained like the weekly report's (services/reports/html.py: its style, tables, cards and
dosage chart), carries its own Content Security Policy, and prints to PDF through Chromium
(services/reports/pdf.py).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from html import escape
from pathlib import Path
from typing import Literal

import sqlalchemy as sa

from geofence.compliance import ComplianceRow
from services.errors import Invalid
from services.measures.compliance import compliance_groupings
from services.measures.local_weeks import LocalDay, local_day, local_text
from services.measures.officer_time import OfficerTime, officer_time, per_officer
from services.measures.signal_loss import DeviceLoss, losses_of
from services.reports.html import CSS, cards_html, dosage_svg, table_html
from services.reports.pdf import html_to_pdf
from services.reports.weekly import PLAN_COLUMNS, Cell, DayDosage, Table, _min, _plan_cells, _share
from services.settings import Settings
from services.store import Store
from services.store.feedback import Feedback, list_feedback
from services.store.plans import list_plans
from services.store.tables import assignments_table

Format = Literal["html", "pdf", "json"]
#: The files: the page, and the page printed (JSON is the API's model, api/schemas/briefings.py).
MEDIA_TYPES: dict[Literal["html", "pdf"], str] = {"html": "text/html; charset=utf-8", "pdf": "application/pdf"}
#: Days of the trend chart and of "most behind": the week before the briefing's day.
TREND_DAYS = 7
#: Hot spots listed as most behind, and open reports listed: what fits on the page.
BEHIND_SHOWN = 5
FEEDBACK_SHOWN = 15
#: Plan columns of the dosage table (of the weekly report's PLAN_COLUMNS, the ones a briefing reads).
DOSAGE_COLUMNS = ("planned_visits", "delivered_visits", "compliance_pct", "target_pct", "planned_min",
                  "delivered_min", "short_visits", "gap_breaches")  # fmt: skip
#: The weekly report's policy for the HTML the API serves (api/limits.py), carried in the page so
#: a printed or saved copy runs no script and loads nothing either.
PAGE_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"
_PRINT_CSS = """
@page{size:A4;margin:10mm}
body{max-width:none;font-size:13px}
h2{margin:14px 0 4px;font-size:1.05em;break-after:avoid}
table{font-size:.8em;margin:2px 0 6px}tr{break-inside:avoid}
td:not(.n){max-width:300px;overflow-wrap:break-word}
.trend{zoom:.7}
@media print{body{margin:0}}
"""


@dataclass(frozen=True, slots=True)
class Briefing:
    team: str
    day: LocalDay  # the briefing's day
    last: LocalDay  # the day before: its windows are the last shift
    start: float  # officer time and signal loss: from the start of the last shift's first window
    end: float  # to the end of its last window (without windows: the day `last`)
    timezone: str
    generated_at: float
    cards: tuple[tuple[Cell, str], ...]  # (value, what it is)
    tables: tuple[Table, ...]  # hotspots, behind, officers, feedback, signal_loss
    trend: tuple[DayDosage, ...]  # the TREND_DAYS days before `day`
    devices: tuple[str, ...]  # whose figures the page shows (for the audit log)

    def table(self, name: str) -> Table:
        return next(t for t in self.tables if t.name == name)


async def _assigned(store: Store, team: str) -> bool:
    """Whether an assignment names the team."""
    query = sa.select(assignments_table.c.team).where(assignments_table.c.team == team).limit(1)
    async with store.read() as conn:
        return (await conn.execute(query)).first() is not None


async def briefing(store: Store, settings: Settings, team: str, day: LocalDay, as_of: float | None = None) -> Briefing:
    """The team's briefing for `day` (module docstring); Invalid naming `team` if no plan or
    assignment names it. Visits count as they stand at `as_of` (default now)."""
    team_fences = {p.fence_id for p in await list_plans(store, team=team)}
    if not team_fences and not await _assigned(store, team):
        raise Invalid(f"team {team!r} is named by no plan or assignment", "team")
    tz, now = settings.timezone, time.time() if as_of is None else as_of
    last = local_day(day.day - timedelta(days=1), tz)
    week = [local_day(day.day - timedelta(days=k), tz) for k in range(TREND_DAYS, 0, -1)]
    shift = await compliance_groupings(store, settings, last.start, last.end, ("fence", "officer", "window"),
                                       team=team, as_of=now)  # fmt: skip
    weekly = await compliance_groupings(store, settings, week[0].start, last.end, ("fence", "window"),
                                        team=team, as_of=now)  # fmt: skip
    spans = [(w.window_start, w.window_end) for w in shift["window"] if w.window_start is not None]
    lo = min((a for a, _ in spans), default=last.start)
    hi = max((b for _, b in spans if b is not None), default=last.end)
    fences, _ = await store.load_fences()
    names = {f.id: f.name for f in fences}

    visits = {r.officer_id: r for r in shift["officer"] if r.officer_id is not None}
    officers = [
        o for o in per_officer(await officer_time(store, lo, hi, settings.shift_break_s), lo, hi)
        if (o.officer_id or o.device_id) in visits or any(s.team == team for s in o.shifts)
    ]  # fmt: skip
    losses = await losses_of(store, officers, lo, hi, min_losses=settings.repeated_loss_gaps, tz=tz)
    feedback = await _open_feedback(store, team, sorted(team_fences))
    trend = await _trend(store, week, team_fences, weekly["window"])

    hotspots = Table(
        "hotspots", "Dosage against plan, last shift (plan windows starting the day before)",
        ("fence_id", "name", *DOSAGE_COLUMNS),
        tuple((r.fence_id, names.get(r.fence_id or ""), *_plan_subset(r)) for r in shift["fence"]),
    )  # fmt: skip
    problems = [d for d in losses if d.losses > 0 or any(g.kind == "open" for g in d.gaps)]
    tables = (
        hotspots,
        _behind(weekly["fence"], names),
        _officers(officers, visits),
        Table(
            "feedback", "Open feedback from the team or about its hot spots (newest first)",
            ("id", "sent", "kind", "fence_id", "officer_id", "text", "reply"),
            tuple((f.feedback_id, local_text(f.created_at, tz), f.kind, f.fence_id, f.officer_id, f.text, f.reply)
                  for f in feedback),
        ),
        _signal_loss(sorted(problems, key=lambda d: (-d.lost_s, d.device_id))),
    )  # fmt: skip
    planned = sum(r.planned_visits for r in shift["fence"])
    delivered = sum(r.delivered_visits for r in shift["fence"])
    week_planned = sum(r.planned_visits for r in weekly["fence"])
    week_delivered = sum(r.delivered_visits for r in weekly["fence"])
    cards: tuple[tuple[Cell, str], ...] = (
        (_share(delivered, planned), "last shift: plan compliance %"),
        (f"{delivered} / {planned}", "qualifying / planned visits"),
        (round(sum(r.delivered_minutes for r in shift["fence"]), 1), "qualifying minutes"),
        (_share(week_delivered, week_planned), "last 7 days: plan compliance %"),
        (len({o.officer_id or o.device_id for o in officers}), "officers"),
        (_min(sum(d.lost_s for d in losses)), "minutes without signal"),
        (len(feedback), "open feedback"),
    )
    return Briefing(
        team, day, last, lo, hi, tz, time.time(), cards, tables, trend,
        tuple(dict.fromkeys(o.device_id for o in officers)),
    )  # fmt: skip


def _plan_subset(r: ComplianceRow) -> tuple[Cell, ...]:
    cells = dict(zip(PLAN_COLUMNS, _plan_cells(r), strict=True))
    return tuple(cells[c] for c in DOSAGE_COLUMNS)


def _behind(rows: Sequence[ComplianceRow], names: dict[str, str | None]) -> Table:
    """The hot spots with planned visits not delivered over the week, most missed first."""
    behind = sorted(
        (r for r in rows if r.fence_id is not None and r.delivered_visits < r.planned_visits),
        key=lambda r: (r.delivered_visits - r.planned_visits, r.delivered_minutes - r.planned_minutes, r.fence_id),
    )[:BEHIND_SHOWN]
    return Table(
        "behind", f"Hot spots most behind plan, last {TREND_DAYS} days",
        ("fence_id", "name", "planned_visits", "delivered_visits", "missed_visits", "compliance_pct", "target_pct",
         "shortfall_min"),
        tuple(
            (r.fence_id, names.get(r.fence_id or ""), r.planned_visits, r.delivered_visits,
             r.planned_visits - r.delivered_visits,
             None if r.compliance_pct is None else round(r.compliance_pct, 1), r.target_pct,
             round(max(r.planned_minutes - r.delivered_minutes, 0.0), 2))
            for r in behind
        ),
    )  # fmt: skip


def _officers(officers: Sequence[OfficerTime], visits: dict[str, ComplianceRow]) -> Table:
    """One row per officer (a radio without one stands for itself), its radios' figures summed."""
    by: dict[str, list[OfficerTime]] = {}
    for o in officers:
        by.setdefault(o.officer_id or o.device_id, []).append(o)
    for who in visits:
        by.setdefault(who, [])
    rows: list[tuple[Cell, ...]] = []
    for who in sorted(by):
        mine, v = by[who], visits.get(who)
        inside, active = sum(o.total("inside_s") for o in mine), sum(o.total("active_s") for o in mine)
        rows.append((
            who, next((o.callsign for o in mine if o.callsign), None), ", ".join(o.device_id for o in mine) or None,
            v.delivered_visits if v else 0, round(v.delivered_minutes, 2) if v else 0.0, v.short_visits if v else 0,
            _min(inside), _min(active - inside), _min(sum(o.total("lost_s") for o in mine)), _share(inside, active),
        ))  # fmt: skip
    return Table(
        "officers", "Officers, last shift: qualifying visits to the team's hot spots, and their time",
        ("officer_id", "callsign", "radios", "visits", "visit_min", "short_visits", "inside_min", "outside_min",
         "lost_min", "inside_pct"),
        tuple(rows),
    )  # fmt: skip


def _signal_loss(losses: Sequence[DeviceLoss]) -> Table:
    return Table(
        "signal_loss", "Signal-loss problems by radio, last shift (repeated: a shift with that many losses or more)",
        ("device_id", "officer_id", "callsign", "losses", "lost_min", "longest_min", "repeated", "lost_now"),
        tuple(
            (d.device_id, d.officer_id, d.callsign, d.losses, _min(d.lost_s), _min(d.longest_s),
             "yes" if d.repeated else "no", "yes" if any(g.kind == "open" for g in d.gaps) else "no")
            for d in losses
        ),
    )  # fmt: skip


async def _open_feedback(store: Store, team: str, fence_ids: Sequence[str]) -> list[Feedback]:
    """Open reports sent by the team's officers or about its hot spots, newest first."""
    found = {f.feedback_id: f for f in await list_feedback(store, team=team, state="open", newest_first=True,
                                                           limit=FEEDBACK_SHOWN)}  # fmt: skip
    for fence_id in fence_ids:
        for f in await list_feedback(store, fence_id=fence_id, state="open", newest_first=True, limit=FEEDBACK_SHOWN):
            found[f.feedback_id] = f
    return sorted(found.values(), key=lambda f: -f.feedback_id)[:FEEDBACK_SHOWN]


async def _trend(
    store: Store, days: Sequence[LocalDay], fence_ids: set[str], windows: Sequence[ComplianceRow]
) -> tuple[DayDosage, ...]:
    """Per day: officer minutes in the team's hot spots, and the minutes its windows starting then plan."""
    out = []
    for d in days:
        dwell = sum(r.dwell_s for r in await store.dwell(d.start, d.end, group_by="fence") if r.fence_id in fence_ids)
        planned = sum(
            w.planned_minutes for w in windows if w.window_start is not None and d.start <= w.window_start < d.end
        )
        out.append(DayDosage(d.day, _min(dwell), round(planned, 2)))
    return tuple(out)


# ---------------------------------------------------------------------- formats


def to_html(b: Briefing) -> bytes:
    """The page: headline cards, the week's trend, then the tables; A4 when printed."""
    tz = escape(b.timezone)
    tables = "".join(table_html(t) for t in b.tables)
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="Content-Security-Policy" content="{PAGE_CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Briefing {escape(b.team)} {b.day.day.isoformat()}</title><style>{CSS}{_PRINT_CSS}</style></head>
<body>
<h1>Briefing pack: {escape(b.team)}, {b.day.day:%A %d %B %Y}</h1>
<p class="sub">Last shift: plan windows starting {b.last.day:%A %d %B}; officer time and signal loss
{escape(local_text(b.start, b.timezone))} to {escape(local_text(b.end, b.timezone))}, local time ({tz}).
Generated {escape(local_text(b.generated_at, b.timezone))}.</p>
<div class="cards">{cards_html(b.cards)}</div>
<h2>The week's trend: officer minutes in the team's hot spots by day</h2>
<div class="trend">{dosage_svg(b.trend)}</div>
{tables}
</body></html>
"""
    return page.encode("utf-8")


async def render(b: Briefing, fmt: Literal["html", "pdf"]) -> bytes:
    """The page as HTML, or printed to PDF by Chromium."""
    html = to_html(b)
    return html if fmt == "html" else await html_to_pdf(html)


async def write_briefing(
    url: str, settings: Settings, team: str, day: LocalDay, fmt: Literal["html", "pdf"], out: Path
) -> Briefing:
    """Open the store at `url`, write the team's briefing to `out` (for `hotspots briefing`)."""
    store = await Store.open(url)
    try:
        made = await briefing(store, settings, team, day)
    finally:
        await store.close()
    data = await render(made, fmt)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    return made
