"""``sisflow fleet`` and ``sisflow digest``: where every customer stands (the operations
page's rows), and the daily digest to the operations team."""

from __future__ import annotations

from .. import digest, fleet
from ..config import load_all
from ..services import Services
from .output import _connect, _print_json


def cmd_fleet(args) -> int:
    configs = load_all()[0]
    conn = _connect()
    try:
        rows = fleet.rows(conn, configs, waiting=fleet.waiting_rollovers())
    finally:
        conn.close()
    if args.show:
        rows = [r for r in rows if args.show in r.flags]
    if args.vendor:
        rows = [r for r in rows if r.vendor == args.vendor]
    if args.json:
        _print_json([r.as_dict() for r in rows])
        return 0
    for r in rows:
        last = r.last_run or {}
        print(
            f"{r.customer:<24} {r.mode:<13} {r.school_year:<10}"
            f" {last.get('outcome', 'no run yet'):<22} {' '.join(r.flags)}"
        )
    return 0


def cmd_digest(args) -> int:
    conn = _connect()
    try:
        sent = digest.send(conn, load_all()[0], Services.from_environment())
    finally:
        conn.close()
    if args.json:
        _print_json(sent)
    else:
        print(f"{sent['subject']} -> {sent['sent']}")
    return 0
