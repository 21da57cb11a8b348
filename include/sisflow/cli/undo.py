"""``sisflow undo``: a run (or one school's part of it) taken back, in the LMS and in the
import database."""

from __future__ import annotations

import sys

from .. import pipeline
from ..errors import Refusal, UndoNeedsForce
from ..services import Services
from ..undo import undo_and_tell
from .output import EXIT_REFUSED, _connect, _print_json


def cmd_undo(args) -> int:
    if not args.by or not args.reason:
        print("--by and --reason are required: both are kept with the undo", file=sys.stderr)
        return 2
    conn = _connect()
    try:
        result, email = undo_and_tell(
            conn,
            args.run,
            services=Services.from_environment(),
            holder=pipeline.Holder.this_process(),
            by=args.by,
            reason=args.reason,
            via="cli",
            school=args.school,
            dry_run=args.dry_run,
            force=args.force,
            today=args.on,
        )
    except Refusal as err:
        if isinstance(err, UndoNeedsForce):
            print("\n".join(err.would))
        print(f"refused: {err}", file=sys.stderr)
        return EXIT_REFUSED
    finally:
        conn.close()
    if args.json:
        _print_json({**result.as_dict(), "email": email})
        return 0
    print("\n".join(result.lines()))
    if email:
        print(f"email: {email['subject']} -> {email['sent']}")
    return 0
