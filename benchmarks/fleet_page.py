"""The operations page's query with many customers and their history: N customers, each with
90 days of runs (three a day: an import, an unchanged file, and every tenth day a held run),
a school year and a readiness check, written straight into the import database.

Printed: the rows of all N customers (the one query and the rows built from it), the whole
Customers page rendered, and the page as the plugin serves a request (the N customer files
read, then the page), medians of five; the aim is under a second.

    python benchmarks/bench.py --fleet 500
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import yaml
from sisflow import fleet
from sisflow.config import CustomerConfig, load_all
from sisflow.web.pages import customers_page

PREFIX = "fleet-bench-"


def _configs(n: int) -> list[CustomerConfig]:
    vendors = ["Visma Flyt Skole", "IST Extens", "IST Everyday", "other"]
    return [
        CustomerConfig.model_validate(
            {
                "id": f"{PREFIX}{i:03d}",
                "name": f"Kommune {i:03d}",
                "sis_vendor": vendors[i % len(vendors)],
                "source": {"kind": "folder", "path": f"/srv/sis/{i:03d}"},
            }
        )
        for i in range(n)
    ]


def _history(conn, configs: list[CustomerConfig], days: int = 90) -> int:
    now = datetime.now(UTC)
    with conn, conn.cursor() as cur:
        cur.execute("DELETE FROM sis.runs WHERE customer LIKE %s", (f"{PREFIX}%",))
        cur.execute("DELETE FROM sis.school_years WHERE customer LIKE %s", (f"{PREFIX}%",))
        cur.execute("DELETE FROM sis.readiness_checks WHERE customer LIKE %s", (f"{PREFIX}%",))
        cur.execute(
            """
            INSERT INTO sis.runs (customer, created_at, status, file_path, file_name, sha256,
                                  counts, emails, deadline, verdict, profile)
            SELECT c, %(now)s - make_interval(days => d, hours => k), s.status, 'x', 'x',
                   md5(c || d || k),
                   '{"person": {"create": 1, "update": 2, "delete": 0}}',
                   jsonb_build_array(s.outcome),
                   CASE WHEN s.status = 'held' THEN %(now)s + interval '1 day' END,
                   CASE WHEN s.status = 'held' THEN '{"trips": [{"entity": "person",
                        "op": "delete", "kind": "count", "actual": 9, "limit": 1,
                        "base": 100}]}'::jsonb END,
                   'default'
            FROM unnest(%(customers)s::text[]) c, generate_series(1, %(days)s) d,
                 LATERAL (VALUES (0, 'committed', 'applied'), (1, 'unchanged', 'nothing-changed'),
                                 (2, CASE WHEN d %% 10 = 0 THEN 'held' ELSE 'rejected' END,
                                  CASE WHEN d %% 10 = 0 THEN 'held' ELSE 'rejected-file' END))
                         AS s(k, status, outcome)
            """,
            {"now": now, "customers": [c.id for c in configs], "days": days},
        )
        runs = cur.rowcount
        cur.execute(
            "INSERT INTO sis.school_years (customer, label, start_date, end_date)"
            " SELECT c, '2026-2027', '2026-08-15', '2027-06-19'"
            " FROM unnest(%s::text[]) c",
            ([c.id for c in configs],),
        )
        cur.execute(
            "INSERT INTO sis.readiness_checks (customer, school_year, blocking, counts)"
            " SELECT c, '2027-2028', '{\"duplicates\": 1}', '{}' FROM unnest(%s::text[]) c",
            ([c.id for c in configs],),
        )
        cur.execute("ANALYZE sis.runs")
    return runs


def measure(n: int) -> dict:
    from sisflow.db.connection import connect

    conn = connect()
    configs = _configs(n)
    runs = _history(conn, configs)

    def timed(work) -> float:
        times = []
        for _ in range(5):
            t = time.perf_counter()
            work()
            times.append(time.perf_counter() - t)
        return statistics.median(times)

    rows_s = timed(lambda: fleet.rows(conn, configs))
    page_s = timed(lambda: customers_page(conn, configs))
    with tempfile.TemporaryDirectory() as folder:
        for c in configs:
            Path(folder, f"{c.id}.yaml").write_text(
                yaml.safe_dump(c.model_dump(mode="json", exclude_defaults=True)), encoding="utf-8"
            )
        os.environ["SISFLOW_CUSTOMERS_DIR"] = folder
        served_s = timed(lambda: customers_page(conn, load_all()[0]))
    with conn, conn.cursor() as cur:
        cur.execute("DELETE FROM sis.runs WHERE customer LIKE %s", (f"{PREFIX}%",))
        cur.execute("DELETE FROM sis.school_years WHERE customer LIKE %s", (f"{PREFIX}%",))
        cur.execute("DELETE FROM sis.readiness_checks WHERE customer LIKE %s", (f"{PREFIX}%",))
    conn.close()
    return {
        "customers": n,
        "runs": runs,
        "rows_s": rows_s,
        "page_s": page_s,
        "served_s": served_s,
    }


def report(result: dict) -> None:
    print(
        f"\nThe operations page: {result['customers']} customers, {result['runs']:,} runs"
        f" (90 days)\n  rows (one query, rows built): {result['rows_s']:.3f} s"
        f"\n  the whole Customers page rendered: {result['page_s']:.3f} s"
        f"\n  a request served (customer files read, then the page): {result['served_s']:.3f} s"
        f"   aim: under 1 s {'(met)' if result['served_s'] < 1 else '(NOT met)'}"
    )
