"""The ``sisflow`` command: the same pipeline functions that the DAG tasks call, by hand."""

from __future__ import annotations

import argparse
import logging
import re
import sys
from datetime import date

from ..fleet import FILTERS
from .commands import (
    cmd_calendar,
    cmd_config,
    cmd_diff,
    cmd_filter,
    cmd_generate,
    cmd_lms_state,
    cmd_maintenance,
    cmd_run,
    cmd_validate,
)
from .deployment import cmd_deployment
from .drift import cmd_drift
from .fleet import cmd_digest, cmd_fleet
from .output import _OPEN, _stdout_for_json_only
from .relink import cmd_relink
from .undo import cmd_undo
from .year_end import cmd_demo, cmd_readiness


def _customer_id(value: str) -> str:
    """A customer id, checked before anything touches a path or the database (exit 2)."""
    from ..config import CUSTOMER_ID

    if not re.match(CUSTOMER_ID, value):
        shown = value if len(value) <= 70 else value[:67] + "..."
        raise argparse.ArgumentTypeError(
            f"'{shown}' is not a customer id: use lower-case letters, digits, '-' and '_' "
            "(at most 63)"
        )
    return value


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

    p = sub.add_parser(
        "relink",
        help="identity changes: list, accept or refuse a held run's pairs; undo a relink",
        usage="sisflow relink RUN [--accept ID...] [--refuse ID...] --by NAME [--reason TEXT]\n"
        "       sisflow relink CUSTOMER [--accept ID...] [--refuse ID...] --by NAME"
        " (pairs readiness foresaw)\n"
        "       sisflow relink RUN|CUSTOMER --undo ID... --by NAME --reason TEXT",
    )
    p.add_argument("target", metavar="RUN|CUSTOMER")
    p.add_argument("--accept", type=int, nargs="+", default=[], metavar="ID")
    p.add_argument("--refuse", type=int, nargs="+", default=[], metavar="ID")
    p.add_argument("--undo", type=int, nargs="+", default=[], metavar="ID")
    p.add_argument("--by", help="who decides (kept with each pair)")
    p.add_argument("--reason", help="why (kept with each pair)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_relink)

    p = sub.add_parser(
        "undo",
        help="take a run back: the LMS and the import database as they were before it",
        usage="sisflow undo RUN [--school UNIT-ID] [--dry-run] [--force] --by NAME --reason TEXT",
    )
    p.add_argument("run", type=int, metavar="RUN")
    p.add_argument("--school", metavar="UNIT-ID", help="only this school's part (its sync key)")
    p.add_argument("--dry-run", action="store_true", help="say what it would do; change nothing")
    p.add_argument(
        "--force", action="store_true", help="a rollover after its window: undo it anyway"
    )
    p.add_argument(
        "--on",
        type=date.fromisoformat,
        metavar="YYYY-MM-DD",
        help="the calendar's date for a rollover's window (default: today in Europe/Oslo)",
    )
    p.add_argument("--by", help="who decides (kept with the undo)")
    p.add_argument("--reason", help="why (kept with the undo)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_undo)

    p = sub.add_parser(
        "drift",
        help="where the LMS no longer holds what the import database says (emailed)",
        usage="sisflow drift [CUSTOMER] [--json]\n       sisflow drift CUSTOMER --repair --by NAME",
    )
    p.add_argument("customer", nargs="?", type=_customer_id, help="one customer (default: all)")
    p.add_argument(
        "--repair",
        action="store_true",
        help="the next run makes the drifted objects again (through the filter)",
    )
    p.add_argument("--by", help="who repairs (kept with the repair)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_drift)

    p = sub.add_parser("fleet", help="where every customer stands (the operations page's rows)")
    p.add_argument("--show", choices=list(FILTERS), help="only the customers in this state")
    p.add_argument("--vendor", help="one SIS vendor's customers")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_fleet)

    p = sub.add_parser("digest", help="send the daily digest to SISFLOW_OPS_RECIPIENTS")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_digest)

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

    p = sub.add_parser(
        "deployment",
        help="a deployment's first step: check its secrets (refuse placeholders); prepare"
        " also makes the folders the services write and the admin login; login writes only"
        " the admin login",
    )
    p.add_argument("action", choices=["check", "prepare", "login"])
    p.add_argument("folders", nargs="*", help="prepare: folders to make and hand to --owner")
    p.add_argument("--owner", type=int, default=50000, help="the services' user id (AIRFLOW_UID)")
    p.set_defaults(func=cmd_deployment)

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
    from ..config import ConfigError
    from ..db.connection import DatabaseUnavailable, describe

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
