"""Staging, diff and commit against a real Postgres, through the pipeline functions."""

from datetime import date

import pytest
from sisflow import pipeline, runs, state
from sisflow.errors import InvalidCustomer, NotDecidable, RunSuperseded

from tests.factory import enterprise, group, lenient, member, membership, person, run_once, write


def run_file(conn, customer, path, **kw):
    return run_once(conn, customer, path, config=lenient(customer), **kw)


TEST_HOLDER = pipeline.Holder("test", "a test")


def plan(conn, customer="kommune", **kw):
    """A real run's plan: the phases below are the ones the CLI and the DAG tasks call."""
    request = pipeline.Request(customer, on=date(2025, 9, 1), **kw)
    return pipeline.begin(conn, request, TEST_HOLDER, lenient(customer))


def handing_over(conn, p):
    """Give ``p``'s lease back for the duration of a ``with`` block (another run goes)."""
    from contextlib import contextmanager

    @contextmanager
    def block():
        runs.release(conn, p.customer, p.holder)
        yield
        runs.acquire(conn, p.customer, p.holder, p.description, process=False)

    return block()


def judged(conn, p, path):
    """Stage, diff and judge a file under plan ``p``; returns the run's summary."""
    run = pipeline.stage(conn, p, path, lenient(p.customer))
    run = pipeline.compute_diff(conn, p, run["id"])
    return pipeline.judge(conn, p, run["id"], lenient(p.customer))


def staged_tables(conn, run_id=None):
    """The per-run staging tables that exist (of one run, or of any)."""
    pattern = f"^staged_[a-z]+_r{run_id if run_id else '[0-9]+'}$"
    with conn.cursor() as cur:
        cur.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'sis'"
            " AND table_name ~ %s ORDER BY 1",
            (pattern,),
        )
        return [r[0] for r in cur.fetchall()]


def school(*persons_in_5a, extra_groups=(), email_p1="p1@skole.no"):
    return enterprise(
        person("p1", "Åse", "Ødegård", email=email_p1),
        person("p2", "Bjørn", "Sæther"),
        person("t1", "Kari", "Lærer"),
        group("owner", "skoleeier", scheme="pifu-ims-go-org"),
        group("school", "skole", parent="owner", scheme="pifu-ims-go-org", level="2"),
        group("5A", parent="school"),
        *extra_groups,
        membership("5A", *(member(p) for p in persons_in_5a), member("t1", "02")),
    )


def test_first_import_creates_everything_and_records_the_file(conn, tmp_path):
    path = write(tmp_path, school("p1", "p2"))
    run = run_file(conn, "kommune", path, dry_run=True)
    assert run["status"] == "dry-run"
    assert run["counts"] == {
        "person": {"create": 3, "update": 0, "delete": 0},
        "group": {"create": 3, "update": 0, "delete": 0},
        "membership": {"create": 3, "update": 0, "delete": 0},
    }
    assert run["file_name"] == "export.xml"
    assert run["file_size"] == path.stat().st_size
    assert len(run["sha256"]) == 64
    assert (run["datasource"], run["file_type"]) == ("sas@test.kommune.no", "full")
    with conn.cursor() as cur:  # a dry run changes nothing in the current state
        cur.execute("SELECT count(*) FROM sis.persons")
        assert cur.fetchone()[0] == 0


def test_full_file_diff_creates_updates_and_deletes(conn, tmp_path):
    run_file(conn, "kommune", write(tmp_path, school("p1", "p2"), "day1.xml"))
    day2 = school("p1", extra_groups=[group("6A", parent="school")], email_p1="new@skole.no")
    day2 = day2.replace(person("p2", "Bjørn", "Sæther"), "")  # p2 left
    run = run_file(conn, "kommune", write(tmp_path, day2, "day2.xml"), dry_run=True)
    assert run["counts"] == {
        "person": {"create": 0, "update": 1, "delete": 1},
        "group": {"create": 1, "update": 0, "delete": 0},
        "membership": {"create": 0, "update": 0, "delete": 1},
    }
    with conn.cursor() as cur:
        cur.execute(
            "SELECT op, sourcedid, changed FROM sis.person_changes WHERE run_id = %s ORDER BY op",
            (run["id"],),
        )
        assert cur.fetchall() == [("delete", "p2", None), ("update", "p1", ["email"])]


def test_a_dry_run_again_gives_the_same_change_set_and_is_never_resumed(conn, tmp_path):
    run_file(conn, "kommune", write(tmp_path, school("p1", "p2"), "day1.xml"))
    path = write(tmp_path, school("p1"), "day2.xml")
    first = run_file(conn, "kommune", path, dry_run=True)
    again = run_file(conn, "kommune", path, dry_run=True)
    assert again["counts"] == first["counts"]
    assert again["id"] != first["id"] and first["status"] == again["status"] == "dry-run"
    real = run_file(conn, "kommune", path)  # a real run starts afresh, not from a dry run
    assert real["id"] not in (first["id"], again["id"]) and real["status"] == "committed"
    assert staged_tables(conn) == []


def test_a_file_staged_again_after_a_crash_gives_the_same_change_set(conn, tmp_path):
    path = write(tmp_path, school("p1", "p2"))
    p = plan(conn)
    staged = pipeline.stage(conn, p, path, lenient(p.customer))
    assert staged["status"] == "staged"  # as if the process died before the diff
    first = pipeline.compute_diff(conn, p, staged["id"])
    with conn, conn.cursor() as cur:  # forget the diff, as if it crashed half-way
        cur.execute("UPDATE sis.runs SET status = 'staged' WHERE id = %s", (staged["id"],))
    again = pipeline.compute_diff(conn, p, staged["id"])
    assert again["counts"] == first["counts"]
    with conn.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM sis.membership_changes WHERE run_id = %s", (staged["id"],)
        )
        assert cur.fetchone()[0] == 3  # no duplicated change rows


def test_an_unchanged_file_is_recognised_by_its_checksum(conn, tmp_path):
    path = write(tmp_path, school("p1", "p2"))
    first = run_file(conn, "kommune", path)
    copy = write(tmp_path, path.read_text(encoding="utf-8"), "renamed.xml")
    second = run_file(conn, "kommune", copy)
    assert second["status"] == "unchanged"
    assert second["same_as_run"] == first["id"]
    assert all(v == 0 for c in second["counts"].values() for v in c.values())
    assert staged_tables(conn) == []


def test_a_file_of_the_last_files_size_is_read_not_taken_as_unchanged(conn, tmp_path):
    day1 = write(tmp_path, school("p1", "p2"), "day1.xml")
    run_file(conn, "kommune", day1)
    day2 = write(tmp_path, school("p1", "p2", email_p1="p9@skole.no"), "day2.xml")
    assert day2.stat().st_size == day1.stat().st_size
    run = run_file(conn, "kommune", day2)
    assert run["status"] == "committed"
    assert run["counts"]["person"] == {"create": 0, "update": 1, "delete": 0}


def test_the_checksum_taken_while_reading_recognises_the_file_again(conn, tmp_path):
    import hashlib

    run_file(conn, "kommune", write(tmp_path, school("p1", "p2"), "day1.xml"))
    day2 = write(tmp_path, school("p1"), "day2.xml")  # another size: no checksum before reading
    run = run_file(conn, "kommune", day2)
    assert run["status"] == "committed"
    assert run["sha256"] == hashlib.sha256(day2.read_bytes()).hexdigest()
    assert run["file_size"] == day2.stat().st_size
    again = run_file(conn, "kommune", write(tmp_path, day2.read_text(encoding="utf-8"), "b.xml"))
    assert (again["status"], again["same_as_run"]) == ("unchanged", run["id"])


def test_a_rejected_file_stages_nothing_and_says_why(conn, tmp_path):
    run_file(conn, "kommune", write(tmp_path, school("p1", "p2"), "good.xml"))
    before = state.snapshot(conn.cursor(), "kommune")
    text = school("p1").replace("</enterprise>", "<person>")  # cut off
    run = run_file(conn, "kommune", write(tmp_path, text, "cut.xml"))
    assert run["status"] == "rejected"
    assert run["fatal"]["line"] > 1 and "not well-formed" in run["fatal"]["reason"]
    assert staged_tables(conn) == []
    assert state.snapshot(conn.cursor(), "kommune") == before


def test_problems_are_stored_with_the_run(conn, tmp_path):
    text = school("p1", "ghost")
    run = run_file(conn, "kommune", write(tmp_path, text), dry_run=True)
    assert run["skipped"]["membership"] == 1
    with conn.cursor() as cur:
        cur.execute(
            "SELECT entity, record_id, reason FROM sis.problems WHERE run_id = %s", (run["id"],)
        )
        assert cur.fetchall() == [("membership", "5A/ghost", "unknown person 'ghost'")]


def test_a_new_file_supersedes_the_pending_run(conn, tmp_path):
    p = plan(conn)
    pending = judged(conn, p, write(tmp_path, school("p1"), "a.xml"))
    assert pending["status"] == "diffed" and len(staged_tables(conn, pending["id"])) == 3
    newer = judged(conn, p, write(tmp_path, school("p2"), "b.xml"))
    assert runs.summary(conn, pending["id"])["status"] == "superseded"
    assert staged_tables(conn, pending["id"]) == []
    assert newer["status"] == "diffed"
    with pytest.raises(RunSuperseded, match="superseded by a newer file"):
        pipeline.commit(conn, p, pending["id"])  # never revived


def test_the_last_committed_file_again_supersedes_a_pending_run(conn, tmp_path):
    a = write(tmp_path, school("p1", "p2"), "a.xml")
    run_file(conn, "kommune", a)
    p = plan(conn)
    pending = judged(conn, p, write(tmp_path, school("p1"), "b.xml"))
    with handing_over(conn, p):
        again = run_file(conn, "kommune", a)  # the SIS sends yesterday's file again
    assert again["status"] == "unchanged"
    assert runs.summary(conn, pending["id"])["status"] == "superseded"
    with pytest.raises(RunSuperseded):
        pipeline.commit(conn, p, pending["id"])


def test_a_dry_run_never_supersedes_a_pending_run(conn, tmp_path):
    p = plan(conn)
    pending = judged(conn, p, write(tmp_path, school("p1"), "a.xml"))
    with handing_over(conn, p):
        dry = run_file(conn, "kommune", write(tmp_path, school("p2"), "b.xml"), dry_run=True)
    assert dry["status"] == "dry-run" and dry["counts"]["person"]["create"] == 3
    assert runs.summary(conn, pending["id"])["status"] == "diffed"
    assert pipeline.commit(conn, p, pending["id"])["status"] == "committed"


def test_commit_happens_once_and_other_customers_do_not_disturb_it(conn, tmp_path):
    p = plan(conn)
    a = judged(conn, p, write(tmp_path, school("p1"), "a.xml"))
    other = run_file(conn, "other", write(tmp_path, school("p2"), "b.xml"))
    assert other["status"] == "committed"
    assert pipeline.commit(conn, p, a["id"])["status"] == "committed"
    before = state.snapshot(conn.cursor(), "kommune")
    assert pipeline.commit(conn, p, a["id"])["status"] == "committed"  # again: a no-op
    assert state.snapshot(conn.cursor(), "kommune") == before


def test_a_diff_computed_against_an_older_state_is_not_committed(conn, tmp_path):
    run_file(conn, "kommune", write(tmp_path, school("p1", "p2"), "a.xml"))
    p = plan(conn)
    pending = judged(conn, p, write(tmp_path, school("p1"), "b.xml"))
    with conn, conn.cursor() as cur:  # another writer moved the state on in the meantime
        cur.execute(
            "INSERT INTO sis.runs (customer, status, file_path, file_name)"
            " VALUES ('kommune', 'committed', 'x', 'x')"
        )
    with pytest.raises(RunSuperseded, match="diffed against run"):
        pipeline.commit(conn, p, pending["id"])


def test_an_unjudged_run_is_not_committed(conn, tmp_path):
    p = plan(conn)
    staged = pipeline.stage(conn, p, write(tmp_path, school("p1"), "a.xml"), lenient(p.customer))
    with pytest.raises(NotDecidable, match="not passed or opened"):
        pipeline.commit(conn, p, staged["id"])


def test_customers_do_not_see_each_other(conn, tmp_path):
    path = write(tmp_path, school("p1", "p2"))
    run_file(conn, "north", path)
    south = run_file(conn, "south", path)
    assert south["status"] == "committed"  # same file, other customer: not "unchanged"
    assert south["counts"]["person"]["create"] == 3


def test_customer_ids_are_checked(conn, tmp_path):
    with pytest.raises(InvalidCustomer, match="customer id"):
        pipeline.customer_config("../etc")
    result = run_once(conn, "../etc", write(tmp_path, school("p1")))
    assert result["refusal"]["outcome"] == "invalid-customer" and result["id"] is None


# -- delta files -----------------------------------------------------------------------------


def test_delta_file_follows_recstatus_and_cascades_deletes(conn, tmp_path):
    run_file(conn, "kommune", write(tmp_path, school("p1", "p2"), "full.xml"))
    delta = enterprise(
        person("p3", "Ny", "Elev", recstatus=1),
        person("p1", "Åse", "Ødegård", email="changed@skole.no", recstatus=2),
        person("p2", recstatus=3),
        membership("5A", member("p3", "01", recstatus=1)),
        kind="delta",
    )
    run = run_file(conn, "kommune", write(tmp_path, delta, "delta.xml"))
    assert run["counts"] == {
        "person": {"create": 1, "update": 1, "delete": 1},
        "group": {"create": 0, "update": 0, "delete": 0},
        # p2's membership goes with p2; the groups absent from the delta stay
        "membership": {"create": 1, "update": 0, "delete": 1},
    }
    snap = state.snapshot(conn.cursor(), "kommune")
    assert {row[0] for row in snap["person"]} == {"p1", "p3", "t1"}
    assert {(row[0], row[1]) for row in snap["membership"]} == {
        ("5A", "p1"),
        ("5A", "t1"),
        ("5A", "p3"),
    }


def test_delta_membership_naming_nobody_known_is_skipped(conn, tmp_path):
    run_file(conn, "kommune", write(tmp_path, school("p1"), "full.xml"))
    delta = enterprise(
        membership("5A", member("p2", "01", recstatus=1), member("ghost", "01", recstatus=1)),
        kind="delta",
    )
    run = run_file(conn, "kommune", write(tmp_path, delta, "delta.xml"))
    assert run["counts"]["membership"]["create"] == 1  # p2 exists in the current state
    assert run["skipped"]["membership"] == 1
    with conn.cursor() as cur:
        cur.execute("SELECT record_id FROM sis.problems WHERE run_id = %s", (run["id"],))
        assert cur.fetchall() == [("5A/ghost",)]


def test_an_export_older_than_the_current_state_is_refused(conn, tmp_path):
    def made(stamp, *pupils):
        props = (
            f"<properties><datasource>sas</datasource><type>full</type>"
            f"<datetime>{stamp}</datetime></properties>"
        )
        return enterprise(*(person(p) for p in pupils), properties=props)

    run_file(conn, "kommune", write(tmp_path, made("2025-08-15T05:00:00", "p1", "p2"), "a.xml"))
    before = state.snapshot(conn.cursor(), "kommune")
    older = run_file(conn, "kommune", write(tmp_path, made("2025-08-14T23:59:00", "p1"), "b.xml"))
    assert older["status"] == "rejected"
    assert "before the file of run 1 (2025-08-15T05:00:00)" in older["fatal"]["reason"]
    assert state.snapshot(conn.cursor(), "kommune") == before
    newer = run_file(conn, "kommune", write(tmp_path, made("2025-08-16T05:00:00", "p1"), "c.xml"))
    assert newer["status"] == "committed"
