"""Retention: history older than the period leaves; what a later run needs stays, so removing
history never changes what a later diff computes."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, timedelta

from psycopg2 import sql
from sisflow import retention, state
from sisflow.entities import ENTITIES
from sisflow.ims.generate import generate

from tests.factory import lenient, run_once

WINDOW = lenient(delay_delete=[{"start": "2026-06-20", "end": "2026-08-14"}])
LATER = datetime.now(UTC) + timedelta(days=1)  # "now" for the pruning: everything is older


def _changes(conn, run_id: int) -> dict[str, set]:
    out = {}
    with conn.cursor() as cur:
        for entity in ENTITIES:
            cur.execute(
                sql.SQL("SELECT op, {} FROM {} WHERE run_id = %s").format(
                    sql.SQL(", ").join(
                        sql.SQL("{}::text").format(sql.Identifier(c)) for c in entity.columns
                    ),
                    entity.changes,
                ),
                (run_id,),
            )
            out[entity.name] = set(cur.fetchall())
    return out


def _story(conn, tmp_path, prune: bool) -> dict:
    """A first import, the rollover inside a delay-delete window (its deletions wait), maybe
    the pruning of everything, then the first import after the window."""
    files = {}
    for year in (2025, 2026):
        files[year] = tmp_path / f"export-{year}.xml"
        if not files[year].exists():
            generate(files[year], seed=6, year=year, size="tiny")
    run_once(conn, "kommune", files[2025], on=date(2025, 9, 1), config=WINDOW)
    during = run_once(
        conn, "kommune", files[2026], on=date(2026, 8, 10), rollover=True, config=WINDOW
    )
    assert during["lms_mode"] == "delay-delete"
    gone = retention.prune_database(conn, older_than_days=0, now=LATER) if prune else None
    after = run_once(conn, "kommune", files[2026], on=date(2026, 8, 20), config=WINDOW)
    with conn.cursor() as cur:
        current = state.snapshot(cur, "kommune")
    return {
        "gone": gone,
        "after": after,
        "changes": _changes(conn, after["id"]),
        "current": current,
    }


def test_removing_history_never_changes_what_a_later_diff_computes(new_db, tmp_path):
    from sisflow.db.connection import connect

    kept, pruned = connect(new_db()), connect(new_db())
    try:
        a, b = _story(kept, tmp_path, prune=False), _story(pruned, tmp_path, prune=True)
        assert b["gone"]["runs"] == 2 and b["gone"]["change_rows"] > 0
        # the deletions deferred in the window were released after it, in both
        assert a["after"]["counts"] == b["after"]["counts"]
        assert a["after"]["counts"]["person"]["delete"] > 0
        assert a["changes"] == b["changes"]
        assert a["current"] == b["current"]
        assert a["after"]["lms_counts"] == b["after"]["lms_counts"]
    finally:
        kept.close()
        pruned.close()


def test_what_a_later_run_needs_stays_and_the_rest_goes(conn, tmp_path, state_folder):
    first = tmp_path / "first.xml"
    generate(first, seed=6, year=2025, size="tiny")
    done = run_once(conn, "kommune", first, on=date(2025, 9, 1), config=lenient())
    with conn, conn.cursor() as cur:  # a run staged but not yet decided stays as it is
        cur.execute(
            "INSERT INTO sis.runs (customer, status, file_path, file_name, sha256)"
            " VALUES ('kommune', 'held', 'x', 'held.xml', 'x') RETURNING id"
        )
        held = cur.fetchone()[0]
        cur.execute(
            "INSERT INTO sis.person_changes (run_id, op, sourcedid)"
            " VALUES (%s, 'create', 'p-held')",
            (held,),
        )
    old_email = next((state_folder / "outbox" / "kommune").glob("*.eml"))
    os.utime(old_email, (0, 0))  # an email from long ago
    gone = retention.prune(conn, older_than_days=90)
    assert gone["runs"] == 0 and gone["emails"] == 1  # the run is recent; the email is not
    gone = retention.prune(conn, older_than_days=0)
    assert gone["runs"] == 1
    with conn.cursor() as cur:
        cur.execute("SELECT id, pruned_at IS NOT NULL FROM sis.runs ORDER BY id")
        assert cur.fetchall() == [(done["id"], True), (held, False)]
        cur.execute("SELECT run_id, count(*) FROM sis.person_changes GROUP BY run_id")
        assert cur.fetchall() == [(held, 1)]
        cur.execute("SELECT count(*) FROM sis.persons WHERE customer = 'kommune'")
        assert cur.fetchone()[0] == done["records"]["person"]  # the current state stays
    # the last committed run's export stays in the landing zone, whatever its age
    assert [p.name for p in (state_folder / "landing" / "kommune").iterdir()] == ["first.xml"]
