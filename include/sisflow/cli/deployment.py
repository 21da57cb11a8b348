"""``sisflow deployment check|prepare``: a deployment's first step (see
:mod:`sisflow.deployment`)."""

from __future__ import annotations

import sys
from pathlib import Path

from ..deployment import DeploymentError, check_secrets, prepare, write_login


def cmd_deployment(args) -> int:
    try:
        if args.action == "check":
            check_secrets()
            print("secrets: ok")
            return 0
        if args.action == "login":
            print(f"admin login written to {write_login(args.owner)}")
            return 0
        done = prepare([Path(f) for f in args.folders], args.owner)
    except DeploymentError as err:
        print(err, file=sys.stderr)
        return 1
    print("secrets: ok")
    for folder in done.folders:
        print(f"folder {folder}: owned by {args.owner}:0")
    if done.passwords_file:
        print(f"admin login written to {done.passwords_file}")
    return 0
