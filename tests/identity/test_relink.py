"""Identity changes through the pipeline, on a generated municipality's real export: a pupil
or a teaching group that the SIS re-keyed keeps its LMS object; what is not certain holds the
run until a person decides each pair; a refused pair goes on as a delete and a create; an
accepted one can be undone."""

from __future__ import annotations

import pytest
from sisflow import identity, pipeline, runs
from sisflow.errors import ContradictingDecision, NotDecidable
from sisflow.ims.generate import generate

from tests.factory import lenient, run_once

PUPIL, GROUP = "elev-2025-00000", "hage-b001-2025-1A-NOR"
HOLDER = pipeline.Holder("test", "a test")


@pytest.fixture
def export(tmp_path):
    path = tmp_path / "export-2025.xml"
    generate(path, seed=4, year=2025, size="tiny")
    return path


def rekeyed(path, old: str, new: str, *, name="rekeyed.xml", also=lambda text: text):
    """The export with ``old`` under the key ``new`` everywhere (its record and memberships)."""
    text = path.read_text(encoding="utf-8").replace(f"<id>{old}</id>", f"<id>{new}</id>")
    out = path.with_name(name)
    out.write_text(also(text), encoding="utf-8")
    return out


def person_record(text: str, key: str) -> str:
    return next(
        line for line in text.splitlines() if f"<id>{key}</id>" in line and "<person>" in line
    )


def account(conn, key):
    with conn.cursor() as cur:
        cur.execute(
            "SELECT id, trashed_at IS NOT NULL FROM lms.users WHERE site = 'kommune'"
            " AND sync_key = %s",
            (key,),
        )
        return cur.fetchone()


def participations(conn, user_id):
    with conn.cursor() as cur:
        cur.execute(
            "SELECT c.sync_key, p.role, p.synced FROM lms.participants p"
            " JOIN lms.courses c ON c.id = p.course_id WHERE p.user_id = %s ORDER BY 1, 2",
            (user_id,),
        )
        return cur.fetchall()


def memberships(conn, key):
    """The person's memberships in the current state, by group and role."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT group_id, roletype, status FROM sis.memberships WHERE customer = 'kommune'"
            " AND member_id = %s AND idtype = 1 ORDER BY 1, 2",
            (key,),
        )
        return cur.fetchall()


def first_import(conn, export):
    result = run_once(conn, "kommune", export, config=lenient())
    assert result["status"] == "committed"


def test_a_rekeyed_pupil_keeps_the_account_and_its_courses(conn, export):
    first_import(conn, export)
    before, _ = account(conn, PUPIL)
    courses = participations(conn, before)
    assert courses  # the pupil takes part in courses
    had = memberships(conn, PUPIL)

    result = run_once(conn, "kommune", rekeyed(export, PUPIL, "elev-ny-1"), config=lenient())

    assert result["status"] == "committed"
    assert account(conn, "elev-ny-1") == (before, False)  # the same account, not trashed
    assert account(conn, PUPIL) is None
    assert participations(conn, before) == courses
    # the filter saw one update, not a delete and a create
    assert result["counts"]["person"] == {"create": 0, "update": 1, "delete": 0}
    assert sum(result["counts"]["membership"].values()) == 0
    (pair,) = result["relinks"]["pairs"]
    assert (pair["old_key"], pair["new_key"], pair["decision"]) == (PUPIL, "elev-ny-1", "accepted")
    assert pair["decided_via"] == "rule" and pair["applied_run"] == result["id"]
    assert pair["evidence"] == ["username", "email+name+birth date"]
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM sis.persons WHERE sourcedid = %s", (PUPIL,))
        assert cur.fetchone() == (0,)
    assert memberships(conn, "elev-ny-1") == had
    # the next run of the same file changes nothing
    again = run_once(conn, "kommune", rekeyed(export, PUPIL, "elev-ny-1"), config=lenient())
    assert again["status"] == "unchanged"


def test_a_rekeyed_teaching_group_keeps_its_course(conn, export):
    first_import(conn, export)
    with conn.cursor() as cur:
        cur.execute("SELECT id FROM lms.courses WHERE sync_key = %s", (GROUP,))
        (course,) = cur.fetchone()
        cur.execute("SELECT count(*) FROM lms.participants WHERE course_id = %s", (course,))
        (members,) = cur.fetchone()

    result = run_once(conn, "kommune", rekeyed(export, GROUP, "gruppe-ny"), config=lenient())

    assert result["status"] == "committed"
    assert result["counts"]["group"] == {"create": 0, "update": 1, "delete": 0}
    with conn.cursor() as cur:
        cur.execute("SELECT id, state FROM lms.courses WHERE sync_key = 'gruppe-ny'")
        assert cur.fetchone() == (course, "active")
        cur.execute("SELECT count(*) FROM lms.courses WHERE site = 'kommune' AND state <> 'active'")
        assert cur.fetchone() == (0,)  # nothing archived
        cur.execute(
            "SELECT count(*), bool_and(synced) FROM lms.participants WHERE course_id = %s",
            (course,),
        )
        assert cur.fetchone() == (members, True)


def _not_certain(export):
    """The pupil re-keyed with a new username: only email, name and birth date agree."""
    return rekeyed(
        export,
        PUPIL,
        "elev-ny-1",
        also=lambda text: text.replace(">ragnande2500000<", ">ragnhild.a<"),
    )


def test_a_pair_that_is_not_certain_holds_the_run_until_a_person_refuses_it(conn, export):
    first_import(conn, export)
    before, _ = account(conn, PUPIL)

    held = run_once(conn, "kommune", _not_certain(export), config=lenient())

    assert held["status"] == "held"
    assert [t["kind"] for t in held["verdict"]["trips"]] == ["identity"]
    (pair,) = held["relinks"]["pairs"]
    assert (pair["certainty"], pair["decision"]) == ("low", None)
    assert account(conn, PUPIL) == (before, False)  # nothing applied
    with pytest.raises(NotDecidable, match="identity change"):  # not opened past the pairs
        pipeline.decide(conn, held["id"], "opened", by="kari", reason="ok", via="cli")

    result = pipeline.relink(conn, held["id"], lenient(), refuse=[pair["id"]], by="kari", via="cli")
    assert result["decision"]["decision"] == "opened"  # nothing else held it
    assert result["decision"]["decided_by"] == "kari"
    result = pipeline.resume(conn, held["id"])
    assert result["status"] == "committed"
    assert account(conn, PUPIL) == (before, True)  # deleted: in the trash
    new, trashed = account(conn, "elev-ny-1")
    assert new != before and not trashed  # and created


def test_an_ambiguous_pair_is_never_decided_by_the_rule(conn, export):
    first_import(conn, export)
    before, _ = account(conn, PUPIL)

    def twice(text):  # the SIS sends the pupil under two new keys
        record = person_record(text, "elev-ny-1")
        return text.replace(record, record + "\n" + record.replace("elev-ny-1", "elev-ny-2"))

    held = run_once(
        conn, "kommune", rekeyed(export, PUPIL, "elev-ny-1", also=twice), config=lenient()
    )

    assert held["status"] == "held"
    pairs = {p["new_key"]: p for p in held["relinks"]["pairs"]}
    assert set(pairs) == {"elev-ny-1", "elev-ny-2"}
    assert all(
        p["ambiguous"] and p["certainty"] == "high" and not p["decision"] for p in pairs.values()
    )
    with pytest.raises(NotDecidable, match="shares a key"):  # one account, one key
        pipeline.relink(
            conn,
            held["id"],
            lenient(),
            accept=[p["id"] for p in pairs.values()],
            by="kari",
            via="cli",
        )
    result = pipeline.relink(
        conn,
        held["id"],
        lenient(),
        accept=[pairs["elev-ny-1"]["id"]],
        refuse=[pairs["elev-ny-2"]["id"]],
        by="kari",
        via="cli",
    )
    with pytest.raises(ContradictingDecision):
        pipeline.relink(
            conn, held["id"], lenient(), refuse=[pairs["elev-ny-1"]["id"]], by="ola", via="cli"
        )
    result = pipeline.resume(conn, held["id"])
    assert result["status"] == "committed"
    assert account(conn, "elev-ny-1") == (before, False)
    assert account(conn, "elev-ny-2")[0] != before


def test_an_accepted_relink_is_undone_and_the_next_run_goes_on_as_delete_and_create(conn, export):
    first_import(conn, export)
    before, _ = account(conn, PUPIL)
    changed = rekeyed(export, PUPIL, "elev-ny-1")
    result = run_once(conn, "kommune", changed, config=lenient())
    (pair,) = result["relinks"]["pairs"]

    undone = identity.undo(conn, pair["id"], by="kari", reason="two pupils", holder=HOLDER)

    assert undone.undone_by == "kari"
    assert account(conn, PUPIL) == (before, False)  # the account has its old key back
    assert account(conn, "elev-ny-1") is None
    with pytest.raises(NotDecidable, match="undone already"):
        identity.undo(conn, pair["id"], by="kari", reason="again", holder=HOLDER)
    # the same file again: the pair is remembered as undone, so the old key leaves and the
    # new one arrives as two people
    again = run_once(conn, "kommune", changed, config=lenient())
    assert again["status"] == "committed"
    assert again["counts"]["person"] == {"create": 1, "update": 0, "delete": 1}
    assert again["relinks"]["pairs"][0]["decision"] == "refused"
    assert account(conn, PUPIL) == (before, True)
    assert account(conn, "elev-ny-1")[0] != before


def test_a_dry_run_shows_the_pairs_and_changes_nothing(conn, export):
    first_import(conn, export)
    result = run_once(conn, "kommune", _not_certain(export), config=lenient(), dry_run=True)
    assert result["status"] == "dry-run"
    assert result["relinks"]["counts"] == {"accepted": 0, "refused": 0, "waiting": 1}
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM sis.persons WHERE sourcedid = %s", (PUPIL,))
        assert cur.fetchone() == (1,)
    assert runs.latest(conn.cursor(), "kommune", ("held",)) is None
