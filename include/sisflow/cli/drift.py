"""``sisflow drift``: where the LMS no longer holds what the import database says, and the
repair that lets the next run make it again."""

from __future__ import annotations

import sys

from .. import drift, pipeline
from ..config import load_all
from ..errors import Refusal
from ..services import Services
from .output import EXIT_REFUSED, _connect, _print_json


def cmd_drift(args) -> int:
    if args.repair and not (args.customer and args.by):
        print("--repair needs a customer and --by NAME (kept with the repair)", file=sys.stderr)
        return 2
    conn = _connect()
    services = Services.from_environment()
    try:
        if args.repair:
            found = [drift.repair(conn, args.customer, by=args.by, holder=_holder())]
            sent: list[str | None] = [None]
        else:
            configs = [services.config(args.customer)] if args.customer else load_all()[0]
            checked = [drift.check_and_tell(conn, config, services) for config in configs]
            found, sent = [d for d, _ in checked], [s for _, s in checked]
    except Refusal as err:
        print(f"refused: {err}", file=sys.stderr)
        return EXIT_REFUSED
    finally:
        conn.close()
    if args.json:
        _print_json([{**d.as_dict(), "email": s} for d, s in zip(found, sent, strict=True)])
        return 0
    for d, s in zip(found, sent, strict=True):
        print("\n".join(d.lines()))
        if s:
            print(f"  email -> {s}")
    return 0


def _holder():
    return pipeline.Holder.this_process()
