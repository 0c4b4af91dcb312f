"""The weekly stocktake: per hot spot and team, dosage vs plan, compliance, officers' inside and
outside time, signal loss and outcomes over one local ISO week; written as CSV, XLSX or HTML.

The figures come from the other reports, unchanged: compliance (services/measures/compliance.py, window
occurrences starting in the week), dwell (Store.dwell, every officer's time in each hot spot,
per local day), officer time and signal loss (this package, shifts clipped to the week) and
outcomes (services/measures/incidents.py). Durations are minutes to two decimals, times local wall-clock.

CSV layout: one file of blocks, one per table in the order of `WeeklyReport.tables`; a block is
a row holding only the table's name, its header row, its data rows, then an empty row.
XLSX: one sheet per table, named after it, header row styled and frozen.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Literal

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter

from geofence.compliance import ComplianceRow
from services.measures.compliance import compliance_groupings
from services.measures.incidents import outcome_counts
from services.measures.local_weeks import LocalDay, LocalWeek, local_text
from services.measures.officer_time import OfficerTime, officer_time, per_officer
from services.measures.signal_loss import DeviceLoss, losses_of
from services.reports.cells import append_xlsx_row, csv_cell
from services.reports.html import to_html
from services.settings import Settings
from services.store import DwellRow, Store
from services.store.plans import list_plans

Format = Literal["csv", "xlsx", "html"]
FORMATS: tuple[Format, ...] = ("csv", "xlsx", "html")
MEDIA_TYPES: dict[Format, str] = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "html": "text/html; charset=utf-8",
}

Cell = str | int | float | None


@dataclass(frozen=True, slots=True)
class Table:
    name: str  # sheet and block name
    title: str  # heading in the HTML page
    columns: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]


@dataclass(frozen=True, slots=True)
class ComplianceBar:
    """One hot spot in the compliance chart; compliance None when it had no planned visits."""

    fence_id: str
    name: str | None
    compliance_pct: float | None
    target_pct: float | None


@dataclass(frozen=True, slots=True)
class DayDosage:
    """Officer minutes in all hot spots on one local day, and the minutes planned for that day."""

    day: date
    dwell_min: float
    planned_min: float


@dataclass(frozen=True, slots=True)
class WeeklyReport:
    week: LocalWeek
    generated_at: float
    tables: tuple[Table, ...]
    compliance: tuple[ComplianceBar, ...]
    days: tuple[DayDosage, ...]
    devices: tuple[str, ...]  # whose figures the report shows (for the audit log)

    def table(self, name: str) -> Table:
        return next(t for t in self.tables if t.name == name)


def _min(seconds: float) -> float:
    return round(seconds / 60.0, 2)


def _pct(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _share(part: float, whole: float) -> float | None:
    return round(part * 100.0 / whole, 1) if whole > 0 else None


def _plan_cells(r: ComplianceRow | None) -> tuple[Cell, ...]:
    """planned/delivered visits, compliance and target %, planned/delivered minutes, visit lengths."""
    if r is None:
        return (0, 0, None, None, 0.0, 0.0, 0, 0, 0, 0)
    return (
        r.planned_visits, r.delivered_visits, _pct(r.compliance_pct), _pct(r.target_pct),
        round(r.planned_minutes, 2), round(r.delivered_minutes, 2),
        r.short_visits, r.guideline_visits, r.long_visits, r.gap_breaches,
    )  # fmt: skip


PLAN_COLUMNS = (
    "planned_visits", "delivered_visits", "compliance_pct", "target_pct", "planned_min", "delivered_min",
    "short_visits", "guideline_visits", "long_visits", "gap_breaches",
)  # fmt: skip


async def weekly_report(store: Store, settings: Settings, week: LocalWeek) -> WeeklyReport:
    """The stocktake of a local ISO week (`parse_week(label, settings.timezone)`)."""
    lo, hi, tz = week.start, week.end, settings.timezone
    fences, _ = await store.load_fences()
    names = {f.id: f.name for f in fences}
    teams_of: dict[str, set[str]] = {}
    for plan in await list_plans(store):
        teams_of.setdefault(plan.fence_id, set()).update([plan.team] if plan.team else [])
    grouped = await compliance_groupings(store, settings, lo, hi, ("fence", "team", "window"))
    by_fence = {r.fence_id: r for r in grouped["fence"] if r.fence_id is not None}
    by_team, windows = grouped["team"], grouped["window"]
    dwell = {r.fence_id: r for r in await store.dwell(lo, hi, group_by="fence") if r.fence_id is not None}
    daily = [(day, await store.dwell(day.start, day.end, group_by="fence")) for day in week.days]
    officers = per_officer(await officer_time(store, lo, hi, settings.shift_break_s), lo, hi)  # a row per carrier
    losses = await losses_of(store, officers, lo, hi, min_losses=settings.repeated_loss_gaps, tz=tz)
    outcomes = await outcome_counts(store, lo, hi)
    fence_ids = sorted(set(names) | set(dwell) | set(by_fence))

    planned_by_day: dict[tuple[date, str], float] = {}
    for w in windows:
        if w.window_start is not None and w.fence_id is not None:
            day = next(d.day for d in week.days if d.start <= w.window_start < d.end)
            planned_by_day[(day, w.fence_id)] = planned_by_day.get((day, w.fence_id), 0.0) + w.planned_minutes

    hotspots = Table(
        "hotspots", "Hot spots: dosage vs plan, compliance and outcomes",
        ("fence_id", "name", "teams", *PLAN_COLUMNS, "visits", "dwell_min", "incidents"),
        tuple(
            (f, names.get(f), ", ".join(sorted(teams_of.get(f, ()))) or None, *_plan_cells(by_fence.get(f)),
             dwell[f].visits if f in dwell else 0, _min(dwell[f].dwell_s) if f in dwell else 0.0,
             sum(outcomes.get(f, {}).values()))
            for f in fence_ids
        ),
    )  # fmt: skip
    teams = Table(
        "teams", "Teams: compliance with their plans",
        ("team", *PLAN_COLUMNS),
        tuple((r.team or "(no team)", *_plan_cells(r)) for r in by_team),
    )  # fmt: skip
    dosage = _dosage(daily, planned_by_day)
    tables = (
        _summary(week, hotspots, officers, losses, settings),
        hotspots,
        teams,
        dosage,
        _officers(officers),
        _shifts(officers, tz),
        _signal_loss(losses),
        _gaps(losses, tz),
        Table("outcomes", "Outcomes: incidents per hot spot and category", ("fence_id", "category", "incidents"),
              tuple((f, c, n) for f in sorted(outcomes) for c, n in sorted(outcomes[f].items()))),
    )  # fmt: skip
    bars = tuple(
        ComplianceBar(f, names.get(f), by_fence[f].compliance_pct, by_fence[f].target_pct)
        for f in fence_ids
        if f in by_fence
    )
    days = tuple(
        DayDosage(
            day.day,
            _min(sum(r.dwell_s for r in rows)),
            round(sum(m for (d, _), m in planned_by_day.items() if d == day.day), 2),
        )
        for day, rows in daily
    )
    return WeeklyReport(week, time.time(), tables, bars, days, tuple(dict.fromkeys(o.device_id for o in officers)))


def _dosage(daily: Sequence[tuple[LocalDay, Sequence[DwellRow]]], planned: dict[tuple[date, str], float]) -> Table:
    """Per local day, every hot spot with dwell or a planned window that day."""
    rows: list[tuple[Cell, ...]] = []
    for day, found in daily:
        dwell = {r.fence_id: r for r in found if r.fence_id is not None}
        for f in sorted(set(dwell) | {f for d, f in planned if d == day.day}):
            r = dwell.get(f)
            rows.append((day.day.isoformat(), f, r.visits if r else 0, _min(r.dwell_s) if r else 0.0,
                         round(planned.get((day.day, f), 0.0), 2)))  # fmt: skip
    return Table(
        "dosage_by_day", "Dosage by day and hot spot (local days)",
        ("date", "fence_id", "visits", "dwell_min", "planned_min"), tuple(rows),
    )  # fmt: skip


def _summary(
    week: LocalWeek, hotspots: Table, officers: Sequence[OfficerTime], losses: Sequence[DeviceLoss], settings: Settings
) -> Table:
    col = {c: i for i, c in enumerate(hotspots.columns)}

    def total(name: str) -> float:
        return sum(float(r[col[name]] or 0) for r in hotspots.rows)

    inside = sum(o.total("inside_s") for o in officers)
    active = sum(o.total("active_s") for o in officers)
    planned, delivered = total("planned_visits"), total("delivered_visits")
    rows: tuple[tuple[Cell, Cell], ...] = (
        ("week", week.label),
        ("from", local_text(week.start, settings.timezone)),
        ("to", local_text(week.end, settings.timezone)),
        ("timezone", settings.timezone),
        ("hot_spots", len(hotspots.rows)),
        ("planned_visits", int(planned)),
        ("delivered_visits", int(delivered)),
        ("compliance_pct", _share(delivered, planned)),
        ("planned_min", round(total("planned_min"), 2)),
        ("delivered_min", round(total("delivered_min"), 2)),
        ("dwell_min", round(total("dwell_min"), 2)),
        ("officers", len(officers)),
        ("inside_pct", _share(inside, active)),
        ("lost_min", _min(sum(d.lost_s for d in losses))),
        ("repeated_loss_devices", sum(d.repeated for d in losses)),
        ("incidents", int(total("incidents"))),
    )
    return Table("summary", "Summary", ("measure", "value"), rows)


def _officers(officers: Sequence[OfficerTime]) -> Table:
    return Table(
        "officers", "Officers: time inside and outside hot spots, and lost (no signal)",
        ("device_id", "officer_id", "callsign", "shifts", "active_min", "inside_min", "outside_min", "lost_min",
         "inside_pct"),
        tuple(
            (o.device_id, o.officer_id, o.callsign, len(o.shifts), _min(o.total("active_s")), _min(o.total("inside_s")),
             _min(o.total("outside_s")), _min(o.total("lost_s")), _share(o.total("inside_s"), o.total("active_s")))
            for o in officers
        ),
    )  # fmt: skip


def _shifts(officers: Sequence[OfficerTime], tz: str) -> Table:
    return Table(
        "shifts", "Shifts: inside, outside and lost minutes (within the week)",
        ("device_id", "officer_id", "callsign", "shift_start", "shift_end", "inside_min", "outside_min", "lost_min",
         "losses"),
        tuple(
            (o.device_id, s.officer_id, s.callsign, local_text(s.start, tz), local_text(s.end, tz), _min(s.inside_s),
             _min(s.outside_s), _min(s.lost_s), s.losses)
            for o in officers
            for s in o.shifts
        ),
    )  # fmt: skip


def _signal_loss(losses: Sequence[DeviceLoss]) -> Table:
    return Table(
        "signal_loss", "Signal loss per device (repeated: a shift with that many losses or more)",
        ("device_id", "officer_id", "callsign", "losses", "lost_min", "longest_min", "max_losses_in_shift",
         "repeated"),
        tuple(
            (d.device_id, d.officer_id, d.callsign, d.losses, _min(d.lost_s), _min(d.longest_s),
             max((s.losses for s in d.shifts), default=0), "yes" if d.repeated else "no")
            for d in losses
        ),
    )  # fmt: skip


def _gaps(losses: Sequence[DeviceLoss], tz: str) -> Table:
    return Table(
        "signal_gaps", "Signal-loss gaps and last known positions (break: between shifts; open: still lost)",
        ("device_id", "officer_id", "start", "end", "length_min", "kind", "lat", "lon"),
        tuple(
            (d.device_id, d.officer_id, local_text(g.start, tz), None if g.end is None else local_text(g.end, tz),
             None if g.length_s is None else _min(g.length_s), g.kind, g.lat, g.lon)
            for d in losses
            for g in d.gaps
        ),
    )  # fmt: skip


# ---------------------------------------------------------------------- formats


def to_csv(report: WeeklyReport) -> bytes:
    """Every table as a block: its name, header, rows, an empty row (see the module docstring)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    for t in report.tables:
        writer.writerow([t.name])
        writer.writerow(t.columns)
        writer.writerows([csv_cell(c) for c in row] for row in t.rows)
        writer.writerow([])
    return out.getvalue().encode("utf-8")


def to_xlsx(report: WeeklyReport) -> bytes:
    """One sheet per table, header bold on a dark fill and frozen, columns sized to their text."""
    book = Workbook()
    book.remove(book.active)
    header_font = Font(bold=True, color="FFFFFF")
    header_fill = PatternFill("solid", fgColor="1F3A5F")
    for t in report.tables:
        sheet = book.create_sheet(t.name)
        sheet.append(list(t.columns))
        for row in t.rows:
            append_xlsx_row(sheet, row)
        for cell in sheet[1]:
            cell.font, cell.fill, cell.alignment = header_font, header_fill, Alignment(horizontal="center")
        sheet.freeze_panes = "A2"
        for i, name in enumerate(t.columns, start=1):
            width = max([len(name), *(len(str(r[i - 1])) for r in t.rows if r[i - 1] is not None)])
            sheet.column_dimensions[get_column_letter(i)].width = min(width + 2, 60)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def render(report: WeeklyReport, fmt: Format) -> bytes:
    """The report in one of FORMATS."""
    if fmt == "csv":
        return to_csv(report)
    if fmt == "xlsx":
        return to_xlsx(report)
    return to_html(report)


async def write_weekly_report(url: str, settings: Settings, week: LocalWeek, fmt: Format, out: Path) -> WeeklyReport:
    """Open the store at `url`, write the week's report to `out` (for `hotspots report`)."""
    store = await Store.open(url)
    try:
        report = await weekly_report(store, settings, week)
    finally:
        await store.close()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(render(report, fmt))
    return report
