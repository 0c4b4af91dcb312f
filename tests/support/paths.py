"""Where the checkout's own files are, however deep the test module that asks."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "samples"
#: Screenshots and reports the tests leave for a person to look at (ignored by git).
ARTIFACTS = REPO / "var" / "test-artifacts"
