"""The commands about runs and the LMS: validate, diff, run, filter, maintenance, config,
calendar, lms-state, generate."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .. import pipeline, settings
from ..filter import Decision
from ..ims import generate as gen
from ..ims.reader import validate as validate_file
from ..services import Services
from .output import (
    EXIT_FATAL,
    EXIT_REFUSED,
    _connect,
    _exit_code,
    _print_json,
    _print_run,
    _print_validation,
    _size,
)


def cmd_validate(args) -> int:
    result = validate_file(args.file)
    if args.json:
        _print_json(result.as_dict())
    else:
        _print_validation(result.as_dict(), args.examples)
    return 0 if result.ok else EXIT_FATAL


def cmd_diff(args) -> int:
    conn = _connect()
    request = pipeline.Request(args.customer, args.file, dry_run=True)
    result = pipeline.run(conn, request, Services.from_environment())
    if args.json:
        _print_json(result)
    else:
        _print_run(result)
    return _exit_code(result)


def cmd_run(args) -> int:
    conn = _connect()
    if (args.school_year or args.override) and not args.rollover:
        print("--school-year and --override belong to a rollover (--rollover)", file=sys.stderr)
        return 2
    request = pipeline.Request(
        args.customer,
        args.file,
        on=args.on,
        kind=pipeline.Kind.ROLLOVER if args.rollover else pipeline.Kind.IMPORT,
        dry_run=args.dry_run,
        school_year=args.school_year,
        override=args.override,
        accept_older=args.accept_older,
    )
    result = pipeline.run(conn, request, Services.from_environment())
    if args.json:
        _print_json(result)
    else:
        _print_run(result)
    return _exit_code(result)


def cmd_filter(args) -> int:
    """Show a run's verdict, or decide a held run. Parked in Airflow, the run's approval task is
    answered through Airflow's REST API; otherwise the run goes on here."""
    from .. import runs
    from ..errors import Refusal

    conn = _connect()
    if args.action == "show":
        result = runs.summary(conn, args.run)
        if args.json:
            _print_json(result)
        else:
            _print_run({**result, "calendar": None})
        return 0
    if not (args.by and args.reason):
        print("--by and --reason are required to open or reject a held run", file=sys.stderr)
        return 2
    decision = Decision.OPENED if args.action == "open" else Decision.REJECTED
    try:
        result = pipeline.decide(
            conn, args.run, decision, by=args.by, reason=args.reason, via="cli"
        )
    except Refusal as err:
        print(f"refused: {err}", file=sys.stderr)
        return EXIT_REFUSED
    return go_on(conn, result, args)


def go_on(conn, result: dict, args) -> int:
    """A decided run goes on: parked in Airflow, its approval task is answered the same way
    through Airflow's REST API; otherwise it goes on here."""
    from .. import airflow_api

    decision = result["decision"]["decision"]
    run_id, by = result["id"], result["decision"]["decided_by"]
    airflow_run = result.get("airflow_run")
    if airflow_run:
        try:
            # the Required Actions page shows the API's user as the responder: the reason
            # names who decided, and how
            why = f"{result['decision']['reason'] or ''} ({decision} by {by} with sisflow filter)"
            airflow_api.answer(airflow_run["dag_id"], airflow_run["run_id"], decision, why)
            print(
                f"run {run_id}: {decision} by {by}; answered the approval task of "
                f"{airflow_run['dag_id']} run {airflow_run['run_id']}: it goes on in Airflow"
            )
            return 0
        except airflow_api.NotWaiting:
            pass  # its DAG run ended: the run goes on here
        except airflow_api.AirflowApiError as err:
            print(
                f"run {run_id}: {decision} by {by} (stored), but the Airflow run "
                f"{airflow_run['dag_id']} / {airflow_run['run_id']} still waits: {err}. "
                "Answer its approval task in Airflow the same way.",
                file=sys.stderr,
            )
            return EXIT_FATAL
    result = pipeline.resume(conn, run_id, Services.from_environment())
    if args.json:
        _print_json(result)
    else:
        _print_run(result)
    return _exit_code(result)


def cmd_maintenance(args) -> int:
    """History older than the retention period leaves (what the nightly DAG does)."""
    from .. import retention

    conn = _connect()
    gone = retention.prune(conn, older_than_days=args.days, customer=args.customer)
    if args.json:
        _print_json(gone)
    else:
        print(
            f"removed what is older than {gone['days']:g} days: "
            + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in gone.items() if k != "days")
        )
    return 0


def cmd_config(args) -> int:
    from .. import config as cfg

    if args.action == "schema":
        out = Path(args.out or cfg.customers_dir() / "customer.schema.json")
        out.write_text(
            json.dumps(cfg.json_schema(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        print(f"wrote {out}")
        return 0
    configs, errors = cfg.load_all()
    for c in configs:
        print(f"ok      {c.id}")
    for err in errors:
        for problem in err.problems:
            print(f"INVALID {err.path}: {problem}")
    return 1 if errors else 0


def cmd_calendar(args) -> int:
    from .. import calendar, calendar_view
    from .. import config as cfg

    start = args.start or calendar.today()
    if args.customer:
        print(calendar_view.as_text(cfg.load_customer(args.customer), start, args.days))
        return 0
    configs, errors = cfg.load_all()
    for c in configs:
        print(calendar_view.as_text(c, start, args.days))
    out = Path(args.html or settings.home() / "calendars.html")
    out.write_text(calendar_view.as_html(configs, start, args.days), encoding="utf-8")
    print(f"\nall customers: {out}")
    for err in errors:
        print(f"INVALID {err}", file=sys.stderr)
    return 1 if errors else 0


def cmd_lms_state(args) -> int:
    from ..lms.postgres_site import PostgresSite

    conn = _connect()
    with conn.cursor() as cur:
        snapshot = PostgresSite(cur, args.customer).snapshot()
    if args.json:
        _print_json(snapshot)
        return 0
    users, courses = snapshot["users"], snapshot["courses"]
    print(f"LMS site of {args.customer}:")
    print(
        f"  users: {len(users)} ({sum(u['manual'] for u in users)} manual, "
        f"{sum(u['trashed'] for u in users)} in the trash)"
    )
    print(
        f"  units: {sum(not u['removed'] for u in snapshot['units'])} "
        f"({sum(u['removed'] for u in snapshot['units'])} removed)"
    )
    print(
        f"  courses: {sum(c['state'] == 'active' for c in courses)} active, "
        f"{sum(c['state'] == 'archived' for c in courses)} archived, "
        f"{sum(not c['created_by_integration'] for c in courses)} made by hand"
    )
    parts = snapshot["participants"]
    print(f"  participants: {len(parts)} ({sum(not p['synced'] for p in parts)} manual)")
    terms = snapshot["terms"]
    print(
        "  terms: "
        + ", ".join(f"{t['name']}{' (archived)' if t['archived'] else ''}" for t in terms)
    )
    return 0


def cmd_generate(args) -> int:
    size = _size(args.size)
    out = Path(args.out or f"{gen.Municipality(args.seed, 0).slug}-{args.year}.xml")
    out.parent.mkdir(parents=True, exist_ok=True)
    counts = gen.generate(out, seed=args.seed, year=args.year, size=size)
    print(f"{out}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return 0
