"""``sisflow relink``: the identity changes of a held run (or those readiness foresaw for a
customer), decided pair by pair, and a relink undone."""

from __future__ import annotations

import sys

from .. import identity, pipeline, runs
from ..errors import Refusal
from ..services import Services
from .commands import go_on
from .output import EXIT_REFUSED, _connect, _print_json


def cmd_relink(args) -> int:
    conn = _connect()
    run_id = int(args.target) if args.target.isdigit() else None
    customer = None if run_id is not None else args.target
    deciding = args.accept or args.refuse or args.undo
    if deciding and not args.by:
        print("--by is required to accept, refuse or undo a pair", file=sys.stderr)
        return 2
    if args.undo and not args.reason:
        print("--reason is required to undo a relink (it is kept with the pair)", file=sys.stderr)
        return 2
    try:
        if args.undo:
            for pair_id in args.undo:
                pair = identity.undo(
                    conn,
                    pair_id,
                    by=args.by,
                    reason=args.reason,
                    holder=pipeline.Holder.this_process(),
                )
                if not args.json:
                    print(f"undone: {pair.describe()}; the next import goes on as delete + create")
            if args.json:
                _show(conn, ids=args.undo, as_json=True)
            return 0
        if run_id is not None and (args.accept or args.refuse):
            config = Services.from_environment().config(runs.get(conn, run_id)["customer"])
            result = pipeline.relink(
                conn,
                run_id,
                config,
                accept=args.accept,
                refuse=args.refuse,
                by=args.by,
                via="cli",
                reason=args.reason,
            )
            if result["decision"] and result["decision"]["decision"] == "opened":
                if not args.json:
                    _show(conn, run_id=run_id)
                return go_on(conn, result, args)
            if args.json:
                _print_json(result)
                return 0
            _show(conn, run_id=run_id)
            waiting = (result["relinks"] or {}).get("counts", {}).get("waiting")
            print(
                f"run {run_id} still held: "
                + (
                    f"{waiting} pair(s) wait for a decision"
                    if waiting
                    else "the filter holds it (sisflow filter open|reject"
                    f" {run_id} --by NAME --reason TEXT)"
                )
            )
            return 0
        if customer and (args.accept or args.refuse):
            with conn, conn.cursor() as cur:
                runs.lock_customer(cur, customer)
                identity.decide(
                    cur,
                    customer,
                    accept=args.accept,
                    refuse=args.refuse,
                    by=args.by,
                    via="cli",
                    reason=args.reason,
                )
    except Refusal as err:
        print(f"refused: {err}", file=sys.stderr)
        return EXIT_REFUSED
    _show(conn, run_id=run_id, customer=customer, as_json=args.json)
    return 0


def _show(conn, *, run_id=None, customer=None, ids=None, as_json=False) -> None:
    with conn.cursor() as cur:
        pairs = identity.listed(cur, run_id=run_id, customer=customer, ids=ids)
    if as_json:
        _print_json([p.as_dict() for p in pairs])
        return
    where = f"run {run_id}" if run_id is not None else customer or "the pairs given"
    print(f"identity changes of {where}: {len(pairs)}")
    for pair in pairs:
        print(f"  {pair.describe()}")
