"""A day's run reads only the records that changed: the change set must be exactly the one
the whole file gives, whatever the edits, and every file rule must hold as before."""

import logging
import random
from datetime import date

import pytest
from sisflow import diff, state, unchanged
from sisflow.ims import generate as gen
from sisflow.ims.digests import Digests, digest

from tests.factory import enterprise, group, lenient, member, membership, person, run_once, write
from tests.ims.test_fast_path import EDITS, LAYOUTS, _change_set

#: edits a day brings that the digests must see through, besides the reader's own EDITS
DAY_EDITS = {
    **EDITS,
    "a person leaves with their members": lambda ls, r: _leave(ls, r),
    "a person moved to the end": lambda ls, r: _move_to_end(ls, r, "<person>"),
    "a group moved to the end": lambda ls, r: _move_to_end(ls, r, "<group>"),
    "a membership moved to the end": lambda ls, r: _move_to_end(ls, r, "<membership>"),
    "a group's parent changed": lambda ls, r: _edit(
        ls, r, "<group>", lambda g: g.replace("<label>", "<label>x")
    ),
}


def _edit(lines, rng, prefix, change):
    candidates = [i for i, line in enumerate(lines) if line.startswith(prefix)]
    i = rng.choice(candidates)
    lines[i] = change(lines[i])


def _move_to_end(lines, rng, prefix):
    candidates = [i for i, line in enumerate(lines) if line.startswith(prefix)]
    end = next(i for i, line in enumerate(lines) if line.startswith("</enterprise>"))
    lines.insert(end - 1, lines.pop(rng.choice(candidates)))


def _leave(lines, rng):
    """A pupil leaves: their person record and every member naming them."""
    candidates = [i for i, line in enumerate(lines) if line.startswith("<person>")]
    i = rng.choice(candidates)
    sid = lines[i].split("<id>", 1)[1].split("</id>", 1)[0]
    del lines[i]
    for j, line in enumerate(lines):
        if line.startswith("<membership>"):
            lines[j] = "".join(
                part
                for part in _members(line)
                if f"<id>{sid}</id>" not in part or not part.startswith("<member>")
            )


def _members(line):
    head, *rest = line.split("<member>")
    return [head, *(f"<member>{m}" for m in rest[:-1]), *(f"<member>{rest[-1]}",)]


def _day(text, seed, n):
    rng = random.Random(seed)
    lines = text.split("\n")
    for name in rng.choices(sorted(DAY_EDITS), k=n):
        DAY_EDITS[name](lines, rng)
    return "\n".join(lines)


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    path = tmp_path_factory.mktemp("unchanged") / "tiny-2025.xml"
    gen.generate(path, seed=5, year=2025, size="tiny")
    return path.read_text(encoding="utf-8")


def _runs(conn, monkeypatch, customer, way, files):
    monkeypatch.setenv("SISFLOW_READER", way)
    found = []
    for path in files:
        run = run_once(conn, customer, path, config=lenient(customer))
        with conn.cursor() as cur:
            cur.execute("SELECT records, unchanged FROM sis.runs WHERE id = %s", (run["id"],))
            records, taken = cur.fetchone()
        found.append(
            (
                {"status": run["status"], "counts": run["counts"], "records": records}
                | _change_set(conn, run["id"]),
                taken or 0,
                run["id"],
            )
        )
    with conn.cursor() as cur:
        return found, state.snapshot(cur, customer)


@pytest.mark.parametrize("seed", range(16))
def test_three_days_read_by_digests_end_as_the_whole_files_do(
    conn, generated, tmp_path, monkeypatch, caplog, seed
):
    """Day 0 the generated file, then two days of random edits (each day's edits on the last
    day's file, so a record with a problem yesterday may be mended or not today): the run of
    every day has the same change set, problems, kept keys and record counts through the
    digests as through the straightforward reader, and the state ends the same."""
    caplog.set_level(logging.INFO, logger="sisflow.staging")
    day1 = _day(generated, seed, n=6)
    day2 = _day(day1, 1000 + seed, n=6)
    files = [write(tmp_path, text, f"day{i}.xml") for i, text in enumerate((generated, day1, day2))]
    fast, fast_state = _runs(conn, monkeypatch, f"digests-{seed}", "fast", files)
    whole, whole_state = _runs(conn, monkeypatch, f"whole-{seed}", "straightforward", files)
    assert [f for f, _, _ in fast] == [f for f, _, _ in whole]
    assert fast_state == whole_state
    assert all(taken == 0 for _, taken, _ in whole)
    assert fast[0][1] == 0  # nothing to take by on the first day
    day1_run = fast[1][2]
    if f"run {day1_run}: the file is read again" not in caplog.text:
        # most records are the same as the day before's: taken, not read
        assert fast[1][1] > sum(fast[1][0]["records"].values()) // 4


@pytest.mark.parametrize("seed", range(4))
def test_a_day_diffed_by_parallel_workers_ends_as_the_whole_file_does(
    conn, generated, tmp_path, monkeypatch, seed
):
    """A large customer's day has its change rows selected by Postgres's parallel workers
    into a table of the transaction, then copied. A tiny file made to go that way, with
    Postgres made to run every query it can in workers: each day's change set and the state
    at the end are the whole file's."""
    parallel = []

    def full_changes(*args, **kwargs):
        parallel.append(kwargs["parallel"])
        return full_changes_before(*args, **kwargs)

    full_changes_before = diff._full_changes
    monkeypatch.setattr(diff, "_full_changes", full_changes)
    monkeypatch.setattr(diff, "PARALLEL_ROWS", 0)
    with conn.cursor() as cur:
        cur.execute("SET debug_parallel_query = on")
    conn.commit()
    day1 = _day(generated, 2000 + seed, n=6)
    day2 = _day(day1, 3000 + seed, n=6)
    files = [write(tmp_path, text, f"day{i}.xml") for i, text in enumerate((generated, day1, day2))]
    fast, fast_state = _runs(conn, monkeypatch, f"parallel-{seed}", "fast", files)
    assert True in parallel  # the days took the parallel way
    whole, whole_state = _runs(conn, monkeypatch, f"serial-{seed}", "straightforward", files)
    assert [f for f, _, _ in fast] == [f for f, _, _ in whole]
    assert fast_state == whole_state


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_a_day_in_another_layout_ends_as_the_whole_file_does(
    conn, generated, tmp_path, monkeypatch, caplog, layout
):
    """The day after a plain file comes in another layout (a comment, line endings, a control
    character, a CDATA section, a file cut short...): the records taken by yesterday's digests
    are never looked at again, so whatever the scan must refuse or read otherwise has to be
    found in what is read. The run ends as the whole file's does, problems and all; a layout
    the scan reads (a record over several lines, two on a line) it reads on a day too,
    without lxml's parse of the whole file."""
    caplog.set_level(logging.INFO, logger="sisflow.staging")
    edit, scanned = LAYOUTS[layout]
    lines = generated.split("\n")
    edit(lines, random.Random(7))
    files = [write(tmp_path, generated, "day0.xml"), write(tmp_path, "\n".join(lines), "day1.xml")]
    fast, fast_state = _runs(conn, monkeypatch, "digests", "fast", files)
    assert ("read with lxml" not in caplog.text) == scanned
    whole, whole_state = _runs(conn, monkeypatch, "whole", "straightforward", files)
    assert [f for f, _, _ in fast] == [f for f, _, _ in whole]
    assert fast_state == whole_state


def test_a_day_reads_only_the_group_that_changed(conn, tmp_path):
    people = [person(f"p{i}", f"Elev{i}") for i in range(6)]
    day0 = enterprise(
        *people,
        group("g1"),
        group("g2"),
        membership("g1", *(member(f"p{i}") for i in range(3))),
        membership("g2", *(member(f"p{i}") for i in range(3, 6))),
    )
    day1 = day0.replace(f"{member('p5')}", "")
    run_once(conn, "dag", write(tmp_path, day0, "d0.xml"), config=lenient("dag"))
    run = run_once(conn, "dag", write(tmp_path, day1, "d1.xml"), config=lenient("dag"))
    # six persons, two groups and g1's <membership> taken; g2's read (the summary the
    # command prints and the DAG passes on says so)
    assert run["unchanged"] == 9
    assert run["counts"]["membership"] == {"create": 0, "update": 0, "delete": 1}
    assert run["counts"]["person"] == {"create": 0, "update": 0, "delete": 0}


def test_a_person_gone_but_still_named_is_found_as_the_whole_file_finds_it(conn, tmp_path, caplog):
    """The person's record is gone while an unchanged <membership> still names them: the
    file is read again whole, the member listed as a problem and taken out."""
    caplog.set_level(logging.INFO, logger="sisflow.staging")
    records = [
        person("p1"),
        person("p2"),
        group("g1"),
        membership("g1", member("p1"), member("p2")),
    ]
    run_once(conn, "gone", write(tmp_path, enterprise(*records), "d0.xml"), config=lenient("gone"))
    day1 = enterprise(*[r for r in records if "<id>p2</id>" not in r or "<membership" in r])
    run = run_once(conn, "gone", write(tmp_path, day1, "d1.xml"), config=lenient("gone"))
    assert "names one gone" in caplog.text
    assert run["counts"]["person"]["delete"] == 1
    assert run["counts"]["membership"]["delete"] == 1
    problems = _change_set(conn, run["id"])["problems"]
    assert [(p[0], p[1]) for p in problems] == [("membership", "g1/p2")]


WINDOW = {"delay_delete": [{"start": "2025-06-01", "end": "2025-08-31"}]}


@pytest.mark.parametrize("way", ["fast", "straightforward"])
def test_delay_delete_ends_the_same_through_digests(conn, tmp_path, monkeypatch, way):
    """Before, in and after a delay-delete window: the deletions held back in the window are
    released after it whichever way the files were read (the import database takes the
    deletion at once; the window holds back only the LMS's side)."""
    monkeypatch.setenv("SISFLOW_READER", way)
    config = lenient("window", **WINDOW)
    pupils = [person(f"p{i}", f"Elev{i}") for i in range(5)]

    def day(names, on, name):
        kept = [p for p in pupils if any(f"<id>{n}</id>" in p for n in names)]
        text = enterprise(*kept, group("g1"), membership("g1", *(member(n) for n in names)))
        return run_once(
            conn, "window", write(tmp_path, text, name), config=config, on=date.fromisoformat(on)
        )

    day(["p0", "p1", "p2", "p3", "p4"], "2025-05-20", "d0.xml")
    during = day(["p0", "p1", "p2"], "2025-06-15", "d1.xml")
    after = day(["p0", "p1", "p2"], "2025-09-01", "d2.xml")
    with conn.cursor() as cur:
        cur.execute("SELECT unchanged FROM sis.runs WHERE id = %s", (during["id"],))
        taken = cur.fetchone()[0]
        snapshot = state.snapshot(cur, "window")
    assert during["lms_mode"] == "delay-delete"
    assert during["counts"]["person"]["delete"] == 2
    assert after["counts"]["person"]["delete"] == 2  # released
    assert len(snapshot["person"]) == 3
    assert (taken or 0) == (4 if way == "fast" else 0)  # three persons and the group


def test_a_large_digest_table_is_kept_and_read_back_whole(conn, tmp_path, monkeypatch):
    """A table of many entries is stored in pieces and read back in slices (a slice made
    small here, so that it takes many): every entry comes back as it was, in its order."""
    monkeypatch.setattr(unchanged, "_SLICE", 100_000)
    run = run_once(conn, "big", write(tmp_path, enterprise(person("p0", "E")), "d.xml"))
    table = Digests()
    for i in range(120_000):
        kind = ("person", "group", "membership")[i % 3]
        table.add(
            digest(f"<{kind}>{i}</{kind}>".encode()), kind, f"id{i}", i % 7, f"up{i}" * (i % 2)
        )
    with conn.cursor() as cur:
        cur.execute("SELECT basis FROM sis.run_digests WHERE run_id = %s", (run["id"],))
        basis = cur.fetchone()[0]
        unchanged.store(cur, run["id"], "big", basis, table)
        back = unchanged.known(cur, "big", {"id": run["id"]}, basis)
    assert back == table
    assert [back.name(j) for j in (0, 1, 2 * 119_999, 2 * 119_999 + 1)] == [
        "id0",
        "",
        "id119999",
        "up119999",
    ]


def test_the_ids_taken_as_unchanged_are_listed_exactly(conn):
    """Listed in pieces, ids CSV would quote among them (a comma, a quote, a carriage return:
    never in an id read the fast way, but the list does not rely on it), each one back as
    it was."""
    ids = [f"id{i}" for i in range(25_000)]
    ids[3], ids[12_345], ids[24_999] = 'a,"b"', "c\rd", "  e  "
    pairs = [(("person", "group", "membership")[i % 3], x) for i, x in enumerate(ids)]
    with conn.cursor() as cur:
        assert unchanged.stage(cur, 999_999, iter(pairs)) == len(pairs)
        cur.execute(f"SELECT kind, id FROM {unchanged.table(999_999).as_string(cur)}")
        assert sorted(cur.fetchall()) == sorted(pairs)
        assert unchanged.stage(cur, 999_999, iter([])) == 0
        assert not unchanged.exists(cur, 999_999)
    conn.rollback()
