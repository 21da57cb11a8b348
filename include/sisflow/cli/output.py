"""What the ``sisflow`` command prints, its exit codes, and the connections it opens."""

from __future__ import annotations

import json
import logging
import os
import sys

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


EXIT_REFUSED = 3  # the run was refused on purpose (too early, busy, contradicting decision)


def _print_run(r: dict) -> None:
    cal = r.get("calendar") or {}
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
    from ..db.connection import connect  # late: validate and generate need no database

    conn = connect()
    _OPEN.append(conn)
    return conn


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


def _size(value: str) -> str | int:
    return int(value) if value.isdigit() else value
