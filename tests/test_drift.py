"""Drift: hand-made changes to synced objects are found, listed and repaired by the next run;
objects made by hand are never listed."""

from datetime import date

from sisflow import drift
from sisflow.lms.seed import seed_manual_objects
from sisflow.pipeline import Holder

from tests.factory import run_once, write
from tests.undo.test_undo import CONFIG, two_schools

DAY = date(2025, 9, 1)


def imported(conn, tmp_path, name="day1.xml", **kw):
    return run_once(
        conn, "kommune", write(tmp_path, two_schools(), name), config=CONFIG, on=DAY, **kw
    )


def by_hand(conn, sql: str, *args) -> None:
    with conn, conn.cursor() as cur:
        cur.execute(sql, args)


def test_a_site_as_the_import_left_it_has_no_drift(conn, tmp_path):
    imported(conn, tmp_path)
    with conn, conn.cursor() as cur:
        seed_manual_objects(cur, "kommune")  # accounts, courses and members made by hand
    assert drift.check(conn, "kommune").total == 0


def test_hand_made_changes_to_synced_objects_are_listed_and_repaired(conn, tmp_path):
    imported(conn, tmp_path)
    by_hand(conn, "UPDATE lms.users SET trashed_at = now() WHERE sync_key = 'a1'")
    by_hand(conn, "UPDATE lms.users SET email = 'x@y.test' WHERE sync_key = 'a2'")
    by_hand(conn, "UPDATE lms.users SET sync_key = 'handmade-1' WHERE sync_key = 'a3'")
    by_hand(
        conn,
        "DELETE FROM lms.participants p USING lms.courses c, lms.users u WHERE c.id = p.course_id"
        " AND u.id = p.user_id AND c.sync_key = 'MAT-B' AND u.sync_key = 'b4'",
    )
    by_hand(conn, "UPDATE lms.courses SET state = 'archived' WHERE sync_key = 'MAT-A'")
    by_hand(
        conn,
        "UPDATE lms.unit_members x SET synced = false FROM lms.units n, lms.users u"
        " WHERE n.id = x.unit_id AND u.id = x.user_id AND n.sync_key = 'schoolB'"
        " AND u.sync_key = 'b5'",
    )
    found = drift.check(conn, "kommune")
    listed = {(d["kind"], d["key"], d["what"]) for d in found.listed}
    assert {
        ("account", "a1", "in the trash"),
        ("account", "a2", "edited by hand: email"),
        ("account", "a3", "missing"),
        ("account", "handmade-1", "a sync key the import database does not know"),
        ("participant", "MAT-B/b4/01", "removed by hand"),
        ("course", "MAT-A", "archived"),
        ("unit_member", "schoolB/b5/01", "made manual by hand"),
    } == listed
    assert found.counts["account"] == {
        "a sync key the import database does not know": 1,
        "edited by hand": 1,
        "in the trash": 1,
        "missing": 1,
    }
    repaired = drift.repair(conn, "kommune", by="kari", holder=Holder.this_process())
    assert repaired.repaired == {"sis.persons": 3, "sis.groups": 1, "sis.memberships": 5}
    again = imported(conn, tmp_path)  # the same file: not "unchanged", the drift is made again
    assert again["status"] == "committed"
    assert again["counts"]["person"]["create"] == 3
    left = {(d["kind"], d["key"]) for d in drift.check(conn, "kommune").listed}
    # an archived course stays archived and a member made manual stays manual (only a person
    # turns them back), and the account whose key was edited by hand is a second account
    # now: they stay listed for a person
    assert left == {
        ("course", "MAT-A"),
        ("account", "handmade-1"),
        ("unit_member", "schoolB/b5/01"),
    }
