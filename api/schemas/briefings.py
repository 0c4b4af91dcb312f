"""The sergeant's briefing pack as data (format=json); as HTML or PDF it is a file, not a model."""

from __future__ import annotations

from pydantic import BaseModel, Field

from services.reports.briefing import Briefing

Cell = str | int | float | None


class CardPublic(BaseModel):
    label: str
    value: Cell


class TablePublic(BaseModel):
    """One table of the page: rows hold the columns' values in order (minutes to two decimals)."""

    name: str = Field(description="hotspots, behind, officers, feedback or signal_loss")
    title: str
    columns: list[str]
    rows: list[list[Cell]]


class TrendDayPublic(BaseModel):
    date: str = Field(description="local day, YYYY-MM-DD")
    dwell_min: float = Field(description="officer minutes in the team's hot spots that day")
    planned_min: float = Field(description="minutes planned by the team's windows starting that day")


class BriefingPublic(BaseModel):
    team: str
    date: str = Field(description="the briefing's local day, YYYY-MM-DD")
    last_shift_date: str = Field(description="the day before: the plan windows starting then are the last shift")
    start: float = Field(description="officer time and signal loss from the last shift's first window start (epoch s)")
    end: float = Field(description="to its last window's end (without windows: the whole day before)")
    timezone: str
    generated_at: float
    cards: list[CardPublic]
    tables: list[TablePublic]
    trend: list[TrendDayPublic]

    @classmethod
    def of(cls, b: Briefing) -> BriefingPublic:
        return cls(
            team=b.team, date=b.day.day.isoformat(), last_shift_date=b.last.day.isoformat(), start=b.start,
            end=b.end, timezone=b.timezone, generated_at=b.generated_at,
            cards=[CardPublic(label=label, value=value) for value, label in b.cards],
            tables=[TablePublic(name=t.name, title=t.title, columns=list(t.columns), rows=[list(r) for r in t.rows])
                    for t in b.tables],
            trend=[TrendDayPublic(date=d.day.isoformat(), dwell_min=d.dwell_min, planned_min=d.planned_min)
                   for d in b.trend],
        )  # fmt: skip
