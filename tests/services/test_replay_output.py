"""`hotspots replay` output bytes against an independent implementation of the same rules."""

from __future__ import annotations

from pathlib import Path

from bench.reference import reference_replay
from bench.replay import heavy_workload, write_workload
from services.cli import main


def test_replay_events_byte_identical_to_plain_reference_on_event_heavy_patrols(tmp_path: Path) -> None:
    fences, pings = write_workload(tmp_path, "heavy", *heavy_workload(n_devices=30, duration_s=3600, seed=5))
    ours, theirs = tmp_path / "ours.jsonl", tmp_path / "reference.jsonl"
    assert main(["replay", "--fences", str(fences), "--pings", str(pings), "--out", str(ours)]) == 0
    with theirs.open("wb") as out:
        events = reference_replay(fences, pings, out)
    assert events > 1000  # enters, exits, losses and restores all occur
    assert ours.read_bytes() == theirs.read_bytes()
