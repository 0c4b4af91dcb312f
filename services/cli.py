"""The `hotspots` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from ingest.csv_pings import CsvError
from ingest.geojson_fences import FenceFileError
from services.replay import replay
from services.settings import Settings


def _engine_flags(p: argparse.ArgumentParser) -> None:
    """The SEMANTICS.md parameters; unset flags fall back to HOTSPOTS_* then the defaults."""
    p.add_argument("--debounce-s", type=float, help="seconds a new state must hold (default 0)")
    p.add_argument("--max-accuracy-m", type=float, help="less accurate fixes change no state (default 100)")
    p.add_argument("--signal-timeout-s", type=float, help="silence before a device is lost (default 300)")
    p.add_argument("--max-lateness-s", type=float, help="out-of-order tolerance (default 30)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hotspots", description="Hot spot patrol tracking: geofence events and dwell."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    rp = sub.add_parser("replay", help="run the geofence engine over a CSV of pings", description=replay.__doc__)
    rp.add_argument("--fences", type=Path, required=True, help="GeoJSON FeatureCollection of hot spots")
    rp.add_argument("--pings", type=Path, required=True, help="CSV with device_id,timestamp,lat,lon[,accuracy_m]")
    rp.add_argument("--out", type=Path, help="events JSONL (default: stdout)")
    rp.add_argument("--dwell-out", type=Path, help="CSV of device_id,fence_id,visits,dwell_s")
    rp.add_argument("--devices-out", type=Path, help="CSV of per-device active/inside/outside/lost seconds")
    _engine_flags(rp)
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.build(
        {
            "debounce_s": args.debounce_s,
            "max_accuracy_m": args.max_accuracy_m,
            "signal_timeout_s": args.signal_timeout_s,
            "max_lateness_s": args.max_lateness_s,
        }
    )


def _fail(message: str) -> int:
    print(f"hotspots: error: {message}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = _settings(args)
    except ValidationError as exc:
        first = exc.errors()[0]
        return _fail(f"{first['loc'][0]}: {first['msg']}")

    def report(line: str) -> None:
        print(line, file=sys.stderr)

    for path in (args.out, args.dwell_out, args.devices_out):
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
    try:
        if args.out is None:
            summary = replay(
                args.fences, args.pings, settings.engine, sys.stdout, report, args.dwell_out, args.devices_out
            )
        else:
            with args.out.open("w", encoding="utf-8") as out:
                summary = replay(
                    args.fences, args.pings, settings.engine, out, report, args.dwell_out, args.devices_out
                )
    except (FenceFileError, CsvError) as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(f"{exc.filename or ''}: {exc.strerror or exc}")
    report(summary.line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
