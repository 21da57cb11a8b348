"""The few persons and accounts a readiness finding can name, picked by the database.

The checks hold every person of the SIS data against every LMS account, but what they find
concerns few: manual accounts that share a key with a person, the synced accounts of those
persons, persons who share a key with one another, administrators with a sync key and idle
accounts. Both sides are streamed into temporary tables, the persons as their keys alone
(formed in Python by :func:`.matching.row_keys`, so that a key means the same here as in the
checks), and the database picks those few. The checks' frames then hold them alone: a
customer of a hundred thousand persons costs the memory of its findings, not of its persons.
"""

from __future__ import annotations

import csv
import tempfile
from collections.abc import Iterable
from datetime import datetime

import pandas as pd

from ..db.copy import text_line
from ..lms.adapter import ACCOUNT_FIELDS
from .matching import KEYS, row_keys

_TABLES = """
DROP TABLE IF EXISTS pg_temp.ready_accounts, pg_temp.account_keys, pg_temp.person_keys;
CREATE TEMP TABLE ready_accounts (id bigint, sync_key text, username text, email text,
    given text, family text, birth_date date, profile text, last_login timestamptz,
    created_at timestamptz, trashed boolean) ON COMMIT DROP;
CREATE TEMP TABLE account_keys (id bigint, key smallint, value text) ON COMMIT DROP;
CREATE TEMP TABLE person_keys (row integer, sync_key text, key smallint, value text)
    ON COMMIT DROP;
"""

#: the accounts a finding can name: manual ones that share a key with a person, the synced
#: accounts of the persons they share it with, administrators with a sync key, idle ones
_ACCOUNTS = """
WITH pairs AS (SELECT a.id, p.sync_key FROM account_keys a JOIN person_keys p USING (key, value))
SELECT * FROM ready_accounts
 WHERE id IN (SELECT id FROM pairs) OR sync_key IN (SELECT sync_key FROM pairs)
    OR (profile = 'admin' AND sync_key IS NOT NULL)
    OR (NOT trashed AND COALESCE(last_login, created_at) < %(idle_before)s)
 ORDER BY id
"""

#: the persons a finding can name: those that share a key with a manual account, and those
#: that share a username or a name and birth date with another sync key
_PEOPLE = """
SELECT row, sync_key, key, value FROM person_keys WHERE row IN (
    SELECT p.row FROM person_keys p JOIN account_keys a USING (key, value)
    UNION
    SELECT row FROM person_keys WHERE (key, value) IN (
        SELECT key, value FROM person_keys WHERE key = ANY(%(shared)s)
         GROUP BY key, value HAVING count(DISTINCT sync_key) > 1))
 ORDER BY row, key
"""


def _manual(account: dict) -> bool:
    """Every account the checks may match to a person (they narrow it further)."""
    return account["sync_key"] is None and not account["trashed"] and account["profile"] != "admin"


def _birth(value) -> str | None:
    return value.isoformat() if hasattr(value, "isoformat") else value


def _copy(cur, table: str, spool, *, csv_format: bool = False) -> None:
    spool.seek(0)
    cur.copy_expert(
        f"COPY {table} FROM STDIN" + (" WITH (FORMAT csv)" if csv_format else ""), spool
    )
    cur.execute(f"ANALYZE {table}")


def narrowed(
    cur,
    accounts: Iterable[dict],
    people: Iterable[tuple],
    *,
    shared: tuple[str, ...],
    idle_before: datetime,
) -> tuple[list[tuple], pd.DataFrame]:
    """The accounts (rows of :data:`ACCOUNT_FIELDS`) and the persons (keyed: ``sync_key``
    and a ``k_`` column per key) that the checks can name; ``shared``: the keys by which
    two sync keys are one person, ``idle_before``: when an idle account last logged in."""
    cur.execute(_TABLES)
    cache: dict = {}
    spool = tempfile.TemporaryFile  # files, not memory, while the rows stream by
    # an account's values as they are (an empty string is not NULL: COPY's text format); a
    # key is never empty, and csv writes it in C
    with spool("w+", encoding="utf-8") as rows, spool("w+", encoding="utf-8", newline="") as keys:
        write_key = csv.writer(keys).writerow
        for account in accounts:
            rows.write(text_line([account[f] for f in ACCOUNT_FIELDS]))
            if _manual(account):
                for key, value in enumerate(
                    row_keys(
                        account["username"],
                        account["email"],
                        account["given"],
                        account["family"],
                        _birth(account["birth_date"]),
                        cache,
                    )
                ):
                    if value is not None:
                        write_key((account["id"], key, value))
        _copy(cur, "ready_accounts", rows)
        _copy(cur, "account_keys", keys, csv_format=True)
    with spool("w+", encoding="utf-8", newline="") as keys:
        write_key = csv.writer(keys).writerow
        for row, (sync_key, username, email, given, family, born) in enumerate(people):
            for key, value in enumerate(row_keys(username, email, given, family, born, cache)):
                if value is not None:
                    write_key((row, sync_key, key, value))
        _copy(cur, "person_keys", keys, csv_format=True)
    cur.execute(_ACCOUNTS, {"idle_before": idle_before})
    found_accounts = cur.fetchall()
    cur.execute(_PEOPLE, {"shared": [KEYS.index(k) for k in shared]})
    found_people = pd.DataFrame(cur.fetchall(), columns=["row", "sync_key", "key", "value"])
    keyed = found_people.pivot(index=["row", "sync_key"], columns="key", values="value")
    keyed = (
        keyed.reindex(columns=range(len(KEYS)))
        .set_axis([f"k_{k}" for k in KEYS], axis=1)
        .reset_index()
        .drop(columns="row")
    )
    return found_accounts, keyed.astype("string")
