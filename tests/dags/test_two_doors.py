"""One scenario, two doors: every scenario runs through the ``sisflow`` command (a real
process) and through real DAG runs (``dag.test``), each door with a database, state folder and
drop folder of its own, and both must end in the same state: the import database, the LMS
site, the deferred deletions, no lease left behind, and the same status emails in the outbox.

A held run is answered the way a person would: in the DAG door through Airflow itself (what the
Required Actions page and the REST API do), or with ``sisflow filter open`` which answers the
parked approval task through Airflow's real REST API; in the command-line door with
``sisflow filter open|reject``.
"""

from __future__ import annotations

import re

import pytest
from sisflow.ims.generate import generate

from tests.dags.doors import (
    OPEN,
    REJECT,
    STRICT,
    TWO_SECONDS,
    WINDOW,
    answer_in_airflow,
    note_of,
    notes_given,
    sisflow,
)

# -- the scenarios: (what the world is, what the operator does) -------------------------------


def normal_import(w, door):
    w.configure()
    w.export(2025)
    assert door.run("2025-09-01") == "success"


def unchanged_file(w, door):
    normal_import(w, door)
    assert door.run("2025-09-02") == "success"


def paused(w, door):
    w.configure("pause:\n  - {start: 2025-07-01, end: 2025-07-31}\n")
    w.export(2025)
    assert door.run("2025-07-15") == "success"


def delay_delete(w, door):
    w.configure(WINDOW)
    w.export(2025)
    assert door.run("2025-09-01") == "success"
    w.export(2026)  # the next school year, inside the window: 10th graders leave
    assert door.run("2026-08-10", rollover=True) == "success"


def after_the_window_unchanged_file(w, door):
    w.configure(WINDOW, default=STRICT)
    w.export(2025)
    assert door.run("2025-09-01") == "success"
    w.export(2026)
    assert door.run("2026-08-10", rollover=True) == "success"
    # the same file the day after the window: the deferred deletions are released into the
    # change set, so the filter judges them (and holds them: many deletions)
    assert door.run("2026-08-15", answer=("ui", "open")) == "success"


def half_applied_then_same_file(w, door):
    normal_import(w, door)
    w.export(2026)
    # the LMS goes down while memberships are applied: users, courses, ... are done
    assert door.run("2026-08-10", fail="apply:memberships:batch") == "failed"
    assert door.run("2026-08-11") == "success"  # the same file: the rest is applied first


def held(answer):
    def scenario(w, door):
        w.configure(default=STRICT)
        w.export(2025)
        assert door.run("2025-09-01") == "success"
        w.export(2026)
        assert door.run("2026-08-10", answer=answer) == "success"

    return scenario


def held_dry_run_then_real_run(w, door):
    w.configure(default=STRICT)
    w.export(2025)
    assert door.run("2025-09-01") == "success"
    w.export(2026)
    assert door.run("2026-08-10", dry_run=True) == "success"  # would be held: nobody asked
    assert door.run("2026-08-10", answer=("ui", "reject")) == "success"


def deadline_passed(w, door):
    w.configure(default=STRICT, deadline_hours=TWO_SECONDS)
    w.export(2025)
    assert door.run("2025-09-01") == "success"
    w.export(2026)
    assert door.run("2026-08-10", answer=("deadline", None)) == "success"


def rollover_too_early(w, door):
    normal_import(w, door)
    w.export(2026)
    assert door.run("2026-07-20", rollover=True) == "refused"


def rollover_on_the_date(w, door):
    normal_import(w, door)
    w.export(2026)
    assert door.run("2026-08-01", rollover=True) == "success"


def rejected_file(w, door):
    normal_import(w, door)
    w.export(2026).write_text("<enterprise><properties>", encoding="utf-8")  # cut off
    assert door.run("2026-08-10") == "refused"


def file_and_date_given(w, door):
    w.configure("pause:\n  - {start: 2026-07-01, end: 2026-07-31}\n")
    w.export(2026)  # the drop folder holds next year's export...
    # ...but the operator imports last year's file by hand, for a date outside the pause
    assert door.run("2025-09-01", file=w.by_hand(2025)) == "success"
    assert door.run("2026-07-10", file=w.by_hand(2025)) == "success"  # paused that day


def source_down(w, door):
    import json
    import os

    # an SFTP server that does not answer (nothing listens on port 1)
    import asyncssh

    key = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()
    os.environ["AIRFLOW_CONN_SIS_DOWN"] = json.dumps(
        {
            "conn_type": "sftp",
            "host": "127.0.0.1",
            "port": 1,
            "login": "sis",
            "password": "sis-down-secret",
            "extra": {"host_key": key},
        }
    )
    w.configure(source="{kind: sftp, conn_id: sis_down, path: /eksport}")
    assert door.run("2025-09-01") == "failed"


def landing_in_object_storage(w, door):
    w.landing_url = f"file://{w.root}/objects"  # an Airflow ObjectStoragePath, file:// here
    normal_import(w, door)
    assert (w.root / "objects" / "kommune" / "export-2025.xml").is_file()
    assert w.query("SELECT file_path FROM sis.runs") == [
        (f"file://{w.root}/objects/kommune/export-2025.xml",)
    ]
    assert door.run("2025-09-02") == "success"  # the same file again, read from there


def rollover_stopped_by_readiness(w, door):
    normal_import(w, door)
    w.first_grader_by_hand(2026)  # made by hand in June: no sync key
    w.export(2026)
    assert door.run("2026-08-01", rollover=True) == "refused"


def rollover_overridden(w, door):
    normal_import(w, door)
    w.first_grader_by_hand(2026)
    w.export(2026)
    assert door.run("2026-08-01", rollover=True, override=True) == "success"


def readiness_attach_then_rollover(w, door):
    normal_import(w, door)
    w.first_grader_by_hand(2026)
    # the SIS's export of the new school year, read before the rollover
    assert door.readiness(w.export(2026), "2026-06-01", attach=True) == "success"
    assert door.run("2026-08-01", rollover=True) == "success"


def next_years_export_before_the_rollover(w, door):
    normal_import(w, door)
    w.export(2026)  # the SIS sends next year's export already: its new groups wait...
    assert door.run("2026-08-05") == "success"
    assert door.run("2026-08-06", rollover=True) == "success"  # ...for the rollover


def maintenance_then_the_same_file(w, door):
    normal_import(w, door)
    w.export(2026)
    assert door.run("2026-08-10", rollover=True) == "success"
    assert door.maintenance(0) == "success"  # all history goes: it is older than now
    assert door.run("2026-08-11") == "success"  # still recognised as the same file


def killed_while_reading(w, door):
    normal_import(w, door)
    w.export(2026)
    # a run dies (kill -9) while it reads: its status stays "reading"
    killed = sisflow(
        w,
        "run",
        "kommune",
        "--on",
        "2026-08-10",
        extra_env={"SISFLOW_CRASH_POINT": "stage:reading"},
    )
    assert killed.returncode == -9
    assert door.run("2026-08-10") == "success"  # the next run reads the file again
    assert door.run("2026-08-11") == "success"  # and the customer goes on


def link_in_the_source_folder(w, door):
    w.configure()
    elsewhere = w.root / "elsewhere"  # another customer's drop folder, say
    elsewhere.mkdir()
    generate(elsewhere / "export-2025.xml", seed=4, year=2025, size="tiny")
    (w.root / "drop" / "export-2025.xml").symlink_to(elsewhere / "export-2025.xml")
    assert door.run("2025-09-01") == "refused"
    assert w.end_state()["landed"] == []


def _dated(w, year: int, stamp: str):
    """The SIS drops this school year's export, stamped with another properties/datetime."""
    path = w.export(year)
    path.write_text(
        path.read_text(encoding="utf-8").replace(
            f"<datetime>{year}-08-15T05:00:00</datetime>", f"<datetime>{stamp}</datetime>"
        ),
        encoding="utf-8",
    )


def older_export_accepted(w, door):
    normal_import(w, door)  # made 2025-08-15
    _dated(w, 2026, "2025-08-01T05:00:00")  # a file stamped before it
    assert door.run("2026-08-10") == "refused"  # rejected whole
    assert door.run("2026-08-10", accept_older=True) == "success"  # a person checked it


def export_from_the_future(w, door):
    w.configure()
    _dated(w, 2025, "2099-01-01T05:00:00")
    assert door.run("2025-09-01") == "success"  # a warning, and no floor:
    w.export(2026)  # made 2026-08-15, long "before" 2099
    assert door.run("2026-08-10") == "success"


def pupil_without_a_readable_id(w, door):
    """One pupil's id cannot be read, another's record has no name: neither account changes."""
    normal_import(w, door)
    path = w.newest()
    text = path.read_text(encoding="utf-8")
    pupils = [line for line in text.splitlines() if "<person>" in line and "elev-" in line]
    key, named = (p.split("<id>", 1)[1].split("</id>", 1)[0] for p in pupils[:2])
    nameless = pupils[1][: pupils[1].index("<name>")] + pupils[1][pupils[1].index("</name>") + 7 :]
    text = text.replace(pupils[0], pupils[0].replace(f"<id>{key}</id>", "<id></id>"))
    path.write_text(text.replace(pupils[1], nameless), encoding="utf-8")
    before = w.query("SELECT first_name, last_name FROM lms.users WHERE sync_key = %s", named)
    assert door.run("2025-09-02") == "success"
    untrashed = "SELECT count(*) FROM lms.users WHERE sync_key = %s AND trashed_at IS NULL"
    assert w.query(untrashed, key) == [(1,)]
    assert w.query("SELECT first_name, last_name FROM lms.users WHERE sync_key = %s", named) == (
        before
    )


def rollover_again_after_it_committed(w, door):
    """The rollover DAG triggered again with an empty form after its rollover committed: it
    goes into the year after the active one, which is too early; the customer is not held."""
    rollover_on_the_date(w, door)
    assert door.run("2026-08-20", rollover=True) == "refused"
    assert door.run("2026-08-21") == "success"


def rollover_with_nothing_to_fetch(w, door):
    """No export in the source folder: the rollover fails at the fetch, at once, and gives
    the customer back for the next import."""
    normal_import(w, door)
    for export in (w.root / "drop").glob("*.xml"):
        export.unlink()
    assert door.run("2026-08-10", rollover=True) == "failed"
    w.export(2025)
    assert door.run("2026-08-11") == "success"


def insecure_sftp_connection(w, door):
    import json
    import os

    os.environ["AIRFLOW_CONN_SIS_UNCHECKED"] = json.dumps(
        {
            "conn_type": "sftp",
            "host": "127.0.0.1",
            "port": 1,
            "login": "sis",
            "password": "sis-secret",
            "extra": {"allow_host_key_change": "true"},
        }
    )
    w.configure(source="{kind: sftp, conn_id: sis_unchecked, path: /eksport}")
    assert door.run("2025-09-01") == "refused"


PUPIL, LOGIN, COURSE = "elev-2025-00000", "ragnande2500000", "hage-b001-2025-1A-NOR"


def pupil_rekeyed(w, door):
    """The SIS gives a pupil a new key: the same account, courses and history go on."""
    normal_import(w, door)
    w.rekey(PUPIL, "elev-ny-1")
    assert door.run("2025-09-02") == "success"
    assert w.query("SELECT count(*) FROM lms.users WHERE sync_key = %s", PUPIL) == [(0,)]


def teaching_group_rekeyed(w, door):
    normal_import(w, door)
    w.rekey(COURSE, "gruppe-ny")
    assert door.run("2025-09-02") == "success"
    assert w.query("SELECT state FROM lms.courses WHERE sync_key = 'gruppe-ny'") == [("active",)]


def identity_change(how: str, choice: str):
    """A pupil re-keyed with a new login: only email, name and birth date agree, so the run
    waits for a person, who accepts or refuses the pair."""

    def scenario(w, door):
        normal_import(w, door)
        w.rekey(PUPIL, "elev-ny-1", username=(LOGIN, "ragnhild.a"))
        assert door.run("2025-09-02", answer=(how, choice)) == "success"
        held = w.email("held")
        assert f"{PUPIL} -> elev-ny-1 (low: email+name+birth date): waits for a person" in held
        accounts = (
            "SELECT sync_key, trashed_at IS NOT NULL FROM lms.users WHERE sync_key IN (%s, %s)"
        )
        kept = (
            [("elev-ny-1", False)] if choice == "accept" else [(PUPIL, True), ("elev-ny-1", False)]
        )
        assert sorted(w.query(accounts, PUPIL, "elev-ny-1")) == kept

    return scenario


def identity_change_accepted_then_undone(w, door):
    identity_change("relink", "accept")(w, door)
    (pair,) = w.query("SELECT id FROM sis.relinks")[0]
    out = sisflow(w, "relink", "kommune", "--undo", pair, "--by", "kari", "--reason", "two pupils")
    assert out.returncode == 0, out.stderr
    assert door.run("2025-09-03") == "success"  # the same file: now delete + create


SCHOOL, OTHER_SCHOOL = "hage-b001", "hage-u001"


def trashed_users(rows: dict) -> set[str]:
    return {u["sync_key"] for u in rows["users"] if u["trashed_at"] is not None}


def cut_off_opened_then_undone(w, door):
    """A person opened a cut-off export (most pupils of a school trashed): undo puts the LMS
    back exactly as it was, and the same file the next day is held again, not repeated."""
    w.configure(default=STRICT)
    w.export(2025)
    assert door.run("2025-09-01") == "success"
    before = w.lms_rows()
    gone = w.cut_off(SCHOOL)
    assert door.run("2025-09-02", answer=("ui", "open")) == "success"
    assert trashed_users(w.lms_rows()) == gone
    assert door.undo(w.last_applied(), "2025-09-03") == "success"
    assert w.lms_rows() == before
    assert door.run("2025-09-04", answer=("ui", "reject")) == "success"
    (verdict,) = w.query("SELECT verdict FROM sis.runs ORDER BY id DESC LIMIT 1")[0]
    redone = {t["entity"]: t["actual"] for t in verdict["trips"] if t["kind"] == "undone"}
    assert redone["person"] == len(gone)
    assert w.lms_rows() == before


def one_school_of_two_undone(w, door):
    normal_import(w, door)
    before = w.lms_rows()
    gone_here, gone_there = w.cut_off(SCHOOL), w.cut_off(OTHER_SCHOOL)
    assert door.run("2025-09-02") == "success"
    assert trashed_users(w.lms_rows()) == gone_here | gone_there
    assert door.undo(w.last_applied(), "2025-09-03", school=OTHER_SCHOOL) == "success"
    rows = w.lms_rows()
    assert trashed_users(rows) == gone_here
    ids = {u["id"] for u in before["users"] if u["sync_key"] in gone_there}
    assert [p for p in rows["participants"] if p["user_id"] in ids] == [
        p for p in before["participants"] if p["user_id"] in ids
    ]


def rollover_undone_inside_its_window(w, door):
    w.configure(WINDOW)
    w.export(2025)
    assert door.run("2025-09-01") == "success"
    before = w.lms_rows()
    w.export(2026)
    assert door.run("2026-08-10", rollover=True) == "success"
    assert door.undo(w.last_applied(), "2026-08-12") == "success"
    assert w.lms_rows() == before
    assert w.query("SELECT label FROM sis.school_years") == [("2025-2026",)]


def undo_with_conflicts(w, door):
    """After the bad run, a later run brought some pupils back and a person edited one
    account by hand: undo leaves those alone and lists them."""
    normal_import(w, door)
    before = w.lms_rows()
    gone = w.cut_off(SCHOOL)
    assert door.run("2025-09-02") == "success"
    bad = w.last_applied()
    w.export(2025)
    still_gone = w.cut_off(SCHOOL, keep_every=5)  # a later export: some pupils come back
    assert door.run("2025-09-03") == "success"
    edited = sorted(still_gone)[0]
    w.query(
        "UPDATE lms.users SET first_name = 'Endret', updated_at = now() WHERE sync_key = %s"
        " RETURNING id",
        edited,
    )
    assert door.undo(bad, "2025-09-04") == "success"
    rows = w.lms_rows()
    assert trashed_users(rows) == {edited}
    conflicts = "SELECT record_key, detail FROM sis.apply_outcomes WHERE outcome = 'conflict'"
    left = dict(w.query(conflicts))
    assert left[edited] == "user: changed by hand since"
    later = {k for k, detail in left.items() if detail.startswith("user: changed since by run")}
    assert later == gone - still_gone
    assert {u["sync_key"] for u in rows["users"]} == {u["sync_key"] for u in before["users"]}


def undo_of_an_undo(w, door):
    normal_import(w, door)
    w.cut_off(SCHOOL)
    assert door.run("2025-09-02") == "success"
    after = w.lms_rows()
    assert door.undo(w.last_applied(), "2025-09-03") == "success"
    (undo_run,) = w.query("SELECT max(id) FROM sis.runs WHERE undo_of IS NOT NULL")[0]
    assert door.undo(undo_run, "2025-09-03") == "success"
    assert w.lms_rows() == after


def undo_refused(w, door):
    """A dry run has nothing to undo: one line, nothing changed."""
    normal_import(w, door)
    w.cut_off(SCHOOL)
    assert door.run("2025-09-02", dry_run=True) == "success"
    (dry,) = w.query("SELECT max(id) FROM sis.runs")[0]
    assert door.undo(dry, "2025-09-02") == "refused"


def drift_found_then_repaired(w, door):
    """A person trashed a synced pupil by hand: the drift check emails it; once repaired, the
    next run (the same file) makes the account right again."""
    normal_import(w, door)
    w.query("UPDATE lms.users SET trashed_at = now() WHERE sync_key = %s RETURNING id", PUPIL)
    assert door.drift() == "success"
    assert f"account {PUPIL}: in the trash" in w.email("drift")
    out = sisflow(w, "drift", "kommune", "--repair", "--by", "kari")
    assert out.returncode == 0, out.stderr
    assert door.run("2025-09-02") == "success"
    untrashed = "SELECT trashed_at IS NULL FROM lms.users WHERE sync_key = %s"
    assert w.query(untrashed, PUPIL) == [(True,)]


def the_daily_digest(w, door):
    """The operations team's morning email: a customer whose last file was rejected needs a
    person, and says so first."""
    rejected_file(w, door)
    assert door.digest() == "success"
    text = w.email("digest")
    assert "1 of 1 customers need a person" in text
    assert "- kommune (kommune, other): the last run broke down" in text


SCENARIOS = {
    "normal import": (normal_import, ["applied"]),
    "unchanged file": (unchanged_file, ["applied", "nothing-changed"]),
    "paused": (paused, ["paused"]),
    "delay delete": (delay_delete, ["applied", "delay-delete"]),
    "after the window, unchanged file": (
        after_the_window_unchanged_file,
        ["applied", "delay-delete", "held", "opened"],
    ),
    "half-applied, then the same file": (
        half_applied_then_same_file,
        ["applied", "failed", "finished-pending"],
    ),
    "held, opened in Airflow": (held(("ui", "open")), ["applied", "held", "opened"]),
    "held, opened with the command": (held(("cli", "open")), ["applied", "held", "opened"]),
    "held, rejected": (held(("ui", "reject")), ["applied", "held", "rejected"]),
    "held dry run, then a real run": (
        held_dry_run_then_real_run,
        ["applied", "dry-run", "held", "rejected"],
    ),
    "deadline passed": (deadline_passed, ["applied", "held", "expired"]),
    "rollover too early": (rollover_too_early, ["applied", "rollover-too-early"]),
    "rollover on the date": (rollover_on_the_date, ["applied", "applied"]),
    "file and date given": (file_and_date_given, ["applied", "paused"]),
    "rejected file": (rejected_file, ["applied", "rejected-file"]),
    "source down": (source_down, ["failed"]),
    "landing zone in object storage": (landing_in_object_storage, ["applied", "nothing-changed"]),
    "rollover stopped by readiness": (rollover_stopped_by_readiness, ["applied", "not-ready"]),
    "rollover, readiness overridden": (rollover_overridden, ["applied", "applied"]),
    "readiness, attach, rollover": (
        readiness_attach_then_rollover,
        ["applied", "readiness-blocking", "applied"],
    ),
    "next year's export before the rollover": (
        next_years_export_before_the_rollover,
        ["applied", "applied", "applied"],
    ),
    # the outbox is pruned by the maintenance; a mailbox is not
    "maintenance, then the same file": (
        maintenance_then_the_same_file,
        ["applied", "applied", "nothing-changed"],
    ),
    "killed while reading, then the same file": (
        killed_while_reading,
        ["applied", "applied", "nothing-changed"],
    ),
    "a link in the source folder": (link_in_the_source_folder, ["refused"]),
    "an older export, accepted by a person": (
        older_export_accepted,
        ["applied", "rejected-file", "applied"],
    ),
    "an export from the future": (export_from_the_future, ["applied", "applied"]),
    "a pupil without a readable id": (pupil_without_a_readable_id, ["applied", "applied"]),
    "an SFTP connection that skips the host key check": (insecure_sftp_connection, ["refused"]),
    "the rollover triggered again after it committed": (
        rollover_again_after_it_committed,
        ["applied", "applied", "rollover-too-early", "nothing-changed"],
    ),
    "a rollover with nothing to fetch": (
        rollover_with_nothing_to_fetch,
        ["applied", "failed", "nothing-changed"],
    ),
    "a pupil re-keyed by the SIS": (pupil_rekeyed, ["applied", "applied"]),
    "a teaching group re-keyed by the SIS": (teaching_group_rekeyed, ["applied", "applied"]),
    "an identity change accepted in the approval": (
        identity_change("relink", "accept"),
        ["applied", "held", "opened"],
    ),
    "an identity change refused in the approval": (
        identity_change("relink", "refuse"),
        ["applied", "held", "opened"],
    ),
    "an identity change accepted with the command": (
        identity_change("relink-cli", "accept"),
        ["applied", "held", "opened"],
    ),
    "an identity change accepted, then undone": (
        identity_change_accepted_then_undone,
        ["applied", "held", "opened", "applied"],
    ),
    "a cut-off export opened, then undone": (
        cut_off_opened_then_undone,
        ["applied", "held", "opened", "undone", "held", "rejected"],
    ),
    "one school of two undone": (one_school_of_two_undone, ["applied", "applied", "undone"]),
    "a rollover undone inside its window": (
        rollover_undone_inside_its_window,
        ["applied", "delay-delete", "undone"],
    ),
    "an undo with conflicts": (
        undo_with_conflicts,
        ["applied", "applied", "applied", "undone-with-conflicts"],
    ),
    "an undo undone": (undo_of_an_undo, ["applied", "applied", "undone", "undone"]),
    "an undo refused": (undo_refused, ["applied", "dry-run"]),
    "drift found, then repaired": (drift_found_then_repaired, ["applied", "drift", "applied"]),
    "the daily digest": (the_daily_digest, ["applied", "rejected-file", "digest"]),
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_one_scenario_two_doors_the_same_end_state(worlds, name):
    scenario, emails = SCENARIOS[name]
    ends = {}
    for door in worlds:
        scenario(door.world, door)
        ends[door.name] = door.world.end_state()
        assert ends[door.name]["outbox"] == emails, door.name
        assert ends[door.name]["leases"] == 0, door.name
    assert ends["cli"] == ends["dag"]
    # every DAG run says how it ended in its note, in the words the command prints (a command
    # that broke down printed nothing: its traceback went to stderr)
    cli, dag = worlds
    assert all(dag.world.notes), dag.world.notes
    for said, noted in zip(cli.world.notes_here(), dag.world.notes_here(), strict=True):
        assert said == noted or (said is None and ": FAILED at " in noted), (said, noted)


def test_the_held_email_goes_out_while_the_run_waits(worlds):
    _, dag = worlds
    w = dag.world
    w.configure(default=STRICT)
    w.export(2025)
    dag.run("2025-09-01")
    w.export(2026)
    while_waiting, noted = [], []
    open_it = answer_in_airflow(OPEN, "checked with the school")

    def look_then_answer(key):
        while_waiting.extend(w.outbox())
        noted.extend(notes_given("sisflow_import__kommune"))
        open_it(key)

    assert dag.run("2026-08-10", answer=look_then_answer) == "success"
    assert while_waiting == ["applied", "held"]
    run_id = w.query("SELECT max(id) FROM sis.runs")[0][0]
    # while it waits, the DAG run's note says until when, and what the filter caught
    assert re.fullmatch(
        rf"run {run_id}: held until \d+ \w{{3}} \d\d:\d\d \(Oslo\): person delete \d+ over 1",
        noted[-1],
    ), noted
    opened = rf"run {run_id}: applied after the filter was opened: [\d,]+ changes"
    assert re.fullmatch(opened, w.notes[-1]), w.notes
    text = w.email("held")
    assert "approval task" in text and f"sisflow filter open {run_id}" in text


def test_without_a_date_a_dag_run_reads_its_logical_date_in_the_customers_time_zone(worlds):
    from datetime import UTC, datetime

    cli, dag = worlds
    for door in worlds:
        door.world.configure("pause:\n  - {start: 2025-07-01, end: 2025-07-31}\n")
        door.world.export(2025)
    # 22:30 UTC on 30 June is 00:30 on 1 July in Oslo: the first day of the pause
    assert dag.run(None, logical_date=datetime(2025, 6, 30, 22, 30, tzinfo=UTC)) == "success"
    assert cli.run("2025-07-01") == "success"
    assert dag.world.end_state() == cli.world.end_state()
    assert dag.world.outbox() == ["paused"]
    assert "paused until 2025-07-31" in dag.world.email("paused")


def test_a_refused_rollover_says_why_and_what_to_do_through_both_doors(worlds):
    for door in worlds:
        rollover_too_early(door.world, door)
        text = door.world.email("rollover-too-early")
        assert "rollover into 2026-2027 is allowed from 2026-08-01, not on 2026-07-20" in text, (
            door.name
        )
        assert "Trigger the rollover again on or after the earliest rollover date" in text
        assert "rollover: REFUSED" in text.splitlines()[0]  # marked as the rollover's email
        assert "Next scheduled run" not in text  # the import's schedule is not the rollover's


def test_a_source_that_is_down_says_what_to_check_through_both_doors(worlds):
    for door in worlds:
        source_down(door.world, door)
        text = door.world.email("failed")
        assert (
            "FAILED at fetch: SourceError: cannot open the SFTP connection 'sis_down' to "
            "127.0.0.1:1" in text
        ), door.name
        assert "check that the SIS made it and that the source and its Airflow connection" in text
        assert "sis-down-secret" not in text


def test_a_rejected_file_names_the_line_through_both_doors(worlds):
    for door in worlds:
        rejected_file(door.world, door)
        text = door.world.email("rejected-file")
        assert "export-2026.xml was rejected whole: line 1:" in text, door.name
        assert "Ask the SIS supplier for a new export" in text


# -- contradicting decisions are refused, loudly, through either door ---------------------------


def _held_2026(door):
    w = door.world
    w.configure(default=STRICT)
    w.export(2025)
    assert door.run("2025-09-01") == "success"
    w.export(2026)
    return w


def trashed(w):
    return w.query("SELECT count(*) FROM lms.users WHERE trashed_at IS NOT NULL")[0][0]


def test_opened_with_the_command_then_rejected_in_airflow_is_refused(worlds):
    _, dag = worlds
    w = _held_2026(dag)
    told = []

    def command_opens_then_airflow_rejects(key):
        # no Airflow API configured for the command: the decision is stored, Airflow still waits
        out = sisflow(w, "filter", "open", w.held_run(), "--by", "kari", "--reason", "ok")
        told.append(out)
        answer_in_airflow(REJECT, "wrong school year", user="ola")(key)

    assert dag.run("2026-08-10", answer=command_opens_then_airflow_rejects) == "refused"
    (out,) = told
    assert (
        out.returncode == 1
        and "still waits" in out.stderr
        and "SISFLOW_AIRFLOW_API_URL" in out.stderr
    )
    assert w.outbox() == ["applied", "held", "contradicting-decision"]
    assert w.query("SELECT decision, decided_by, via FROM sis.filter_decisions") == [
        ("opened", "kari", "cli")
    ]
    assert trashed(w) == 0  # nothing applied
    text = w.email("contradicting-decision")
    assert "already opened by kari via cli" in text and "'rejected' by ola via airflow" in text


def test_the_command_refuses_a_decision_that_contradicts_the_stored_one(worlds):
    cli, _ = worlds
    w = _held_2026(cli)
    assert cli.run("2026-08-10") == "success"  # held
    run_id = w.held_run()
    first = sisflow(w, "filter", "reject", run_id, "--by", "kari", "--reason", "wrong year")
    assert first.returncode == 0
    second = sisflow(w, "filter", "open", run_id, "--by", "ola", "--reason", "looks fine")
    assert second.returncode == 3
    assert f"refused: run {run_id} was already rejected by kari via cli" in second.stderr
    assert trashed(w) == 0
    assert w.outbox() == ["applied", "held", "rejected"]


def test_the_form_reads_no_file_outside_the_customers_own_folders(worlds):
    from sisflow.ims.generate import generate

    _, dag = worlds
    w = dag.world
    w.configure()
    w.export(2025)
    other = w.root / "another-customer" / "export.xml"
    other.parent.mkdir()
    generate(other, seed=9, year=2025, size="tiny")
    for file in ("/etc/passwd", other, "../../another-customer/export.xml"):
        assert dag.run("2025-09-01", file=file) == "refused"
    assert w.outbox() == ["refused"] * 3
    text = w.email("refused")
    assert "is outside kommune's source folder and landing zone: refused, nothing read" in text
    assert not list((w.root / "home" / "landing" / "kommune").glob("*"))  # nothing copied
    assert w.query("SELECT count(*) FROM sis.runs") == [(0,)]
    # a name in the landing zone is fine
    assert dag.run("2025-09-01", file=w.by_hand(2025).name) == "success"
    assert dag.run("2025-09-02", file=w.newest()) == "success"  # and one in the source folder


# -- readiness and the rollover -----------------------------------------------------------------


def _accounts_of(w, pupil) -> list[tuple]:
    return w.query(
        "SELECT username, sync_key FROM lms.users WHERE first_name = %s"
        " AND last_name = %s AND birth_date = %s ORDER BY id",
        pupil["given"],
        pupil["family"],
        pupil["bday"],
    )


def test_a_first_grader_whose_account_got_its_sync_key_gets_no_second_one(worlds):
    for door in worlds:
        w = door.world
        normal_import(w, door)
        pupil = w.first_grader_by_hand(2026)
        assert door.readiness(w.export(2026), "2026-06-01", attach=True) == "success"
        text = w.email("readiness-blocking")
        assert "readiness for 2026-2027: 1 blocking finding\n" in text
        assert f"| {pupil['id']} | medium | name+birth date" in text
        assert pupil["family"] not in text  # ids in the email, names only in asked-for CSVs
        assert door.run("2026-08-01", rollover=True) == "success"
        # one account: the one made by hand, now with its key and the SIS's username
        assert _accounts_of(w, pupil) == [(pupil["username"], pupil["id"])], door.name
        assert w.query("SELECT label FROM sis.school_years ORDER BY set_at") == [
            ("2025-2026",),
            ("2026-2027",),
        ]
        text = w.email("applied")
        assert "School year: 2026-2027" in text and "now the active one" in text
        assert "Readiness for 2026-2027 (against the file of run" in text


def test_a_stopped_rollover_switches_nothing_and_says_why(worlds):
    for door in worlds:
        w = door.world
        rollover_stopped_by_readiness(w, door)
        text = w.email("not-ready")
        assert "rollover: STOPPED by blocking readiness findings" in text, door.name
        assert "duplicates in waiting: attach the sync key) 1" in text
        assert "sisflow readiness attach CUSTOMER --from-csv" in text
        assert "School year: 2026-2027 (2026-08-01 to 2027-07-31), not switched" in text
        assert w.query("SELECT label FROM sis.school_years") == [("2025-2026",)]
        assert w.query("SELECT count(*) FROM lms.users WHERE sync_key LIKE 'elev-2026-%%'") == [
            (0,)
        ]


def test_an_attach_not_approved_in_airflow_attaches_nothing(worlds):
    _, dag = worlds
    w = dag.world
    normal_import(w, dag)
    w.first_grader_by_hand(2026)
    assert dag.readiness(w.export(2026), "2026-06-01", attach=False) == "success"
    assert w.query("SELECT count(*) FROM sis.sync_key_attachments") == [(0,)]
    assert w.query(
        "SELECT count(*) FROM lms.users WHERE sync_key IS NULL AND profile = 'student'"
    ) == [(1,)]


def test_a_rollover_for_a_later_day_waits_deferred_and_holds_nothing(worlds, caplog):
    """The form's effective date is tomorrow: ``begin`` defers until the day starts in Oslo
    (Airflow's DateTimeTrigger, run in line by dag.test), and only then takes the customer. The
    clock is set to three seconds before midnight so the test waits that long."""
    import logging
    from datetime import datetime, time, timedelta
    from zoneinfo import ZoneInfo

    import time_machine

    _, dag = worlds
    w = dag.world
    normal_import(w, dag)
    w.export(2026)
    oslo = ZoneInfo("Europe/Oslo")
    tomorrow = datetime.now(oslo).date() + timedelta(days=1)
    midnight = datetime.combine(tomorrow, time(0), tzinfo=oslo)
    caplog.set_level(logging.INFO, logger="airflow.sdk.definitions.dag")
    with time_machine.travel(midnight - timedelta(seconds=3), tick=True):
        assert dag.run(tomorrow.isoformat(), rollover=True) == "success"
        finished = datetime.now(oslo)
    assert finished >= midnight  # it did not go on before its day
    assert "running trigger in line" in caplog.text  # begin deferred: a trigger waited
    waited = f"waits until {tomorrow.day} {tomorrow:%b} 00:00 (Oslo): the rollover into 2026-2027"
    assert waited in notes_given("sisflow_rollover__kommune")
    assert w.outbox() == ["applied", "applied"]
    assert w.query("SELECT label FROM sis.school_years ORDER BY set_at") == [
        ("2025-2026",),
        ("2026-2027",),
    ]
    assert w.query("SELECT plan->>'day' FROM sis.runs ORDER BY id DESC LIMIT 1") == [
        (tomorrow.isoformat(),)
    ]


def test_a_rollover_for_a_day_before_the_earliest_date_is_refused_at_once(worlds):
    from tests.dags.conftest import dagbag

    _, dag = worlds
    w = dag.world
    normal_import(w, dag)
    w.export(2026)
    # triggered months ahead, for 20 July 2027 into 2027-2028: refused now, not after waiting
    run = (
        dagbag()
        .dags["sisflow_rollover__kommune"]
        .test(
            run_conf={"effective_date": "2027-07-20", "school_year": "2027-2028", "dry_run": False}
        )
    )
    # refused on purpose: green, its begin skipped, and the run's note says why
    assert run.state == "success"
    assert run.get_task_instance("begin").state == "skipped"
    assert note_of(run) == (
        "REFUSED: rollover into 2027-2028 is allowed from 2027-08-01, not on 2027-07-20"
    )
    assert w.outbox() == ["applied", "rollover-too-early"]
    assert "rollover into 2027-2028 is allowed from 2027-08-01, not on 2027-07-20" in w.email(
        "rollover-too-early"
    )


def test_after_a_rollover_the_next_one_is_allowed_from_the_date_the_email_gives(worlds):
    """One rule for the earliest rollover: what the status email says after a rollover is
    what the next rollover is held to, through both doors."""
    for door in worlds:
        rollover_again_after_it_committed(door.world, door)
        refused = door.world.email("rollover-too-early")
        assert "rollover into 2027-2028 is allowed from 2027-08-01, not on 2026-08-20" in (
            refused
        ), door.name
        assert "rollover allowed from 2027-08-01" in door.world.email("nothing-changed")


def test_a_rollover_with_nothing_to_fetch_is_not_tried_again(worlds):
    """The DAG's retries are for a source that is down for a moment; no export is not one of
    those: the fetch fails on its first try, and the run gives the customer back."""
    from tests.dags.conftest import dagbag

    _, dag = worlds
    w = dag.world
    normal_import(w, dag)
    for export in (w.root / "drop").glob("*.xml"):
        export.unlink()
    rollover = dagbag().dags["sisflow_rollover__kommune"]
    assert rollover.get_task("fetch").retries == 2  # as deployed: not zeroed as the door does
    run = rollover.test(run_conf={"effective_date": "2026-08-10", "dry_run": False})
    assert run.state == "failed"
    fetch = run.get_task_instance("fetch")
    assert (fetch.state, fetch.try_number) == ("failed", 1)
    assert w.outbox() == ["applied", "failed"]
    assert "FAILED at fetch: NothingToFetch: no file matching" in w.email("failed")
    assert w.query("SELECT count(*) FROM sis.customer_leases") == [(0,)]
