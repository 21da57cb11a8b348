"""The current state, one partition per customer: each customer's rows and statistics are its
own, and a database from before the partitions keeps every row when it is migrated."""

from __future__ import annotations

from datetime import date

import psycopg2
from sisflow import partitions
from sisflow.db.migrations import available, migrate
from sisflow.entities import MEMBERSHIP
from sisflow.ims.generate import generate

from tests.factory import lenient, run_once


def _analyzed(cur) -> dict[str, int]:
    cur.execute(
        "SELECT relname, analyze_count FROM pg_stat_user_tables"
        " WHERE schemaname = 'sis' AND relname LIKE 'memberships\\_\\_%'"
    )
    return dict(cur.fetchall())


def test_each_customer_has_its_own_partitions_and_statistics(conn, tmp_path):
    first, day = tmp_path / "first.xml", tmp_path / "day.xml"
    generate(first, seed=3, year=2025, size="tiny")
    generate(day, seed=3, year=2025, size="tiny", drop_every=100)
    run_once(conn, "nordby", first, on=date(2025, 9, 1), config=lenient("nordby"))
    with conn.cursor() as cur:
        cur.execute("SELECT DISTINCT tableoid::regclass::text FROM sis.memberships")
        (where,) = [row[0] for row in cur.fetchall()]
        assert where.startswith("sis.memberships__nordby_")
        # the name the code analyses is the one the database made
        assert ".".join(partitions.name(MEMBERSHIP, "nordby").strings) == where
        cur.execute("SELECT pg_stat_force_next_flush()")
        before = _analyzed(cur)
    run_once(conn, "sorby", first, on=date(2025, 9, 1), config=lenient("sorby"))
    # a day with 1% changed leaves the statistics as they are: nothing to re-read
    run_once(conn, "sorby", day, on=date(2025, 9, 2), config=lenient("sorby"))
    conn.rollback()
    with conn.cursor() as cur:
        cur.execute("SELECT pg_stat_force_next_flush()")
        after = _analyzed(cur)
    sorby = next(name for name in after if "sorby" in name)
    nordby = next(name for name in after if "nordby" in name)
    assert after[nordby] == before[nordby]  # sorby's runs never analysed nordby's rows
    assert after[sorby] == 1  # its first import did, its 1% day did not


def test_a_database_from_before_the_partitions_keeps_its_rows(pg_server_url):
    from tests.conftest import _admin, _with_db

    admin = _admin(pg_server_url)
    with admin.cursor() as cur:
        cur.execute("DROP DATABASE IF EXISTS sisflow_before_0009")
        cur.execute("CREATE DATABASE sisflow_before_0009")
    conn = psycopg2.connect(_with_db(pg_server_url, "sisflow_before_0009"))
    with conn, conn.cursor() as cur:  # the schema as it was before migration 0009
        cur.execute(
            "CREATE TABLE public.sisflow_migrations (version integer PRIMARY KEY,"
            " name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for version, name, text in available():
            if version < 9:
                cur.execute(text)
                cur.execute(
                    "INSERT INTO public.sisflow_migrations VALUES (%s, %s)", (version, name)
                )
        for customer in ("nordby", "a-customer-with-a-long-id-" + "x" * 37):
            cur.execute(
                "INSERT INTO sis.persons (customer, sourcedid, given, run_id)"
                " VALUES (%s, 'p1', 'Ola', 1)",
                (customer,),
            )
            cur.execute(
                "INSERT INTO sis.memberships (customer, group_id, member_id, idtype,"
                " roletype, status, run_id) VALUES (%s, 'g1', 'p1', 1, '01', 1, 1)",
                (customer,),
            )
    assert [name for name in migrate(conn) if name.startswith("0009")] == [
        "0009_customer_partitions.sql"
    ]
    with conn.cursor() as cur:
        cur.execute(
            "SELECT customer, sourcedid, given, tableoid::regclass::text"
            " FROM sis.persons ORDER BY customer"
        )
        rows = cur.fetchall()
        assert [r[:3] for r in rows] == [
            ("a-customer-with-a-long-id-" + "x" * 37, "p1", "Ola"),
            ("nordby", "p1", "Ola"),
        ]
        assert rows[0][3] != rows[1][3] and all(len(r[3]) <= 70 for r in rows)
        cur.execute("SELECT count(*) FROM sis.memberships")
        assert cur.fetchone() == (2,)
    conn.close()
    with admin.cursor() as cur:
        cur.execute("DROP DATABASE sisflow_before_0009 WITH (FORCE)")
