"""The weekly stocktake as one self-contained HTML page: inline CSS and SVG charts drawn here.

No scripts, fonts or images are fetched, so a sergeant can open the file in any browser with no
network. Charts: compliance by hot spot (horizontal bars, green when the target is met, red
when not, the target marked on each bar) and officer minutes in hot spots by local day (bars,
with the planned minutes marked).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape
from typing import TYPE_CHECKING

from services.measures.local_weeks import local_text

if TYPE_CHECKING:
    from services.reports.weekly import ComplianceBar, DayDosage, Table, WeeklyReport

MET_COLOUR = "#2e7d32"
MISSED_COLOUR = "#c62828"
DOSAGE_COLOUR = "#1f6fb2"
MARK_COLOUR = "#212121"  # target and planned marks
GRID_COLOUR = "#d0d7de"
#: Hot spot names longer than this are cut in the chart (whole in its tooltip and the tables).
LABEL_CHARS = 28

#: The reports' style sheet (the briefing pack adds its print rules to it).
CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;margin:24px;color:#1b1f24;
background:#fff;max-width:1100px}
h1{font-size:1.5em;margin:0 0 4px}h2{font-size:1.15em;margin:28px 0 8px;border-bottom:2px solid #1f3a5f}
.sub{color:#57606a;margin:0 0 16px}
.cards{display:flex;flex-wrap:wrap;gap:10px}
.card{border:1px solid #d0d7de;border-radius:6px;padding:8px 12px;min-width:120px}
.card b{display:block;font-size:1.4em}.card span{color:#57606a;font-size:.85em}
table{border-collapse:collapse;font-size:.85em;margin:4px 0 12px}
th{background:#1f3a5f;color:#fff;text-align:left;padding:4px 8px}
td{border-bottom:1px solid #e1e4e8;padding:3px 8px}td.n{text-align:right;font-variant-numeric:tabular-nums}
tr:nth-child(even) td{background:#f6f8fa}
svg text{font-size:12px;fill:#1b1f24}.legend{font-size:.85em;color:#57606a}
.swatch{display:inline-block;width:12px;height:12px;vertical-align:middle;margin:0 4px 0 10px}
"""


def _nice(x: float) -> float:
    """The smallest of 1, 2, 5 x 10^k at least x: a round top for an axis."""
    if x <= 0:
        return 1.0
    k = 10.0 ** math.floor(math.log10(x))
    return next(m * k for m in (1.0, 2.0, 5.0, 10.0) if m * k >= x)


def _num(x: float) -> str:
    return f"{x:.0f}" if abs(x) >= 10 or x == int(x) else f"{x:.1f}"


def compliance_svg(bars: Sequence[ComplianceBar]) -> str:
    """Horizontal bars of compliance % per hot spot, with each plan's target as a dark mark."""
    if not bars:
        return "<p>No patrol plan had a window in this week.</p>"
    label_w, plot_w, row_h, top = 190, 460, 26, 10
    values = [b.compliance_pct or 0.0 for b in bars] + [b.target_pct or 0.0 for b in bars]
    top_pct = max(100.0, math.ceil(max(values) / 20.0) * 20.0)
    height = top + row_h * len(bars) + 28

    def x(pct: float) -> float:
        return label_w + pct / top_pct * plot_w

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" id="compliance-chart" width="{label_w + plot_w + 60}" '
        f'height="{height}" role="img" aria-label="Compliance by hot spot"><title>Compliance by hot spot</title>'
    ]
    for tick in range(0, int(top_pct) + 1, 20):
        parts.append(f'<line x1="{x(tick):.1f}" x2="{x(tick):.1f}" y1="{top}" y2="{height - 24}" '
                     f'stroke="{GRID_COLOUR}"/><text x="{x(tick):.1f}" y="{height - 8}" text-anchor="middle">'
                     f"{tick}%</text>")  # fmt: skip
    for i, b in enumerate(bars):
        y = top + i * row_h
        full = b.name or b.fence_id
        label, short = escape(full), escape(full if len(full) <= LABEL_CHARS else full[: LABEL_CHARS - 1] + "…")
        parts.append(f'<text x="{label_w - 8}" y="{y + row_h / 2 + 4:.1f}" text-anchor="end">{short}'
                     f"<title>{label}</title></text>")  # fmt: skip
        if b.compliance_pct is None:
            parts.append(f'<text x="{label_w + 4}" y="{y + row_h / 2 + 4:.1f}">no planned visits</text>')
        else:
            met = b.target_pct is None or b.compliance_pct >= b.target_pct
            width = x(b.compliance_pct) - label_w
            if width > 0:  # nothing delivered: no bar, just the 0%
                parts.append(
                    f'<rect class="bar compliance-bar" data-fence="{escape(b.fence_id)}" x="{label_w}" y="{y + 4}" '
                    f'width="{width:.1f}" height="{row_h - 8}" fill="{MET_COLOUR if met else MISSED_COLOUR}">'
                    f"<title>{label}: {b.compliance_pct:.1f}% (target {b.target_pct or 0:.0f}%)</title></rect>"
                )
            parts.append(
                f'<text x="{label_w + width + 4:.1f}" y="{y + row_h / 2 + 4:.1f}">{b.compliance_pct:.0f}%</text>'
            )
        if b.target_pct is not None:
            tx = x(b.target_pct)
            parts.append(f'<line class="target" x1="{tx:.1f}" x2="{tx:.1f}" y1="{y + 1}" y2="{y + row_h - 1}" '
                         f'stroke="{MARK_COLOUR}" stroke-width="3"/>')  # fmt: skip
    parts.append("</svg>")
    legend = (
        f'<div class="legend"><span class="swatch" style="background:{MET_COLOUR}"></span>target met'
        f'<span class="swatch" style="background:{MISSED_COLOUR}"></span>below target'
        f'<span class="swatch" style="background:{MARK_COLOUR};width:3px"></span>target</div>'
    )
    return "".join(parts) + legend


def dosage_svg(days: Sequence[DayDosage]) -> str:
    """Officer minutes in hot spots per local day as bars, planned minutes as a dark mark."""
    left, plot_w, plot_h, top = 56, 630, 200, 16
    slot = plot_w / max(len(days), 1)
    top_min = _nice(max([d.dwell_min for d in days] + [d.planned_min for d in days] + [1.0]))

    def y(minutes: float) -> float:
        return top + plot_h - minutes / top_min * plot_h

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" id="dosage-chart" width="{left + plot_w + 20}" '
        f'height="{top + plot_h + 40}" role="img" aria-label="Dosage minutes by day">'
        "<title>Officer minutes in hot spots by day</title>"
    ]
    for k in range(5):
        m = top_min * k / 4
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y(m):.1f}" y2="{y(m):.1f}" '
                     f'stroke="{GRID_COLOUR}"/><text x="{left - 6}" y="{y(m) + 4:.1f}" text-anchor="end">'
                     f"{_num(m)}</text>")  # fmt: skip
    for i, d in enumerate(days):
        x0 = left + i * slot
        bar_w = slot * 0.6
        bx = x0 + (slot - bar_w) / 2
        label = d.day.strftime("%a %d %b")
        if d.dwell_min > 0:
            parts.append(
                f'<rect class="bar dosage-bar" data-day="{d.day.isoformat()}" x="{bx:.1f}" y="{y(d.dwell_min):.1f}" '
                f'width="{bar_w:.1f}" height="{plot_h + top - y(d.dwell_min):.1f}" fill="{DOSAGE_COLOUR}">'
                f"<title>{label}: {d.dwell_min:.0f} min</title></rect>"
            )
        parts.append(f'<text x="{x0 + slot / 2:.1f}" y="{y(d.dwell_min) - 5:.1f}" text-anchor="middle">'
                     f"{_num(d.dwell_min)}</text>")  # fmt: skip
        if d.planned_min > 0:
            py = y(d.planned_min)
            parts.append(f'<line class="planned" x1="{bx - 4:.1f}" x2="{bx + bar_w + 4:.1f}" y1="{py:.1f}" '
                         f'y2="{py:.1f}" stroke="{MARK_COLOUR}" stroke-width="3"/>')  # fmt: skip
        parts.append(f'<text x="{x0 + slot / 2:.1f}" y="{top + plot_h + 18}" text-anchor="middle">{label}</text>')
    parts.append(f'<text x="14" y="{top + plot_h / 2:.0f}" transform="rotate(-90 14 {top + plot_h / 2:.0f})" '
                 'text-anchor="middle">minutes</text></svg>')  # fmt: skip
    legend = (
        f'<div class="legend"><span class="swatch" style="background:{DOSAGE_COLOUR}"></span>officer minutes in '
        f'hot spots<span class="swatch" style="background:{MARK_COLOUR};height:3px"></span>planned minutes</div>'
    )
    return "".join(parts) + legend


def _cell(value: object) -> str:
    if value is None:
        return "<td></td>"
    if isinstance(value, int | float):
        return f'<td class="n">{value}</td>'
    return f"<td>{escape(str(value))}</td>"


def table_html(t: Table) -> str:
    head = "".join(f"<th>{escape(c)}</th>" for c in t.columns)
    body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in t.rows)
    if not t.rows:
        body = f'<tr><td colspan="{len(t.columns)}">none</td></tr>'
    return f'<h2>{escape(t.title)}</h2><table id="table-{escape(t.name)}"><tr>{head}</tr>{body}</table>'


def cards_html(cards: Sequence[tuple[object, str]]) -> str:
    """Headline figures as cards: (value, what it is); a missing value shows as "-"."""
    return "".join(
        f'<div class="card"><b>{escape("-" if value is None else str(value))}</b><span>{escape(label)}</span></div>'
        for value, label in cards
    )


def to_html(report: WeeklyReport) -> bytes:
    week, tz = report.week, report.week.timezone
    first, last = week.days[0].day, week.days[-1].day
    summary = {str(row[0]): row[1] for row in report.table("summary").rows}
    cards = [
        ("compliance_pct", "plan compliance %"), ("delivered_visits", "qualifying visits"),
        ("planned_visits", "planned visits"), ("dwell_min", "officer minutes in hot spots"),
        ("inside_pct", "officer time inside %"), ("lost_min", "minutes without signal"),
        ("repeated_loss_devices", "radios with repeated loss"), ("incidents", "incidents in hot spots"),
    ]  # fmt: skip
    card_html = cards_html([(summary.get(k), label) for k, label in cards])
    tables = "".join(table_html(t) for t in report.tables if t.name != "summary")
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Hot spot stocktake {escape(week.label)}</title><style>{CSS}</style></head>
<body>
<h1>Hot spot stocktake, week {escape(week.label)}</h1>
<p class="sub">{first:%A %d %B %Y} to {last:%A %d %B %Y}, local time ({escape(tz)}).
Generated {escape(local_text(report.generated_at, tz))}.</p>
<div class="cards">{card_html}</div>
<h2>Compliance by hot spot</h2>{compliance_svg(report.compliance)}
<h2>Dosage by day</h2>{dosage_svg(report.days)}
{tables}
</body></html>
"""
    return page.encode("utf-8")
