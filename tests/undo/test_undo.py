"""Undo on the reference site: the LMS and the import database back as they were."""

from datetime import date

import pytest
from sisflow import state
from sisflow.errors import UndoNeedsForce, UndoRefused
from sisflow.pipeline import Holder
from sisflow.undo import undo

from tests.factory import enterprise, group, lenient, member, membership, person, run_once, write

DAY = date(2025, 9, 1)
CONFIG = lenient(course_archiving=True)


def lms_rows(conn, site="kommune") -> dict:
    """Every row of the site, every column but the time of the last update: the site as a
    whole, names and states included."""
    tables = {
        "users": "SELECT * FROM lms.users WHERE site = %(s)s ORDER BY id",
        "units": "SELECT * FROM lms.units WHERE site = %(s)s ORDER BY id",
        "terms": "SELECT * FROM lms.terms WHERE site = %(s)s ORDER BY id",
        "courses": "SELECT * FROM lms.courses WHERE site = %(s)s ORDER BY id",
        "participants": "SELECT p.* FROM lms.participants p JOIN lms.courses c"
        " ON c.id = p.course_id WHERE c.site = %(s)s ORDER BY 1, 2, 3",
        "unit_members": "SELECT m.* FROM lms.unit_members m JOIN lms.units n ON n.id = m.unit_id"
        " WHERE n.site = %(s)s ORDER BY 1, 2, 3",
    }
    out = {}
    with conn.cursor() as cur:
        for name, query in tables.items():
            cur.execute(query, {"s": site})
            columns = [d.name for d in cur.description]
            out[name] = [
                {c: v for c, v in zip(columns, row, strict=True) if c != "updated_at"}
                for row in cur.fetchall()
            ]
    return out


def two_schools(pupils_a=10, pupils_b=10, year=2025) -> str:
    """Two schools, each with a class, a teaching group, pupils and a teacher."""
    begin, end = f"{year}-08-15", f"{year + 1}-06-20"
    records = [group("owner", "skoleeier", scheme="pifu-ims-go-org")]
    for s, n in (("A", pupils_a), ("B", pupils_b)):
        pupils = [f"{s.lower()}{i}" for i in range(n)]
        records += [person(p, "Elev", p.upper()) for p in pupils]
        records.append(person(f"t{s}", "Lærer", "L"))
        records += [
            group(f"school{s}", "skole", parent="owner", scheme="pifu-ims-go-org", level="2"),
            group(f"5{s}", "basisgruppe", parent=f"school{s}", begin=begin, end=end),
            group(f"MAT-{s}", "undervisningsgruppe", parent=f"school{s}", begin=begin, end=end),
        ]
        everyone = (*(member(p) for p in pupils), member(f"t{s}", "02"))
        records += [membership(g, *everyone) for g in (f"school{s}", f"5{s}", f"MAT-{s}")]
    return enterprise(*records)


def imported(conn, tmp_path, text, name, on=DAY, **kw):
    return run_once(conn, "kommune", write(tmp_path, text, name), config=CONFIG, on=on, **kw)


def take_back(conn, run_id, **kw):
    return undo(
        conn,
        run_id,
        by="ops",
        reason="test",
        via="cli",
        config=CONFIG,
        holder=Holder.this_process(),
        **kw,
    )


def test_undo_of_a_cut_off_export_puts_every_row_back(conn, tmp_path):
    imported(conn, tmp_path, two_schools(), "day1.xml")
    before_lms = lms_rows(conn)
    before_state = state.snapshot(conn.cursor(), "kommune")
    bad = imported(conn, tmp_path, two_schools(pupils_a=1), "day2.xml")
    assert lms_rows(conn) != before_lms
    result = take_back(conn, bad["id"])
    assert result.lms["user"]["restored"] == 9
    assert lms_rows(conn) == before_lms
    assert state.snapshot(conn.cursor(), "kommune") == before_state


def test_undo_of_a_class_that_lost_a_pupil_and_gained_one_in_the_same_run(conn, tmp_path):
    """One class with members both removed and added by the run (two journal rows): both
    go back, and the undo can be undone."""
    day1 = two_schools()
    imported(conn, tmp_path, day1, "day1.xml")
    before = lms_rows(conn)
    start = day1.index("<membership><sourcedid><source>sas@test.kommune.no</source><id>5A</id>")
    end = day1.index("</membership>", start)
    day2 = day1[:start] + day1[start:end].replace(member("a0"), member("b0")) + day1[end:]
    moved = imported(conn, tmp_path, day2, "day2.xml")
    assert moved["counts"]["membership"] == {"create": 1, "update": 0, "delete": 1}
    after = lms_rows(conn)
    assert after != before
    first = take_back(conn, moved["id"])
    assert first.lms["unit_member"] == {"restored": 2}
    assert lms_rows(conn) == before
    take_back(conn, first.undo_run)
    assert lms_rows(conn) == after


def test_dry_run_changes_nothing(conn, tmp_path):
    imported(conn, tmp_path, two_schools(), "day1.xml")
    bad = imported(conn, tmp_path, two_schools(pupils_a=1), "day2.xml")
    after = lms_rows(conn)
    result = take_back(conn, bad["id"], dry_run=True)
    assert result.undo_run is None and result.lms["user"]["restored"] == 9
    assert lms_rows(conn) == after


def test_undo_of_an_undo_puts_the_run_back(conn, tmp_path):
    imported(conn, tmp_path, two_schools(), "day1.xml")
    bad = imported(conn, tmp_path, two_schools(pupils_a=1), "day2.xml")
    after = lms_rows(conn)
    first = take_back(conn, bad["id"])
    take_back(conn, first.undo_run)
    assert lms_rows(conn) == after


def test_undo_of_a_first_import_takes_away_what_nobody_used(conn, tmp_path):
    first = imported(conn, tmp_path, two_schools(), "day1.xml")
    with conn, conn.cursor() as cur:
        cur.execute("UPDATE lms.users SET last_login = now() WHERE sync_key = 'a1'")
    result = take_back(conn, first["id"])
    rows = lms_rows(conn)
    assert [u["sync_key"] for u in rows["users"]] == ["a1"]
    assert {"kind": "user", "key": "a1", "verdict": "kept", "why": "has been logged into"} in (
        result.left_alone
    )
    assert rows["courses"] == [] and rows["participants"] == []


def school_part(rows: dict, school: str) -> dict:
    """The rows of one school: its pupils and teacher, its units and course, their members."""
    prefix = school[-1]
    users = {u["id"] for u in rows["users"] if u["sync_key"].upper().lstrip("T").startswith(prefix)}
    units = {u["id"] for u in rows["units"] if (u["sync_key"] or "").endswith(prefix)}
    courses = {c["id"] for c in rows["courses"] if c["sync_key"].endswith(prefix)}
    return {
        "users": [u for u in rows["users"] if u["id"] in users],
        "units": [u for u in rows["units"] if u["id"] in units],
        "courses": [c for c in rows["courses"] if c["id"] in courses],
        "participants": [p for p in rows["participants"] if p["course_id"] in courses],
        "unit_members": [m for m in rows["unit_members"] if m["unit_id"] in units],
    }


def test_undo_of_one_school_of_two(conn, tmp_path):
    imported(conn, tmp_path, two_schools(), "day1.xml")
    before = lms_rows(conn)
    bad = imported(conn, tmp_path, two_schools(pupils_a=1, pupils_b=1), "day2.xml")
    after = lms_rows(conn)
    take_back(conn, bad["id"], school="schoolA")
    rows = lms_rows(conn)
    assert school_part(rows, "schoolA") == school_part(before, "schoolA")
    assert school_part(rows, "schoolB") == school_part(after, "schoolB")
    assert school_part(rows, "schoolB") != school_part(before, "schoolB")
    persons = {row[0] for row in state.snapshot(conn.cursor(), "kommune")["person"]}
    assert {f"a{i}" for i in range(10)} <= persons and "b5" not in persons


def test_conflicts_are_left_alone_and_listed(conn, tmp_path):
    imported(conn, tmp_path, two_schools(), "day1.xml")
    bad = imported(conn, tmp_path, two_schools(pupils_a=1), "day2.xml")
    with conn, conn.cursor() as cur:  # a person took a2 out of the trash by hand
        cur.execute("UPDATE lms.users SET trashed_at = NULL WHERE sync_key = 'a2'")
    result = take_back(conn, bad["id"])
    assert result.lms["user"] == {"restored": 8, "conflict": 1}
    assert result.left_alone == [
        {"kind": "user", "key": "a2", "verdict": "conflict", "why": "changed by hand since"}
    ]


def test_refusals(conn, tmp_path):
    first = imported(conn, tmp_path, two_schools(), "day1.xml")
    dry = imported(conn, tmp_path, two_schools(pupils_a=1), "day2.xml", dry_run=True)
    with pytest.raises(UndoRefused, match="was a dry run"):
        take_back(conn, dry["id"])
    same = imported(conn, tmp_path, two_schools(), "day1b.xml")
    with pytest.raises(UndoRefused, match="is unchanged"):
        take_back(conn, same["id"])
    take_back(conn, first["id"])
    with pytest.raises(UndoRefused, match="undone already"):
        take_back(conn, first["id"])


def test_the_undone_change_does_not_come_back_without_a_person(conn, tmp_path):
    imported(conn, tmp_path, two_schools(), "day1.xml")
    bad = imported(conn, tmp_path, two_schools(pupils_a=1), "day2.xml")
    take_back(conn, bad["id"])
    again = imported(conn, tmp_path, two_schools(pupils_a=1), "day2.xml")  # the same file
    assert again["status"] == "held"
    assert [(t["entity"], t["kind"], t["actual"]) for t in again["verdict"]["trips"]] == [
        ("membership", "undone", 27),
        ("person", "undone", 9),
    ]
    fixed = imported(conn, tmp_path, two_schools(), "day3.xml")  # nothing undone comes back
    assert fixed["status"] == "committed"


def rollover_then_an_import(conn, tmp_path):
    imported(conn, tmp_path, two_schools(), "2025.xml")
    text = two_schools(year=2026).replace("MAT-A", "MAT-A-2026").replace("MAT-B", "MAT-B-2026")
    rollover = imported(conn, tmp_path, text, "2026.xml", on=date(2026, 8, 10), rollover=True)
    assert rollover["status"] == "committed"
    later = imported(conn, tmp_path, text.replace("a1", "a1x"), "later.xml", on=date(2026, 9, 1))
    assert later["status"] == "committed"
    return rollover


def test_a_rollover_built_on_since_its_window_is_undone_only_when_forced(conn, tmp_path):
    rollover = rollover_then_an_import(conn, tmp_path)
    with pytest.raises(UndoNeedsForce, match="1 run\\(s\\) built on it since") as refused:
        take_back(conn, rollover["id"], today=date(2026, 9, 2))
    # the refusal says what the forced undo would do, and nothing was changed
    assert refused.value.would[0].startswith("dry run: undoing run 2 would")
    assert "  the school year goes back to the one before the rollover" in refused.value.would
    result = take_back(conn, rollover["id"], today=date(2026, 9, 2), force=True)
    assert result.school_year_back and result.forced
    # a1's place in the new year's class, which the later run took away with a1 (now a1x),
    # is left alone in the import database, and the undo says so
    assert result.state_conflicts == {"person": 0, "group": 0, "membership": 1}
    assert "  import database, changed since by a later run (left alone): membership 1" in (
        result.lines()
    )
    with conn.cursor() as cur:
        cur.execute("SELECT label FROM sis.school_years WHERE customer = 'kommune'")
        assert cur.fetchall() == [("2025-2026",)]
        cur.execute("SELECT state FROM lms.courses WHERE sync_key = 'MAT-A'")
        assert cur.fetchall() == [("active",)]  # last year's course back in use


def test_a_rollover_inside_its_window_needs_no_force(conn, tmp_path):
    config = lenient(
        course_archiving=True, delay_delete=[{"start": "2026-08-01", "end": "2026-09-10"}]
    )
    run_once(conn, "kommune", write(tmp_path, two_schools(), "a.xml"), config=config, on=DAY)
    text = two_schools(year=2026).replace("MAT-A", "MAT-A-2026")
    rollover = run_once(
        conn,
        "kommune",
        write(tmp_path, text, "b.xml"),
        config=config,
        on=date(2026, 8, 10),
        rollover=True,
    )
    run_once(
        conn,
        "kommune",
        write(tmp_path, text.replace("a1", "a1x"), "c.xml"),
        config=config,
        on=date(2026, 9, 1),
    )
    result = undo(
        conn,
        rollover["id"],
        by="ops",
        reason="test",
        via="cli",
        config=config,
        holder=Holder.this_process(),
        today=date(2026, 9, 2),
    )
    assert not result.forced and result.school_year_back


def test_a_run_older_than_the_journal_is_refused_in_one_line(conn, tmp_path):
    from datetime import UTC, datetime, timedelta

    from sisflow import retention

    first = imported(conn, tmp_path, two_schools(), "day1.xml")
    imported(conn, tmp_path, two_schools(pupils_a=1), "day2.xml")
    later = datetime.now(UTC) + timedelta(days=91)
    assert retention.prune_database(conn, older_than_days=90, now=later)["journal"] > 0
    with pytest.raises(UndoRefused, match=f"^run {first['id']} is older than the journal"):
        take_back(conn, first["id"])
