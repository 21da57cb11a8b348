"""The ``sisflow`` command: the same pipeline functions that the DAG tasks call, by hand."""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
from datetime import date
from pathlib import Path

from . import pipeline, settings, state
from .ims import generate as gen
from .ims.reader import validate as validate_file
from .services import Services

log = logging.getLogger("sisflow")

EXIT_FATAL = 1  # the file was rejected whole


#: where --json writes: the real standard output, while everything else that writes to it
#: (Airflow's logging, paramiko, the hooks, a subprocess) goes to stderr (see main)
_JSON_OUT: list = []


def _print_json(data) -> None:
    out = _JSON_OUT[0] if _JSON_OUT else sys.stdout
    json.dump(data, out, indent=2, ensure_ascii=False, default=str)
    out.write("\n")
    out.flush()


def _stdout_for_json_only() -> None:
    """Standard output for the one JSON document: file descriptor 1 now points at stderr, so
    whatever else writes there (in Python or not) cannot break the JSON."""
    sys.stdout.flush()
    _JSON_OUT.append(os.fdopen(os.dup(1), "w", encoding="utf-8"))
    os.dup2(2, 1)


def _per_entity(values: dict) -> str:
    return ", ".join(f"{e} {values.get(e, 0)}" for e in ("person", "group", "membership"))


def _counts_table(counts: dict) -> str:
    lines = [f"  {'':<12}{'create':>10}{'update':>10}{'delete':>10}"]
    for entity in ("person", "group", "membership"):
        c = counts.get(entity, {})
        cells = "".join(f"{c.get(op, 0):>10}" for op in ("create", "update", "delete"))
        lines.append(f"  {entity:<12}{cells}")
    return "\n".join(lines)


def _print_validation(d: dict, examples: int) -> None:
    f = d["file"]
    print(f"{f['path']}: {f['size']} bytes, sha256 {f['sha256']}")
    if d["properties"]:
        p = d["properties"]
        print(f"  {p['type']} file from {p['datasource']} at {p['datetime']}")
    if d["fatal"]:
        fatal = d["fatal"]
        where = f"line {fatal['line']}: " if fatal["line"] else ""
        print(f"REJECTED: {where}{fatal['reason']}")
    print("  records read: " + _per_entity(d["records"]))
    print("  skipped:      " + _per_entity(d["skipped"]))
    for kind, n in d["problem_counts"].items():
        print(f"  {n:>8}  {kind}")
    for p in d["problems"][:examples]:
        print(f"  line {p['line']}: {p['severity']}: {p['entity']} {p['id']}: {p['reason']}")
    if len(d["problems"]) > examples:
        print(f"  ... {len(d['problems']) - examples} more (--json lists them all)")


def cmd_validate(args) -> int:
    result = validate_file(args.file)
    if args.json:
        _print_json(result.as_dict())
    else:
        _print_validation(result.as_dict(), args.examples)
    return 0 if result.ok else EXIT_FATAL


EXIT_REFUSED = 3  # the run was refused on purpose (too early, busy, contradicting decision)


def _print_run(r: dict) -> None:
    cal = r.get("calendar")
    if r.get("refusal"):
        print(f"{r['customer']}: REFUSED ({r['refusal']['outcome']}): {r['refusal']['reason']}")
    if r.get("failed"):
        print(f"{r['customer']}: FAILED at {r['failed']['task']}: {r['failed']['reason']}")
    if r["id"] is None:
        if r["status"] == "paused":
            print(
                f"{r['customer']}: paused until {cal['until']} (on {cal['date']}): "
                "nothing fetched or applied"
            )
        _print_email(r)
        return
    print(f"run {r['id']} for {r['customer']}: {r['status']} ({r['file_name']})")
    if cal and cal["mode"] != "normal":
        print(f"  calendar on {cal['date']}: {cal['mode']} until {cal['until']}")
    for done in r.get("finished") or []:
        print(f"  finished the LMS apply of run {done['run']} first ({done['changes']} changes)")
    if r["fatal"]:
        print(f"  rejected: line {r['fatal'].get('line')}: {r['fatal'].get('reason')}")
    if r["same_as_run"]:
        print(f"  the file is identical to the one committed by run {r['same_as_run']}")
    if r["records"]:
        print("  records read: " + _per_entity(r["records"]))
        print("  skipped:      " + _per_entity(r["skipped"]))
    if r["counts"]:
        print(_counts_table(r["counts"]))
    _print_verdict(r)
    if r.get("lms_counts"):
        print("  applied to the LMS (applied/deferred/skipped/failed per step):")
        for step, c in r["lms_counts"].items():
            extra = "".join(
                f", {k} {v}"
                for k, v in c.items()
                if k not in ("applied", "deferred", "skipped", "failed")
            )
            print(
                f"    {step:<17}{c['applied']:>8}{c['deferred']:>8}{c['skipped']:>8}"
                f"{c['failed']:>8}{extra}"
            )
    _print_email(r)


def _print_email(r: dict) -> None:
    email = r.get("email")
    if email and email.get("sent"):
        print(f"status email: {email['subject']}\n  -> {email['sent']}")


def _exit_code(r: dict) -> int:
    if r["status"] == "rejected" or r.get("failed"):
        return EXIT_FATAL
    return EXIT_REFUSED if r.get("refusal") else 0


_OPEN: list = []  # connections a command opened: closed when it returns (see main)


def _connect():
    from .db.connection import connect  # late: validate and generate need no database

    conn = connect()
    _OPEN.append(conn)
    return conn


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


def _customer_id(value: str) -> str:
    """A customer id, checked before anything touches a path or the database (exit 2)."""
    from .config import CUSTOMER_ID

    if not re.match(CUSTOMER_ID, value):
        shown = value if len(value) <= 70 else value[:67] + "..."
        raise argparse.ArgumentTypeError(
            f"'{shown}' is not a customer id: use lower-case letters, digits, '-' and '_' "
            "(at most 63)"
        )
    return value


def _size(value: str) -> str | int:
    return int(value) if value.isdigit() else value


def _print_verdict(r: dict) -> None:
    verdict = r.get("verdict")
    if not verdict:
        return
    if verdict["passed"]:
        print(f"  filter ({verdict['profile']} profile): passed")
        return
    print(f"  filter ({verdict['profile']} profile): HELD")
    for trip in verdict["trips"]:
        print(f"    - {trip['text']}")
    decision = r.get("decision")
    if decision:
        who = f" by {decision['decided_by']}" if decision["decided_by"] else ""
        print(
            f"  decision: {decision['decision']}{who} via {decision['via']} "
            f"at {decision['decided_at']:%Y-%m-%d %H:%M}"
            + (f": {decision['reason']}" if decision["reason"] else "")
        )
    elif r["status"] == "held":
        print(
            f"  waiting for a person until {r['deadline']:%Y-%m-%d %H:%M} UTC: check the change"
            f" with the customer, then\n    sisflow filter open {r['id']} --by NAME --reason "
            f"TEXT   (or reject), or answer the approval task of the run in Airflow"
        )


def cmd_filter(args) -> int:
    """Show a run's verdict, or decide a held run. Parked in Airflow, the run's approval task is
    answered through Airflow's REST API; otherwise the run goes on here."""
    from . import airflow_api, runs
    from .errors import Refusal

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
    decision = "opened" if args.action == "open" else "rejected"
    try:
        result = pipeline.decide(
            conn, args.run, decision, by=args.by, reason=args.reason, via="cli"
        )
    except Refusal as err:
        print(f"refused: {err}", file=sys.stderr)
        return EXIT_REFUSED
    airflow_run = result.get("airflow_run")
    if airflow_run:
        try:
            airflow_api.answer(airflow_run["dag_id"], airflow_run["run_id"], decision, args.reason)
            print(
                f"run {args.run}: {decision} by {args.by}; answered the approval task of "
                f"{airflow_run['dag_id']} run {airflow_run['run_id']}: it goes on in Airflow"
            )
            return 0
        except airflow_api.NotWaiting:
            pass  # its DAG run ended: the run goes on here
        except airflow_api.AirflowApiError as err:
            print(
                f"run {args.run}: {decision} by {args.by} (stored), but the Airflow run "
                f"{airflow_run['dag_id']} / {airflow_run['run_id']} still waits: {err}. "
                "Answer its approval task in Airflow the same way.",
                file=sys.stderr,
            )
            return EXIT_FATAL
    result = pipeline.resume(conn, args.run, Services.from_environment())
    if args.json:
        _print_json(result)
    else:
        _print_run(result)
    return _exit_code(result)


def cmd_readiness(args) -> int:
    """The readiness report (email, and CSV files with names when asked), or an attach, an
    undo or the list of attached sync keys."""
    from .config import load_customer
    from .readiness import attach as attaching
    from .readiness import readiness, send

    action, rest = (
        (args.words[0], args.words[1:])
        if args.words[0] in ("attach", "undo", "attached")
        else ("check", args.words)
    )
    wanted = {"check": 1, "attach": 1, "attached": 1, "undo": 2}[action]
    if len(rest) != wanted:
        print(
            f"sisflow readiness {'' if action == 'check' else action + ' '}takes "
            f"{'CUSTOMER ATTACHMENT' if wanted == 2 else 'CUSTOMER'}",
            file=sys.stderr,
        )
        return 2
    config = load_customer(rest[0])
    conn = _connect()
    try:
        if action == "attach":
            if not args.from_csv:
                print("attach needs --from-csv FILE", file=sys.stderr)
                return 2
            ids = attaching.attach(
                conn,
                config.id,
                attaching.read_csv(args.from_csv),
                by=args.by,
                via="cli",
                source=args.from_csv,
            )
            print(
                f"{config.id}: {len(ids)} sync keys attached (attachments "
                f"{', '.join(map(str, ids)) or 'none'}); undo one with "
                f"'sisflow readiness undo {config.id} ATTACHMENT --by NAME'"
            )
            return 0
        if action == "undo":
            done = attaching.undo(conn, config.id, int(rest[1]), by=args.by)
            print(
                f"{config.id}: attachment {done['attachment']} undone: account "
                f"{done['account_id']} is manual again"
            )
            return 0
    except (attaching.AttachError, ValueError) as err:
        print(f"sisflow: {err}", file=sys.stderr)
        return EXIT_FATAL
    if action == "attached":
        rows = attaching.listing(conn, config.id)
        if args.json:
            _print_json(rows)
        for r in [] if args.json else rows:
            state = (
                f"undone by {r['undone_by']} {r['undone_at']:%Y-%m-%d %H:%M}"
                if r["undone_at"]
                else "attached"
            )
            print(
                f"  {r['id']:>5}  account {r['account_id']} <- {r['sync_key']}  by "
                f"{r['attached_by']} via {r['attached_via']} {r['attached_at']:%Y-%m-%d %H:%M}"
                f"  {state}"
            )
        return 0
    findings = readiness(conn, config, file=args.file, on=args.on)
    email = send(findings, config, sender=Services.from_environment().sender)
    if args.json:
        _print_json({**findings.summary(), "email": email})
    else:
        summary = findings.summary()
        print(f"{config.id}: readiness for {summary['school_year']} against {summary['source']}")
        for name, n in summary["counts"].items():
            flag = "  BLOCKING" if name in summary["blocking"] else ""
            print(f"  {n:>6}  {summary['titles'][name]}{flag}")
        for note in summary["notes"]:
            print(f"  note: {note}")
        print(f"status email: {email['subject']}\n  -> {email['sent']}")
    if args.csv:
        for path in findings.write_csv(Path(args.csv)):
            print(f"  wrote {path}")
    return 0


def cmd_maintenance(args) -> int:
    """History older than the retention period leaves (what the nightly DAG does)."""
    from . import retention

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
    from . import config as cfg

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
    from . import calendar, calendar_view
    from . import config as cfg

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
    from .lms.postgres_site import PostgresSite

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


def cmd_demo(args) -> int:
    """The main job on embedded defaults: a demo municipality's first import, the readiness
    check before the next school year (a first-grader made by hand gets their sync key), and
    the rollover."""
    from .lms.postgres_site import forget_site
    from .lms.seed import seed_manual_objects
    from .readiness import attach as attaching
    from .readiness import readiness, send

    landing = settings.home() / "landing" / "demo"
    landing.mkdir(parents=True, exist_ok=True)
    conn = _connect()
    year = args.year
    size = _size(args.size)
    config = pipeline.customer_config("demo")
    following = gen.build_year(gen.Municipality(args.seed, gen.SIZES.get(size, size)), year + 1)
    first_grader = next(p for p in following["persons"] if p["id"].startswith(f"elev-{year + 1}-"))
    with conn, conn.cursor() as cur:
        state.forget(cur, "demo")  # every demo tells the same story from the start
        forget_site(cur, "demo")
        seed_manual_objects(
            cur,
            "demo",
            first_grader=(first_grader["given"], first_grader["family"], first_grader["bday"]),
        )
    print(
        "The demo site starts with two administrators, a course, and a pupil who starts "
        f"school in August {year + 1}, made by hand (no sync key).\n"
    )
    paths = {}
    for school_year in (year, year + 1):
        paths[school_year] = landing / f"demo-{school_year}.xml"
        gen.generate(paths[school_year], seed=args.seed, year=school_year, size=size)

    print(f"== first import: school year {year}/{year + 1}")
    services = Services.from_environment()
    first = pipeline.Request("demo", paths[year], on=date(year, 8, 10))
    _print_run(pipeline.run(conn, first, services))

    print(f"\n== readiness before {year + 1}/{year + 2}, against next year's export")
    findings = readiness(conn, config, file=str(paths[year + 1]), on=date(year + 1, 6, 1))
    for name, n in findings.summary()["counts"].items():
        print(
            f"  {n:>6}  {findings.title(name)}{'  BLOCKING' if name in findings.blocking else ''}"
        )
    print(f"  status email -> {send(findings, config, sender=services.sender)['sent']}")
    csv_dir = settings.home() / "readiness" / "demo"
    findings.write_csv(csv_dir)
    duplicates = csv_dir / "demo-duplicates.csv"
    ids = attaching.attach(
        conn,
        "demo",
        attaching.read_csv(duplicates),
        by="demo operator",
        via="cli",
        source=str(duplicates),
    )
    print(
        f"  attached {len(ids)} sync key(s) from {duplicates} (undo: sisflow readiness "
        "undo demo ATTACHMENT --by NAME)"
    )

    print(f"\n== rollover into {year + 1}-{year + 2}, triggered on {year + 1}-08-10")
    rollover = pipeline.Request(
        "demo", paths[year + 1], on=date(year + 1, 8, 10), kind=pipeline.Kind.ROLLOVER
    )
    _print_run(pipeline.run(conn, rollover, services))
    print()
    args.customer, args.json = "demo", False
    cmd_lms_state(args)
    with conn.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM lms.users m JOIN lms.users s ON s.site = m.site"
            " AND s.sync_key IS NOT NULL AND s.id <> m.id AND s.first_name = m.first_name"
            " AND s.last_name = m.last_name AND s.birth_date = m.birth_date"
            " WHERE m.site = 'demo' AND m.username = 'manuell.elev'"
        )
        twins = cur.fetchone()[0]
    print(
        f"\n  the first-grader made by hand kept one account ({twins} duplicates): the "
        "rollover updated it by its sync key instead of creating a second one"
    )
    print(f"\nstate folder: {settings.home()}   (sisflow lms-state demo --json for the details)")
    return 0


class _Parser(argparse.ArgumentParser):
    """A usage error is one line on stderr and exit 2 (a script reads it as one)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="sisflow", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log ids and counts")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("validate", help="read a file and list its problems; exit 1 if rejected")
    p.add_argument("file")
    p.add_argument("--json", action="store_true")
    p.add_argument("--examples", type=int, default=20, help="examples to print (default 20)")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("diff", help="stage a file and print its change set; applies nothing")
    p.add_argument("customer", type=_customer_id)
    p.add_argument("file")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_diff)

    p = sub.add_parser(
        "run", help="the whole import for a customer: its source's newest export, or FILE"
    )
    p.add_argument("customer", type=_customer_id)
    p.add_argument("file", nargs="?", help="import this file (default: fetch from the source)")
    p.add_argument("--dry-run", action="store_true", help="compute everything, commit nothing")
    p.add_argument(
        "--on",
        type=date.fromisoformat,
        metavar="DATE",
        help="the date the customer's calendar is read for (default today)",
    )
    p.add_argument(
        "--rollover",
        action="store_true",
        help="a rollover run: the rollover filter profile, not before the earliest "
        "rollover date; it switches the active school year when it commits",
    )
    p.add_argument(
        "--school-year",
        metavar="YYYY-YYYY",
        help="rollover: the school year to switch to (default: the next one)",
    )
    p.add_argument(
        "--override",
        action="store_true",
        help="rollover: go on despite blocking readiness findings",
    )
    p.add_argument(
        "--accept-older",
        action="store_true",
        help="import the file although it was made before the one the current "
        "state comes from (checked by a person)",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser(
        "readiness",
        help="year-end readiness checks; attach or undo proposed sync keys",
        usage="sisflow readiness CUSTOMER [--file FILE] [--csv DIR] [--on DATE] [--json]\n"
        "       sisflow readiness attach CUSTOMER --from-csv FILE --by NAME\n"
        "       sisflow readiness undo CUSTOMER ATTACHMENT --by NAME\n"
        "       sisflow readiness attached CUSTOMER",
    )
    p.add_argument("words", nargs="+", metavar="CUSTOMER")
    p.add_argument(
        "--file",
        help="check against this export (the new school year's, say) instead of the current state",
    )
    p.add_argument("--csv", metavar="DIR", help="write a CSV per list, with names, into DIR")
    p.add_argument(
        "--on",
        type=date.fromisoformat,
        metavar="DATE",
        help="the date inactivity is measured to (default today)",
    )
    p.add_argument("--from-csv", metavar="FILE", help="attach: the duplicates CSV to attach")
    p.add_argument("--by", help="attach, undo: who does it (kept with the record)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_readiness)

    p = sub.add_parser("filter", help="a run's filter verdict; open or reject a held run")
    p.add_argument("action", choices=["show", "open", "reject"])
    p.add_argument("run", type=int)
    p.add_argument("--by", help="who decides (stored with the decision)")
    p.add_argument("--reason", help="why (stored with the decision)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_filter)

    p = sub.add_parser("maintenance", help="remove history older than the retention period")
    p.add_argument(
        "--days", type=float, help="the period (default SISFLOW_RETENTION_DAYS, else 90)"
    )
    p.add_argument("--customer", type=_customer_id, help="one customer only")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_maintenance)

    p = sub.add_parser("config", help="check the customer files, or write their JSON Schema")
    p.add_argument("action", choices=["check", "schema"])
    p.add_argument("-o", "--out", help="where to write the schema")
    p.set_defaults(func=cmd_config)

    p = sub.add_parser("calendar", help="the coming months per customer (HTML for all)")
    p.add_argument("customer", nargs="?", type=_customer_id)
    p.add_argument("--from", dest="start", type=date.fromisoformat, metavar="DATE")
    p.add_argument("--days", type=int, default=120)
    p.add_argument("--html", help="where to write the picture of all customers")
    p.set_defaults(func=cmd_calendar)

    p = sub.add_parser("lms-state", help="print a customer's LMS site as it stands")
    p.add_argument("customer", type=_customer_id)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_lms_state)

    p = sub.add_parser("generate", help="write a synthetic municipality as PIFU-IMS 1.3")
    p.add_argument(
        "--size",
        default="small",
        help="tiny, small, medium, large, or a number of pupils (default small)",
    )
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--year", type=int, default=2025, help="school year that starts in August")
    p.add_argument("-o", "--out", help="output file (default <municipality>-<year>.xml)")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("demo", help="run the demo municipality end to end on embedded defaults")
    p.add_argument("--size", default="small")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--year", type=int, default=2025)
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "json", False):
        _stdout_for_json_only()
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    from .config import ConfigError
    from .db.connection import DatabaseUnavailable, describe

    try:
        return args.func(args)
    except (ConfigError, DatabaseUnavailable) as err:
        print(f"sisflow: {err}", file=sys.stderr)
        return 2
    except LookupError as err:  # a run that is not there: say where it was looked for
        print(
            f"sisflow: {err.args[0] if err.args else err} in {describe()} (SISFLOW_HOME and "
            "SISFLOW_DATABASE_URL say which database a command uses)",
            file=sys.stderr,
        )
        return 2
    finally:
        while _OPEN:
            _OPEN.pop().close()


if __name__ == "__main__":
    sys.exit(main())
