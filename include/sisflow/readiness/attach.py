"""Sync keys attached by an operator to manual accounts (duplicates in waiting), and undone.

An attach gives a manual account the sync key of the person it belongs to, so that the next
import (the rollover) updates that account instead of creating a second one. Every attach is
recorded (who, when, via what, which account, which key) in ``sis.sync_key_attachments``; an
undo takes the key back, as long as the account still carries it. A list with one bad row
changes nothing: the error names the file, the line and the record.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from .. import runs
from ..lms.postgres_site import PostgresSite

log = logging.getLogger(__name__)


class AttachError(ValueError):
    """A proposal that cannot be attached (or an attach that cannot be undone): nothing done."""


def read_csv(path: str | Path) -> list[dict]:
    """The rows of a readiness ``duplicates`` CSV (the operator may have removed some), each
    with its line in the file."""
    try:
        frame = pd.read_csv(path, dtype="string", keep_default_na=False)
    except (OSError, ValueError) as err:
        raise AttachError(f"{path}: cannot be read as CSV: {err}") from None
    missing = {"account_id", "sync_key"} - set(frame.columns)
    if missing:
        raise AttachError(
            f"{path}: line 1: the header has no {', '.join(sorted(missing))} "
            "column (use the duplicates CSV of 'sisflow readiness')"
        )
    rows = frame.to_dict("records")
    for line, row in enumerate(rows, start=2):
        row["line"] = line
    return rows


def _problem(row: dict, accounts: dict, used: dict, seen: dict) -> str | None:
    raw, key = str(row.get("account_id") or "").strip(), str(row.get("sync_key") or "").strip()
    if not raw.isdigit():
        return f"account_id '{raw}' is not an account id"
    account = accounts.get(int(raw))
    if account is None:
        return f"account {raw} is not in the site"
    if not key:
        return f"account {raw}: no sync_key given"
    if account["sync_key"] is not None:
        return f"account {raw} already carries a sync key"
    if account["trashed"]:
        return f"account {raw} is in the trash"
    if account["profile"] == "admin":
        return f"account {raw} is an administrator: administrators stay manual"
    if key in used:
        return f"account {raw}: sync key {key} belongs to account {used[key]} already"
    for what, value in (("account", int(raw)), ("sync key", key)):
        if (what, value) in seen:
            return f"account {raw}: the {what} is on line {seen[(what, value)]} as well"
    return None


def attach(
    conn, customer: str, rows: list[dict], *, by: str, via: str, source: str = "the list"
) -> list[int]:
    """Attach every row's sync key to its account, or none of them; the attachment ids."""
    if not by:
        raise AttachError("say who attaches the sync keys (--by NAME)")
    with conn, conn.cursor() as cur:
        runs.lock_customer(cur, customer)  # not while an import writes this customer's users
        site = PostgresSite(cur, customer)
        accounts = {a["id"]: a for a in site.accounts()}
        used = {a["sync_key"]: a["id"] for a in accounts.values() if a["sync_key"]}
        seen: dict = {}
        for row in rows:
            problem = _problem(row, accounts, used, seen)
            if problem:
                raise AttachError(
                    f"{source}: line {row.get('line', '?')}: {problem}; nothing attached"
                )
            seen[("account", int(row["account_id"]))] = row.get("line", "?")
            seen[("sync key", str(row["sync_key"]).strip())] = row.get("line", "?")
        ids = []
        for row in rows:
            account, key = int(row["account_id"]), str(row["sync_key"]).strip()
            site.set_sync_key(account, None, key)
            cur.execute(
                "INSERT INTO sis.sync_key_attachments (customer, account_id, sync_key,"
                " certainty, evidence, attached_by, attached_via) VALUES"
                " (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
                (
                    customer,
                    account,
                    key,
                    row.get("certainty") or None,
                    row.get("evidence") or None,
                    by,
                    via,
                ),
            )
            ids.append(cur.fetchone()[0])
    log.info("%s: %s sync keys attached (attachments %s)", customer, len(ids), ids)
    return ids


def undo(conn, customer: str, attachment: int, *, by: str) -> dict:
    """Take an attached sync key back: the account is manual again."""
    if not by:
        raise AttachError("say who undoes the attach (--by NAME)")
    with conn, conn.cursor() as cur:
        runs.lock_customer(cur, customer)
        cur.execute(
            "SELECT account_id, sync_key, undone_at FROM sis.sync_key_attachments"
            " WHERE id = %s AND customer = %s",
            (attachment, customer),
        )
        row = cur.fetchone()
        if row is None:
            raise AttachError(f"attachment {attachment} is not one of {customer}'s")
        account, key, undone_at = row
        if undone_at is not None:
            raise AttachError(f"attachment {attachment} was undone at {undone_at:%Y-%m-%d %H:%M}")
        if not PostgresSite(cur, customer).set_sync_key(account, key, None):
            raise AttachError(
                f"account {account} no longer carries sync key {key}: "
                f"attachment {attachment} not undone"
            )
        cur.execute(
            "UPDATE sis.sync_key_attachments SET undone_by = %s, undone_at = now() WHERE id = %s",
            (by, attachment),
        )
    log.info("%s: attachment %s undone (account %s)", customer, attachment, account)
    return {"attachment": attachment, "account_id": account, "sync_key": key}


def listing(conn, customer: str) -> list[dict]:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT id, account_id, sync_key, certainty, evidence, attached_by,"
            " attached_via, attached_at, undone_by, undone_at"
            " FROM sis.sync_key_attachments WHERE customer = %s ORDER BY id",
            (customer,),
        )
        names = [c.name for c in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
