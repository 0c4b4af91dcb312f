"""Loading patrol plans from a YAML or JSON file, with one-line errors naming the file and field."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from geofence.plans import Plan, PlanError, parse_plans


class PlanFileError(ValueError):
    """A plans file that cannot be used; the message is one line."""


def load_plan_file(path: str | Path) -> list[Plan]:
    """Every plan in a YAML (.yaml/.yml) or JSON file, checked (not yet against the fences)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PlanFileError(f"cannot read plans file {str(path)!r}: {exc.strerror or exc}") from None
    try:
        doc = yaml.safe_load(text) if path.suffix.lower() in (".yaml", ".yml") else json.loads(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise PlanFileError(f"{path}: not valid YAML{where}: {getattr(exc, 'problem', None) or exc}") from None
    except json.JSONDecodeError as exc:
        raise PlanFileError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    try:
        return parse_plans(doc)
    except PlanError as exc:
        raise PlanFileError(f"{path}: {exc}") from None
