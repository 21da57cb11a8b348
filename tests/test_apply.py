"""Applying change sets to the reference LMS site: sync-key rules, delay delete, archiving."""

from datetime import date

from sisflow import apply
from sisflow.ims.generate import generate
from sisflow.lms.postgres_site import PostgresSite
from sisflow.lms.seed import seed_manual_objects

from tests.factory import enterprise, group, lenient, member, membership, person, run_once, write

DAY = date(2025, 9, 1)
# the filter is not what these tests are about: it holds nothing here (see test_gate.py)
ON = lenient(course_archiving=True)
OFF = lenient(course_archiving=False)


def site(conn, name="kommune"):
    """The site without database ids: what a person would see, comparable across sites."""
    snap = PostgresSite(conn.cursor(), name).snapshot()
    return {
        "users": {
            (u["sync_key"], u["profile"], u["trashed"]) for u in snap["users"] if not u["manual"]
        },
        "manual_users": {
            (u["id"], u["profile"], u["trashed"]) for u in snap["users"] if u["manual"]
        },
        "units": {(u["sync_key"], u["kind"], u["parent"], u["removed"]) for u in snap["units"]},
        "courses": {
            c["sync_key"] or f"manual-{c['id']}": (
                c["state"],
                c["unit"],
                c["term"],
                c["created_by_integration"],
            )
            for c in snap["courses"]
        },
        "participants": {
            (p["course"] or f"manual-{p['course_id']}", p["user"], p["role"], p["synced"])
            for p in snap["participants"]
        },
        "unit_members": {(m["unit"], m["user"], m["role"]) for m in snap["unit_members"]},
        "terms": {(t["sync_key"], t["archived"]) for t in snap["terms"]},
    }


def school(*, pupils=("p1", "p2"), courses=("MAT-5A",), year=2025, teacher="t1"):
    """A school with a class 5A, teaching groups, pupils and a teacher."""
    begin, end = f"{year}-08-15", f"{year + 1}-06-20"
    records = [person(p, "Elev", p.upper()) for p in pupils]
    records.append(person(teacher, "Lærer", "Larsen"))
    records += [
        group("owner", "skoleeier", scheme="pifu-ims-go-org"),
        group("school", "skole", parent="owner", scheme="pifu-ims-go-org", level="2"),
        group("5A", "basisgruppe", parent="school", begin=begin, end=end),
    ]
    records += [
        group(c, "undervisningsgruppe", parent="school", begin=begin, end=end) for c in courses
    ]
    records.append(membership("school", *(member(p) for p in pupils), member(teacher, "02")))
    records.append(membership("5A", *(member(p) for p in pupils), member(teacher, "02")))
    records += [membership(c, *(member(p) for p in pupils), member(teacher, "02")) for c in courses]
    return enterprise(*records)


def run(conn, tmp_path, text, name, *, config=ON, on=DAY, **kw):
    return run_once(conn, "kommune", write(tmp_path, text, name), config=config, on=on, **kw)


# -- first import and the sync-key rules ---------------------------------------------------------


def test_first_import_builds_the_site(conn, tmp_path):
    result = run(conn, tmp_path, school(), "day1.xml")
    assert result["lms_applied_at"] is not None
    s = site(conn)
    assert s["users"] == {
        ("p1", "student", False),
        ("p2", "student", False),
        ("t1", "teacher", False),
    }
    assert s["units"] == {
        ("owner", "skoleeier", None, False),
        ("school", "skole", "owner", False),
        ("5A", "basisgruppe", "school", False),
    }
    assert s["courses"] == {"MAT-5A": ("active", "school", "2025-08-15..2026-06-20", True)}
    assert s["participants"] == {
        ("MAT-5A", "p1", "learner", True),
        ("MAT-5A", "p2", "learner", True),
        ("MAT-5A", "t1", "instructor", True),
    }
    assert ("5A", "t1", "instructor") in s["unit_members"]
    assert s["terms"] == {("2025-08-15..2026-06-20", False)}


def test_manual_accounts_and_courses_are_never_touched(conn, tmp_path):
    with conn, conn.cursor() as cur:
        ids = seed_manual_objects(cur, "kommune", first_grader=("Elev", "P1", None))
    run(conn, tmp_path, school(), "day1.xml")
    # the file's p1 has the same name as the hand-made first-grader: a second account is made
    with conn.cursor() as cur:
        cur.execute(
            "SELECT id, sync_key FROM lms.users WHERE first_name = 'Elev'"
            " AND last_name = 'P1' ORDER BY id"
        )
        assert cur.fetchall()[0] == (ids["manual_first_grader"], None)
    run(conn, tmp_path, school(pupils=("p2",)), "day2.xml")  # p1 leaves
    s = site(conn)
    assert ("p1", "student", True) in s["users"]  # the synced p1 went to the trash
    assert s["manual_users"] == {
        (ids["admin1"], "admin", False),
        (ids["admin2"], "admin", False),
        (ids["manual_first_grader"], "student", False),
    }
    assert (f"manual-{ids['manual_course']}", None, None, False) in {
        (k, *v[1:]) for k, v in s["courses"].items()
    }
    assert (f"manual-{ids['manual_course']}", None, "instructor", False) in {
        (c, u, r, sy) for c, u, r, sy in s["participants"] if c.startswith("manual")
    }


def test_a_person_leaving_goes_to_the_trash_and_comes_back_out(conn, tmp_path):
    run(conn, tmp_path, school(), "day1.xml")
    run(conn, tmp_path, school(pupils=("p1",)), "day2.xml")
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM lms.users WHERE site = 'kommune'")
        assert cur.fetchone()[0] == 3  # nothing is ever hard-deleted
    assert ("p2", "student", True) in site(conn)["users"]
    assert ("MAT-5A", "p2", "learner", True) not in site(conn)["participants"]
    run(conn, tmp_path, school(), "day3.xml")
    assert ("p2", "student", False) in site(conn)["users"]


def test_a_site_built_in_small_batches_is_the_one_built_in_one(conn, tmp_path, monkeypatch):
    """Rows stream to the site a batch at a time: however they are cut, the site is the same,
    removals included."""
    days = [(tmp_path / "day1.xml", DAY, 0), (tmp_path / "day2.xml", date(2025, 9, 2), 5)]
    for path, _, drop_every in days:
        generate(path, size="tiny", drop_every=drop_every)
    built = {}
    for customer, batch in (("whole", apply.BATCH), ("bits", 7)):
        monkeypatch.setattr(apply, "BATCH", batch)
        for path, day, _ in days:
            result = run_once(conn, customer, path, config=lenient(customer), on=day)
            assert result["lms_applied_at"] is not None
        built[customer] = site(conn, customer)
    assert built["bits"] == built["whole"]
    assert len(built["whole"]["participants"]) > 7 * 3  # many batches of 7


def test_applying_a_run_twice_changes_nothing(conn, tmp_path):
    result = run(conn, tmp_path, school(), "day1.xml")
    before = site(conn)
    assert (
        apply.apply_run(conn, result["id"], mode="normal", course_archiving=True)
        == result["lms_counts"]
    )
    with conn, conn.cursor() as cur:  # forget that it was applied: every step runs again
        cur.execute("DELETE FROM sis.apply_steps WHERE run_id = %s", (result["id"],))
        cur.execute("UPDATE sis.runs SET lms_applied_at = NULL WHERE id = %s", (result["id"],))
    apply.apply_run(conn, result["id"], mode="normal", course_archiving=True)
    assert site(conn) == before


def test_members_of_a_group_that_left_keep_access_and_every_removal_counts(conn, tmp_path):
    """NOR-5A leaves with its three members, and p2 leaves the school: NOR-5A's people stay
    as manual participants, p2 is taken out of the groups that stay, and each of the six
    deleted memberships counts as applied."""
    run(conn, tmp_path, school(courses=("MAT-5A", "NOR-5A")), "day1.xml")
    second = run(
        conn, tmp_path, school(pupils=("p1",), courses=("MAT-5A",)), "day2.xml", on=date(2025, 9, 2)
    )
    assert second["counts"]["membership"]["delete"] == 6
    assert second["lms_counts"]["memberships"] == {
        "applied": 6,
        "deferred": 0,
        "skipped": 0,
        "failed": 0,
    }
    s = site(conn)
    assert {p for p in s["participants"] if p[0] == "NOR-5A"} == {
        ("NOR-5A", "p1", "learner", False),
        ("NOR-5A", "p2", "learner", False),
        ("NOR-5A", "t1", "instructor", False),
    }
    assert {p for p in s["participants"] if p[0] == "MAT-5A"} == {
        ("MAT-5A", "p1", "learner", True),
        ("MAT-5A", "t1", "instructor", True),
    }
    assert not [m for m in s["unit_members"] if m[1] == "p2"]


def test_a_dry_run_applies_nothing(conn, tmp_path):
    result = run(conn, tmp_path, school(), "day1.xml", dry_run=True)
    assert result["status"] == "dry-run" and result["lms_applied_at"] is None
    assert site(conn)["users"] == set()


# -- course and term archiving -------------------------------------------------------------------


def test_archiving_on_archives_detaches_and_keeps_the_people(conn, tmp_path):
    run(conn, tmp_path, school(courses=("MAT-5A", "NOR-5A")), "day1.xml")
    run(conn, tmp_path, school(courses=("NOR-5A",)), "day2.xml")  # MAT-5A left the file
    s = site(conn)
    assert s["courses"]["MAT-5A"] == ("archived", None, "2025-08-15..2026-06-20", True)
    assert {p for p in s["participants"] if p[0] == "MAT-5A"} == {
        ("MAT-5A", "p1", "learner", False),
        ("MAT-5A", "p2", "learner", False),
        ("MAT-5A", "t1", "instructor", False),
    }  # manual now: they keep access


def test_an_archived_course_whose_group_returns_stays_archived_and_gets_new_people(conn, tmp_path):
    run(conn, tmp_path, school(courses=("MAT-5A", "NOR-5A")), "day1.xml")
    run(conn, tmp_path, school(courses=("NOR-5A",)), "day2.xml")
    back = school(pupils=("p1", "p3"), courses=("MAT-5A", "NOR-5A"))
    run(conn, tmp_path, back, "day3.xml")
    s = site(conn)
    assert s["courses"]["MAT-5A"][0:2] == ("archived", None)  # never unarchived
    mat = {p for p in s["participants"] if p[0] == "MAT-5A"}
    assert ("MAT-5A", "p3", "learner", True) in mat  # the new member, synced
    assert ("MAT-5A", "p2", "learner", False) in mat  # the old ones remain
    assert ("MAT-5A", "p1", "learner", False) in mat


def test_a_course_restored_by_hand_while_its_group_is_absent_is_left_alone(conn, tmp_path):
    run(conn, tmp_path, school(courses=("MAT-5A", "NOR-5A")), "day1.xml")
    run(conn, tmp_path, school(courses=("NOR-5A",)), "day2.xml")
    with conn, conn.cursor() as cur:
        cur.execute(
            "UPDATE lms.courses SET state = 'active', archived_at = NULL"
            " WHERE site = 'kommune' AND sync_key = 'MAT-5A'"
        )
    run(conn, tmp_path, school(pupils=("p1", "p2", "p4"), courses=("NOR-5A",)), "day3.xml")
    assert site(conn)["courses"]["MAT-5A"][0] == "active"


def test_archiving_off_detaches_and_keeps_the_course_active(conn, tmp_path):
    run(conn, tmp_path, school(courses=("MAT-5A", "NOR-5A")), "day1.xml", config=OFF)
    run(conn, tmp_path, school(courses=("NOR-5A",)), "day2.xml", config=OFF)
    s = site(conn)
    assert s["courses"]["MAT-5A"][0:2] == ("active", None)
    assert all(not synced for c, _, _, synced in s["participants"] if c == "MAT-5A")


def test_terms_no_longer_in_the_data_are_archived(conn, tmp_path):
    run(conn, tmp_path, school(year=2025), "y1.xml")
    nxt = school(year=2026, courses=("MAT-6A",))
    run(conn, tmp_path, nxt, "y2.xml", on=date(2026, 8, 10), rollover=True)
    assert site(conn)["terms"] == {
        ("2025-08-15..2026-06-20", True),
        ("2026-08-15..2027-06-20", False),
    }


# -- delay delete --------------------------------------------------------------------------------

WINDOW = lenient(delay_delete=[{"start": "2025-06-01", "end": "2025-08-31"}])


def test_delay_delete_holds_deletions_back_and_releases_them_once(conn, tmp_path):
    run(
        conn,
        tmp_path,
        school(courses=("MAT-5A", "NOR-5A")),
        "d1.xml",
        config=WINDOW,
        on=date(2025, 5, 20),
    )
    # in the window: p2 and MAT-5A leave, p3 arrives
    during = run(
        conn,
        tmp_path,
        school(pupils=("p1", "p3"), courses=("NOR-5A",)),
        "d2.xml",
        config=WINDOW,
        on=date(2025, 6, 15),
    )
    assert during["lms_mode"] == "delay-delete"
    s = site(conn)
    assert ("p2", "student", False) in s["users"]  # not trashed yet
    assert ("p3", "student", False) in s["users"]  # creations go through
    assert s["courses"]["MAT-5A"][0] == "active"  # not archived yet
    assert ("NOR-5A", "p2", "learner", True) in s["participants"]
    with conn.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM sis.persons WHERE customer = 'kommune' AND sourcedid = 'p2'"
        )
        assert cur.fetchone()[0] == 0  # but the import database has the deletion

    # the first run after the window: the deferred deletions are in its change set
    after = run(
        conn,
        tmp_path,
        school(pupils=("p1", "p3"), courses=("NOR-5A",)),
        "d3.xml",
        config=WINDOW,
        on=date(2025, 9, 1),
    )
    assert after["status"] == "committed"  # the same file, yet not "unchanged"
    assert after["counts"]["person"]["delete"] == 1
    assert after["counts"]["group"]["delete"] == 1
    assert after["counts"]["membership"]["delete"] == during["counts"]["membership"]["delete"]
    s = site(conn)
    assert ("p2", "student", True) in s["users"]
    assert s["courses"]["MAT-5A"][0] == "archived"
    assert ("NOR-5A", "p2", "learner", True) not in s["participants"]

    # exactly once: the next run releases nothing more
    again = run(
        conn,
        tmp_path,
        school(pupils=("p1", "p3", "p5"), courses=("NOR-5A",)),
        "d4.xml",
        config=WINDOW,
        on=date(2025, 9, 2),
    )
    assert again["counts"]["person"] == {"create": 1, "update": 0, "delete": 0}


def test_a_deferred_deletion_whose_object_came_back_is_dropped(conn, tmp_path):
    run(conn, tmp_path, school(), "d1.xml", config=WINDOW, on=date(2025, 5, 20))
    run(conn, tmp_path, school(pupils=("p1",)), "d2.xml", config=WINDOW, on=date(2025, 6, 15))
    run(conn, tmp_path, school(), "d3.xml", config=WINDOW, on=date(2025, 7, 1))  # p2 is back
    after = run(
        conn,
        tmp_path,
        school(pupils=("p1", "p2", "p3")),
        "d4.xml",
        config=WINDOW,
        on=date(2025, 9, 1),
    )
    assert after["counts"]["person"] == {"create": 1, "update": 0, "delete": 0}
    assert after["lms_counts"]["deferred_settled"]["dropped"] >= 1
    assert ("p2", "student", False) in site(conn)["users"]


def test_a_term_waits_with_its_courses_in_a_delay_delete_window(conn, tmp_path):
    run(conn, tmp_path, school(year=2024), "y1.xml", config=WINDOW, on=date(2025, 5, 20))
    # the rollover, in the window: last year's courses and their term leave the file
    run(
        conn,
        tmp_path,
        school(year=2025, courses=("MAT-6A",)),
        "y2.xml",
        config=WINDOW,
        on=date(2025, 8, 20),
        rollover=True,
    )
    s = site(conn)
    assert s["courses"]["MAT-5A"][0] == "active"
    assert ("2024-08-15..2025-06-20", False) in s["terms"]  # the term stays with its course
    assert ("2025-08-15..2026-06-20", False) in s["terms"]  # the new one is there already
    # after the window both go, together
    run(
        conn,
        tmp_path,
        school(year=2025, courses=("MAT-6A",)),
        "y3.xml",
        config=WINDOW,
        on=date(2025, 9, 1),
    )
    s = site(conn)
    assert s["courses"]["MAT-5A"][0] == "archived"
    assert ("2024-08-15..2025-06-20", True) in s["terms"]


def test_members_added_to_a_unit_by_hand_are_never_removed(conn, tmp_path):
    run(conn, tmp_path, school(), "day1.xml")
    with conn, conn.cursor() as cur:  # an administrator adds p2 as a unit manager by hand
        cur.execute(
            "INSERT INTO lms.unit_members (unit_id, user_id, role)"
            " SELECT n.id, u.id, 'manager' FROM lms.units n, lms.users u"
            " WHERE n.sync_key = '5A' AND u.sync_key = 'p2'"
        )
        cur.execute(
            "INSERT INTO lms.unit_members (unit_id, user_id, role)"
            " SELECT n.id, u.id, 'member' FROM lms.units n, lms.users u"
            " WHERE n.sync_key = 'school' AND u.sync_key = 't1'"
        )
    # p2 leaves 5A in the file, and the unit 5A disappears from the next file altogether
    run(conn, tmp_path, school(pupils=("p1",)), "day2.xml")
    gone = school(pupils=("p1",)).replace(
        group("5A", "basisgruppe", parent="school", begin="2025-08-15", end="2026-06-20"), ""
    )
    gone = gone.replace(membership("5A", member("p1"), member("t1", "02")), "")
    run(conn, tmp_path, gone, "day3.xml")
    snap = PostgresSite(conn.cursor(), "kommune").snapshot()
    members = {(m["unit"], m["user"], m["role"], m["synced"]) for m in snap["unit_members"]}
    assert ("5A", "p2", "manager", False) in members  # the manual one stays
    assert ("school", "t1", "member", False) in members
    assert not [m for m in members if m[0] == "5A" and m[3]]  # the synced ones went
