"""The `hotspots` command. Every Settings field is also a flag: --debounce-s is HOTSPOTS_DEBOUNCE_S."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import sys
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ingest.csv_pings import CsvError
from ingest.geojson_fences import FenceFileError
from ingest.gpx import GpxError
from ingest.incidents_csv import SOURCES
from ingest.nmea import NmeaError
from ingest.pei import PeiError
from ingest.ping_files import PingFilesError
from ingest.rules import InputError
from services.access.roles import Role
from services.replay import replay
from services.settings import Settings

#: The SEMANTICS.md parameters: the flags shared by the live service and the offline replay.
ENGINE_FIELDS = ("debounce_s", "max_accuracy_m", "signal_timeout_s", "max_lateness_s")
#: What the weekly report reads: the store, and the settings its figures depend on.
#: Where `hotspots ingest` produces to.
INGEST_FIELDS = ("kafka_bootstrap", "topic_pings")
REPORT_FIELDS = ("data_dir", "database_url", "timezone", "visit_merge_s", "shift_break_s", "repeated_loss_gaps")


def _add_settings_flags(p: argparse.ArgumentParser, names: Sequence[str]) -> None:
    """One flag per Settings field; unset flags fall back to HOTSPOTS_* and then the default."""
    for name in names:
        info = Settings.model_fields[name]
        flag = "--" + name.replace("_", "-")
        help_text = f"{info.description or name} (env HOTSPOTS_{name.upper()}, default {info.default})"
        annotation = info.annotation
        if annotation is bool:
            p.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=None, help=help_text)
            continue
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if typing.get_origin(annotation) is typing.Literal:
            p.add_argument(flag, dest=name, choices=args, default=None, help=help_text)
            continue
        base = args[0] if args else annotation
        kind: Any = base if base in (int, float, Path) else str
        p.add_argument(flag, dest=name, type=kind, default=None, help=help_text)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hotspots", description="Hot spot patrol tracking: geofence events and dwell."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the service: Kafka matcher and HTTP API")
    _add_settings_flags(run, list(Settings.model_fields))

    keys = sub.add_parser("keys", help="create, list and revoke API keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="create a key; the key is the last word printed")
    create.add_argument("--role", required=True, choices=[r.value for r in Role], help="what the key may do")
    create.add_argument("--name", default="", help="who or what holds it, for the audit log")
    create.add_argument("--officer-id", help="officer keys: the officer whose own data the key may read")
    create.add_argument("--device-id", help="ingest keys: the one device (a phone) the key may post pings for")
    revoke = keys_sub.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("key_id")
    listing = keys_sub.add_parser("list", help="list keys (never their secrets)")
    for p in (create, revoke, listing):
        _add_settings_flags(p, ["data_dir", "database_url"])

    plans = sub.add_parser("plans", help="patrol plans: the planned dosage per hot spot and window")
    plans_sub = plans.add_subparsers(dest="plans_command", required=True)
    load = plans_sub.add_parser("load", help="create or replace the plans of a YAML or JSON file, all or none")
    load.add_argument("file", type=Path, help="plans document (see samples/plans.yaml)")
    _add_settings_flags(load, ["data_dir", "database_url"])

    asg = sub.add_parser("assignments", help="who carries which radio: device -> officer over a period")
    asg_sub = asg.add_subparsers(dest="assignments_command", required=True)
    asg_load = asg_sub.add_parser("load", help="create or replace assignments; bad rows reported as FILE:LINE: reason")
    asg_load.add_argument("file", type=Path, help="CSV or JSON: device_id, officer_id, from[, to, callsign, team, id]")
    _add_settings_flags(asg_load, ["data_dir", "database_url"])

    inc = sub.add_parser("incidents", help="import incidents (crime, calls, injuries) and rank micro-places")
    inc_sub = inc.add_subparsers(dest="incidents_command", required=True)
    imp = inc_sub.add_parser("import", help="import an incident CSV; bad rows are reported as FILE:LINE: reason")
    imp.add_argument("file", type=Path, help="CSV with ts (or month), lat, lon, category[, id, source, harm_weight]")
    imp.add_argument("--source", default="crime", choices=SOURCES, help="for rows without one")
    rank = inc_sub.add_parser("rank", help="rank micro-places (square cells) by incidents; propose fences")
    rank.add_argument("--cell-m", type=float, default=150.0, help="cell side in metres")
    rank.add_argument("--top", type=int, default=20, help="how many cells to propose")
    rank.add_argument("--by", choices=["count", "harm"], default="count", help="incident count or summed harm")
    rank.add_argument("--weights", type=Path, help="JSON object category -> harm weight (default: built-in table)")
    rank.add_argument("--from", dest="start", help="only incidents from this time (ISO 8601 or epoch)")
    rank.add_argument("--to", dest="end", help="only incidents before this time (ISO 8601 or epoch)")
    rank.add_argument("--source", action="append", choices=SOURCES, help="only these sources")
    rank.add_argument("--buffer-m", type=float, default=0.0, help="buffer_m of the proposed fences")
    rank.add_argument("--out", type=Path, help="write the proposed fences here (GeoJSON FeatureCollection)")
    for p in (imp, rank):
        _add_settings_flags(p, ["data_dir", "database_url"])

    sim = sub.add_parser("simulate", help="send live patrol traffic (current timestamps) to Kafka or HTTP")
    sim.add_argument("--fences", type=Path, default=Path("samples/fences.geojson"), help="hot spots to patrol")
    sim.add_argument("--devices", type=int, default=20, help="officers (radios) to simulate")
    sim.add_argument("--rate", type=float, default=2.0, help="pings per second, all devices together")
    sim.add_argument("--duration-s", type=float, help="stop after this many seconds (default: until Ctrl-C)")
    sim.add_argument("--kafka-bootstrap", help="send to this Kafka instead of HTTP")
    sim.add_argument("--url", default="http://127.0.0.1:8000", help="the service's HTTP API")
    sim.add_argument("--topic", default="pings", help="Kafka topic of pings")
    sim.add_argument(
        "--api-key",
        help="key with the ingest role (env HOTSPOTS_API_KEY); unset: create one in the local store of --data-dir",
    )
    sim.add_argument("--seed", type=int, default=1, help="random seed")
    _add_settings_flags(sim, ["data_dir", "database_url"])

    rep = sub.add_parser("report", help="the weekly stocktake of a local ISO week as CSV, XLSX or HTML")
    rep.add_argument("--week", required=True, help="ISO week in the timezone setting, e.g. 2026-W47")
    rep.add_argument("--format", choices=["csv", "xlsx", "html"], help="default: --out's extension if one of these")
    rep.add_argument("--out", type=Path, required=True, help="the file to write")
    _add_settings_flags(rep, REPORT_FIELDS)

    brf = sub.add_parser("briefing", help="a team's start-of-shift briefing pack (A4) as HTML or PDF")
    brf.add_argument("--team", required=True, help="the team of the plans (and assignments)")
    brf.add_argument("--date", required=True, help="local day of the briefing, YYYY-MM-DD (last shift: the day before)")
    brf.add_argument("--format", choices=["html", "pdf"], help="default: --out's extension if one of these, else html")
    brf.add_argument("--out", type=Path, required=True, help="the file to write")
    _add_settings_flags(brf, REPORT_FIELDS)

    rp = sub.add_parser(
        "replay", help="run the geofence engine over a file or folder of pings", description=replay.__doc__
    )
    rp.add_argument("--fences", type=Path, required=True, help="GeoJSON FeatureCollection of hot spots")
    rp.add_argument(
        "--pings", type=Path, required=True,
        help="CSV (device_id,timestamp,lat,lon[,accuracy_m]), .gpx, .nmea/.log, .pei or a folder (docs/replay.md)",
    )  # fmt: skip
    rp.add_argument("--device-id", help="device of the GPX and NMEA files (default: each file's stem)")
    rp.add_argument("--out", type=Path, help="events JSONL (default: stdout)")
    rp.add_argument("--dwell-out", type=Path, help="CSV of device_id,fence_id,visits,dwell_s")
    rp.add_argument("--devices-out", type=Path, help="CSV of per-device active/inside/outside/lost seconds")
    rp.add_argument("--partitions", type=int, default=1, help="split devices as a topic of N partitions does")
    _add_settings_flags(rp, ENGINE_FIELDS)

    ing = sub.add_parser("ingest", help="send a file of radio reports to the service's broker")
    pei = ing.add_subparsers(dest="ingest_command", required=True).add_parser(
        "pei", help="a PEI log's LIP reports (+CTSDSR lines), decoded and produced to the pings topic"
    )
    pei.add_argument("--file", type=Path, required=True, help="the PEI log (docs/replay.md#pei-logs)")
    _add_settings_flags(pei, INGEST_FIELDS)
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    if args.command in ("report", "briefing"):
        return Settings.build({name: getattr(args, name) for name in REPORT_FIELDS})
    if args.command == "ingest":
        return Settings.build({name: getattr(args, name) for name in INGEST_FIELDS})
    if args.command in ("keys", "simulate", "incidents", "plans", "assignments"):
        return Settings.build({name: getattr(args, name) for name in ("data_dir", "database_url")})
    if args.command != "run":  # replay and simulate share only the engine flags
        return Settings.build({name: getattr(args, name, None) for name in ENGINE_FIELDS})
    return Settings.build({name: getattr(args, name) for name in Settings.model_fields})


def _fail(message: str) -> int:
    print(f"hotspots: error: {message}", file=sys.stderr)
    return 2


def _report(line: str) -> None:
    print(line, file=sys.stderr)


def _replay(args: argparse.Namespace, settings: Settings) -> int:
    for path in (args.out, args.dwell_out, args.devices_out):
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with contextlib.nullcontext(sys.stdout.buffer) if args.out is None else args.out.open("wb") as out:
            summary = replay(
                args.fences, args.pings, settings.engine, out, _report, args.dwell_out, args.devices_out,
                partitions=args.partitions, device_id=args.device_id,
            )  # fmt: skip
    except (FenceFileError, CsvError, GpxError, NmeaError, PeiError, PingFilesError, InputError) as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(f"{exc.filename or ''}: {exc.strerror or exc}")
    _report(summary.line())
    return 0


def _ingest(args: argparse.Namespace, settings: Settings) -> int:
    from aiokafka.errors import KafkaError

    from services.errors import Unavailable
    from services.ingest_pei import ingest_pei

    if settings.kafka_bootstrap is None:
        return _fail("ingest pei produces to the service's broker: give --kafka-bootstrap HOST:PORT")
    try:
        produced, refused = asyncio.run(ingest_pei(args.file, settings.kafka_bootstrap, settings.topic_pings, _report))
    except (PeiError, Unavailable) as exc:
        return _fail(str(exc))
    except (KafkaError, OSError) as exc:
        return _fail(f"broker {settings.kafka_bootstrap}: {exc}")
    print(f"{args.file}: {produced} pings produced to {settings.topic_pings}, {refused} lines refused")
    return 1 if refused else 0


def _run(settings: Settings) -> int:
    from services.run import run_service  # the service's imports are heavier than replay's

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(run_service(settings))
    except (FenceFileError, OSError) as exc:
        return _fail(str(exc))
    return 0


def _simulate(args: argparse.Namespace, settings: Settings) -> int:
    from services.access.keys import create_key
    from services.simulate import SimulateOptions, simulate
    from services.store import database_url

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if args.devices < 1 or args.rate <= 0:
        return _fail("--devices must be >= 1 and --rate > 0")
    api_key = args.api_key or os.environ.get("HOTSPOTS_API_KEY")
    if api_key is None and not args.kafka_bootstrap:
        # Whoever can write the service's store may make keys: a local demo needs no extra step.
        url = database_url(settings.database_url, settings.data_dir)
        api_key = asyncio.run(create_key(url, Role.INGEST, "hotspots simulate"))
    opts = SimulateOptions(
        fences=args.fences, devices=args.devices, rate=args.rate, duration_s=args.duration_s,
        kafka_bootstrap=args.kafka_bootstrap, url=args.url, topic=args.topic,
        api_key=api_key, seed=args.seed,
    )  # fmt: skip
    try:
        asyncio.run(simulate(opts))
    except KeyboardInterrupt:
        return 0
    except (OSError, RuntimeError, ValueError) as exc:
        return _fail(str(exc))
    return 0


def _keys(args: argparse.Namespace, settings: Settings) -> int:
    from services.access.keys import create_key, list_keys, revoke_key
    from services.store import database_url

    url = database_url(settings.database_url, settings.data_dir)
    if args.keys_command == "create":
        name = args.name or f"{args.role} key"
        try:
            token = asyncio.run(create_key(url, Role(args.role), name, args.officer_id, device_id=args.device_id))
        except ValueError as exc:
            return _fail(str(exc))
        print(f"created {args.role} key for {name!r}; it is shown only now:")
        print(token)
    elif args.keys_command == "list":
        for line in asyncio.run(list_keys(url)):
            print(line)
    elif not asyncio.run(revoke_key(url, args.key_id)):
        return _fail(f"no active key {args.key_id!r}")
    return 0


def _incidents(args: argparse.Namespace, settings: Settings) -> int:
    from services.measures.incidents import import_file, rank_stored
    from services.store import database_url

    url = database_url(settings.database_url, settings.data_dir)
    if args.incidents_command == "import":
        try:
            parsed, result = asyncio.run(import_file(url, str(args.file), args.source))
        except CsvError as exc:
            return _fail(str(exc))
        for e in parsed.errors:
            _report(f"{args.file}:{e.line}: {e.reason}")
        print(f"{args.file}: {parsed.rows} rows, {len(parsed.incidents)} incidents imported "
              f"({result.new} new, {result.replaced} replaced), {parsed.rejected} rejected")  # fmt: skip
        return 1 if parsed.errors else 0
    try:
        lines, collection = asyncio.run(
            rank_stored(
                url, cell_m=args.cell_m, top=args.top, by=args.by, weights=args.weights, start=args.start,
                end=args.end, sources=args.source, buffer_m=args.buffer_m,
            )
        )  # fmt: skip
    except (ValueError, OSError) as exc:
        return _fail(str(exc))
    print("\n".join(lines))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(collection, indent=1) + "\n", encoding="utf-8")
        print(f"proposed fences: {args.out}")
    return 0


def _plans(args: argparse.Namespace, settings: Settings) -> int:
    from geofence.plans import PlanError
    from ingest.plan_file import PlanFileError, load_plan_file
    from services.store import database_url
    from services.store.plans import load_plans

    try:
        plans = load_plan_file(args.file)
        asyncio.run(load_plans(database_url(settings.database_url, settings.data_dir), plans))
    except PlanFileError as exc:
        return _fail(str(exc))
    except PlanError as exc:
        return _fail(f"{args.file}: {exc}")
    print(f"loaded {len(plans)} plans: {', '.join(p.plan_id for p in plans)}")
    return 0


def _assignments(args: argparse.Namespace, settings: Settings) -> int:
    from services.store import database_url
    from services.store.assignments import load_assignment_file

    try:
        parsed, stored = asyncio.run(
            load_assignment_file(database_url(settings.database_url, settings.data_dir), str(args.file))
        )
    except CsvError as exc:
        return _fail(str(exc))
    for e in parsed.errors:
        _report(f"{args.file}:{e.line}: {e.reason}" if e.line is not None else f"{args.file}: {e.where}: {e.reason}")
    rejected = len({(e.line, e.index) for e in parsed.errors})
    print(f"{args.file}: {parsed.rows} rows, {stored} assignments stored, {rejected} rejected")
    return 1 if parsed.errors else 0


def _weekly(args: argparse.Namespace, settings: Settings) -> int:
    from services.measures.local_weeks import parse_week
    from services.reports.weekly import FORMATS, Format, write_weekly_report
    from services.store import database_url

    by_suffix: dict[str, Format] = {f".{f}": f for f in FORMATS}
    fmt: Format = args.format or by_suffix.get(args.out.suffix.lower(), "html")
    try:
        week = parse_week(args.week, settings.timezone)
        report = asyncio.run(
            write_weekly_report(database_url(settings.database_url, settings.data_dir), settings, week, fmt, args.out)
        )
    except ValueError as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(f"{exc.filename or args.out}: {exc.strerror or exc}")
    print(f"{args.out}: week {report.week.label} ({fmt}), {len(report.table('hotspots').rows)} hot spots, "
          f"{len(report.devices)} devices")  # fmt: skip
    return 0


def _briefing(args: argparse.Namespace, settings: Settings) -> int:
    from ingest.rules import ID
    from services.errors import DomainError
    from services.measures.local_weeks import parse_day
    from services.reports.briefing import write_briefing
    from services.store import database_url

    reason = ID.reason(args.team)
    if reason is not None:
        return _fail(f"team: {reason}")
    out: Path = args.out
    fmt: typing.Literal["html", "pdf"] = args.format or ("pdf" if out.suffix.lower() == ".pdf" else "html")
    try:
        day = parse_day(args.date, settings.timezone)
        made = asyncio.run(
            write_briefing(database_url(settings.database_url, settings.data_dir), settings, args.team, day, fmt, out)
        )
    except (ValueError, DomainError) as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(f"{exc.filename or out}: {exc.strerror or exc}")
    print(f"{out}: briefing of {made.team} for {made.day.day.isoformat()} ({fmt}), "
          f"{len(made.table('hotspots').rows)} hot spots, {len(made.table('officers').rows)} officers")  # fmt: skip
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = _settings(args)
    except ValidationError as exc:
        first = exc.errors()[0]
        return _fail(f"{first['loc'][0]}: {first['msg']}")
    if args.command == "replay":
        return _replay(args, settings)
    if args.command == "ingest":
        return _ingest(args, settings)
    if args.command == "simulate":
        return _simulate(args, settings)
    if args.command == "keys":
        return _keys(args, settings)
    if args.command == "incidents":
        return _incidents(args, settings)
    if args.command == "plans":
        return _plans(args, settings)
    if args.command == "assignments":
        return _assignments(args, settings)
    if args.command == "report":
        return _weekly(args, settings)
    if args.command == "briefing":
        return _briefing(args, settings)
    return _run(settings)


if __name__ == "__main__":
    sys.exit(main())
