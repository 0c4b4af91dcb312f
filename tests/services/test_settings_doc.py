"""The settings table of deploy/README.md is generated from `Settings`: a new setting cannot go undocumented."""

from __future__ import annotations

import pytest
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from scripts.settings_table import README, rewrite
from scripts.settings_table import render as render_table
from services.settings import Settings


def test_settings_table_committed_readme_matches_generator() -> None:
    committed = README.read_text(encoding="utf-8")
    assert rewrite(committed, render_table()) == committed, "deploy/README.md is stale: run `make docs`"


def test_settings_table_every_field_has_a_row_with_env_var_and_flag() -> None:
    rows = README.read_text(encoding="utf-8").splitlines()
    for name in Settings.model_fields:
        assert any(
            row.startswith(f"| `HOTSPOTS_{name.upper()}` | `--") and name.replace("_", "-") in row for row in rows
        ), name


def test_settings_table_field_without_description_is_refused() -> None:
    class Undocumented(BaseSettings):
        model_config = SettingsConfigDict(env_prefix="X_")
        documented: int = Field(1, description="has one")
        bare: int = 2

    with pytest.raises(ValueError, match="bare"):
        render_table(Undocumented)


def test_settings_table_rows_show_defaults_switches_and_choices() -> None:
    table = render_table()
    assert "| `HOTSPOTS_DEBOUNCE_S` | `--debounce-s` | `0` |" in table
    assert "| `HOTSPOTS_KAFKA_BOOTSTRAP` | `--kafka-bootstrap` | unset |" in table
    assert "| `HOTSPOTS_WALL_CLOCK_WATERMARK` | `--[no-]wall-clock-watermark` | on |" in table
    assert "| `HOTSPOTS_ROLE` | `--role {all,matcher,api}` | `all` |" in table


def test_settings_table_rewrite_without_markers_is_refused() -> None:
    with pytest.raises(ValueError, match="markers"):
        rewrite("# a README with no table\n", render_table())
