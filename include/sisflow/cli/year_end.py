"""The year-end commands: the readiness check with its attach and undo, and the demo."""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path

from .. import pipeline, settings, state
from ..ims import generate as gen
from ..services import Services
from .commands import cmd_lms_state
from .output import EXIT_FATAL, _connect, _print_json, _print_run, _size


def cmd_readiness(args) -> int:
    """The readiness report (email, and CSV files with names when asked), or an attach, an
    undo or the list of attached sync keys."""
    from ..config import load_customer
    from ..readiness import attach as attaching
    from ..readiness import readiness, send

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


def cmd_demo(args) -> int:
    """The main job on embedded defaults: a demo municipality's first import, the readiness
    check before the next school year (a first-grader made by hand gets their sync key), and
    the rollover."""
    from ..lms.postgres_site import forget_site
    from ..lms.seed import seed_demo_site
    from ..readiness import attach as attaching
    from ..readiness import readiness, send

    landing = settings.home() / "landing" / "demo"
    landing.mkdir(parents=True, exist_ok=True)
    conn = _connect()
    year = args.year
    size = _size(args.size)
    config = pipeline.customer_config("demo")
    with conn, conn.cursor() as cur:
        state.forget(cur, "demo")  # every demo tells the same story from the start
        forget_site(cur, "demo")
        seed_demo_site(cur, year=year, seed=args.seed, size=size)
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
    first = pipeline.Request("demo", str(paths[year]), on=date(year, 8, 10))
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
        "demo", str(paths[year + 1]), on=date(year + 1, 8, 10), kind=pipeline.Kind.ROLLOVER
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
