"""Each customer's partitions of the current state (``sis.persons``, ``sis.groups`` and
``sis.memberships`` are partitioned by customer, migration 0009).

Made once, before the customer's first run writes, in a short transaction of their own; the
statistics the planner uses for a customer's diff and commit are its own partitions', kept
true by an ANALYZE of just those partitions after a commit that changed them much.
"""

from __future__ import annotations

import hashlib

from psycopg2 import sql

from .entities import ENTITIES

_made: set[tuple[str, str]] = set()  # (database, customer) this process has made or seen

#: a commit that changes at least this share of a partition's rows re-reads its statistics
ANALYZE_SHARE = 0.1


def name(entity, customer: str) -> sql.Identifier:
    """The partition's name, as ``sis.partition_name`` makes it (ids are at most 63 long)."""
    digest = hashlib.md5(customer.encode()).hexdigest()[:8]
    return sql.Identifier("sis", f"{entity.name}s__{customer[:40]}_{digest}")


def ensure(conn, customer: str) -> None:
    """The customer's partitions exist (made now if not)."""
    key = (conn.dsn, customer)
    if key in _made:
        return
    with conn, conn.cursor() as cur:
        cur.execute("SELECT sis.customer_partitions(%s)", (customer,))
    _made.add(key)


def analyze(cur, customer: str, changed: dict[str, int], sizes: dict[str, int]) -> list[str]:
    """ANALYZE the customer's partitions whose rows changed by ``ANALYZE_SHARE`` or more
    (a first import, a rollover); a day's small change leaves the statistics as they are."""
    done = []
    for entity in ENTITIES:
        n, size = changed.get(entity.name, 0), sizes.get(entity.name, 0)
        if n and n >= ANALYZE_SHARE * max(size, 1):
            cur.execute(sql.SQL("ANALYZE {}").format(name(entity, customer)))
            done.append(entity.name)
    return done
