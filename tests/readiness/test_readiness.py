"""Readiness, attaching sync keys and the rollover, on a generated municipality across two
school years and a seeded LMS site: the findings exactly, then the rollover object by object."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from psycopg2.extras import RealDictCursor
from sisflow import school_year
from sisflow.ims.generate import Municipality, build_year, write_year
from sisflow.lms.postgres_site import PostgresSite
from sisflow.readiness import readiness
from sisflow.readiness.attach import AttachError, attach, listing, read_csv, undo

from tests.factory import lenient, run_once

SEED, PUPILS = 4, 70
ON = date(2026, 6, 1)  # the readiness check, before the school year ends


def _export(folder, year: int, *, twice: dict | None = None, namesake: dict | None = None):
    """The generated municipality's export of ``year``; ``twice``: a person sent a second
    time under another sync key (an SIS that made a new record for a pupil); ``namesake``: a
    second pupil with the same name and birth date (another login)."""
    path = folder / f"export-{year}.xml"
    with open(path, "w", encoding="utf-8") as out:
        write_year(Municipality(SEED, PUPILS), year, out)
    text = path.read_text(encoding="utf-8")
    for person, new_id, new_login in (
        (twice, "elev-dup", None),
        (namesake, "elev-namesake", "navne.bror"),
    ):
        if person is None:
            continue
        record = next(
            line
            for line in text.splitlines()
            if f"<id>{person['id']}</id>" in line and line.startswith("<person>")
        )
        copy = record.replace(f"<id>{person['id']}</id>", f"<id>{new_id}</id>", 1)
        if new_login:
            copy = copy.replace(person["username"], new_login)
        text = text.replace(record, record + "\n" + copy, 1)
    path.write_text(text, encoding="utf-8")
    return path


def _manual(
    cur,
    username,
    given,
    family,
    birth,
    *,
    email=None,
    profile="student",
    sync_key=None,
    last_login=None,
) -> int:
    cur.execute(
        "INSERT INTO lms.users (site, sync_key, username, first_name, last_name,"
        " email, birth_date, profile, last_login) VALUES"
        " ('kommune', %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
        (sync_key, username, given, family, email, birth, profile, last_login),
    )
    return cur.fetchone()[0]


def _months_before(months: int) -> datetime:
    return datetime(ON.year, ON.month, ON.day, 12) - timedelta(days=31 * months)


@pytest.fixture
def site(conn, tmp_path):
    """The municipality imported for 2025-2026, and an LMS site with what people made by hand:
    first-graders of August 2026 (one matched by name and birth date, one also by username),
    an account that matches two pupils, a second account for a pupil who has one, an
    administrator with a sync key, and accounts that have not logged in for a year."""
    config = lenient(inactive_months=12)
    first = _export(tmp_path, 2025)
    now = build_year(Municipality(SEED, PUPILS), 2025)["persons"]
    nxt = build_year(Municipality(SEED, PUPILS), 2026)["persons"]
    starters = [p for p in nxt if p["id"].startswith("elev-2026-")]
    second = _export(tmp_path, 2026, twice=starters[4], namesake=starters[5])
    result = run_once(conn, "kommune", first, on=date(2025, 9, 1), config=config)
    assert result["status"] == "committed"
    pupil, idle, recent = [p for p in now if p["role"] == "student"][:3]
    a, b, c, d = starters[:4]
    with conn, conn.cursor() as cur:
        ids = {
            "by_name": _manual(cur, "manuell.a", a["given"], a["family"], a["bday"]),
            "by_two": _manual(cur, b["username"], b["given"], b["family"], b["bday"]),
            # c's email, d's name and birth date: two people, never guessed
            "two_people": _manual(
                cur, "manuell.cd", d["given"], d["family"], d["bday"], email=c["email"]
            ),
            "twice": _manual(cur, "manuell.p", pupil["given"], pupil["family"], pupil["bday"]),
            "admin_synced": _manual(
                cur,
                "rektor",
                "Rektor",
                "Rask",
                None,
                profile="admin",
                sync_key="admin-synced",
                last_login=ON,
            ),
            "admin_idle": _manual(
                cur,
                "admin.gammel",
                "Admin",
                "Gammel",
                None,
                profile="admin",
                last_login=_months_before(14),
            ),
        }
        for key, when in ((idle["id"], _months_before(13)), (recent["id"], _months_before(11))):
            cur.execute(
                "UPDATE lms.users SET last_login = %s WHERE site = 'kommune' AND sync_key = %s",
                (when, key),
            )
        cur.execute(
            "SELECT sync_key, id FROM lms.users WHERE site = 'kommune' AND sync_key IN (%s, %s)",
            (pupil["id"], idle["id"]),
        )
        synced = dict(cur.fetchall())
    return {
        "conn": conn,
        "config": config,
        "ids": ids,
        "files": (first, second),
        "starters": starters,
        "pupil": pupil,
        "idle": idle,
        "synced": synced,
        "now": now,
        "next": nxt,
    }


def _email(path):
    import email
    import email.policy
    from pathlib import Path

    return email.message_from_bytes(Path(path).read_bytes(), policy=email.policy.default)


def _text(path) -> str:
    msg = _email(path)
    return f"Subject: {msg['Subject']}\n" + msg.get_body(("plain",)).get_content()


def rows(findings, name, *columns):
    table = findings.table(name)
    return {
        tuple(None if str(v) in ("<NA>", "nan") else v for v in row)
        for row in table[list(columns)].itertuples(index=False)
    }


def test_the_findings_on_a_seeded_site_are_exactly_right(site):
    ids, (a, b, c, d, e) = site["ids"], site["starters"][:5]
    findings = readiness(site["conn"], site["config"], file=str(site["files"][1]), on=ON)
    assert findings.school_year.label == "2026-2027"
    assert rows(findings, "duplicates", "account_id", "sync_key", "certainty", "evidence") == {
        (ids["by_name"], a["id"], "medium", "name+birth date"),
        (ids["by_two"], b["id"], "high", "username + name+birth date"),
    }
    assert rows(findings, "ambiguous", "account_id", "sync_key", "evidence") == {
        (ids["two_people"], c["id"], "email"),
        (ids["two_people"], d["id"], "name+birth date"),
    }
    assert rows(findings, "already_twice", "account_id", "sync_key", "synced_account_id") == {
        (ids["twice"], site["pupil"]["id"], site["synced"][site["pupil"]["id"]])
    }
    assert rows(findings, "created_twice", "sync_keys", "evidence") == {
        (f"{e['id']} elev-dup", "username + name+birth date")
    }
    # the same name and birth date with another login: often two children, not blocking
    assert rows(findings, "maybe_twice", "sync_keys", "evidence") == {
        (f"{site['starters'][5]['id']} elev-namesake", "name+birth date")
    }
    assert rows(findings, "admins_with_sync_key", "account_id", "sync_key") == {
        (ids["admin_synced"], "admin-synced")
    }
    assert rows(findings, "inactive", "account_id", "manual") == {
        (ids["admin_idle"], True),
        (site["synced"][site["idle"]["id"]], False),
    }
    assert rows(findings, "terms", "sync_key", "at_rollover") == {
        ("2025-08-15..2026-06-20", "archived")
    }
    assert findings.table("missing_terms").empty
    assert findings.blocking == {
        "duplicates": 2,
        "ambiguous": 2,
        "created_twice": 1,
        "admins_with_sync_key": 1,
    }


def test_a_name_matches_however_it_is_cased_and_spaced_and_a_missing_one_matches_nothing(site):
    f = site["starters"][6]
    with site["conn"], site["conn"].cursor() as cur:
        shouted = _manual(
            cur,
            "manuell.f",
            f"  {f['given'].upper()} ",
            f["family"].upper().replace(" ", "   "),
            f["bday"],
        )
        # a manual account with no first name: its name and birth date form no key
        _manual(cur, "uten.fornavn", None, f["family"], f["bday"])
    findings = readiness(site["conn"], site["config"], file=str(site["files"][1]), on=ON)
    assert (shouted, f["id"], "medium", "name+birth date") in rows(
        findings, "duplicates", "account_id", "sync_key", "certainty", "evidence"
    )
    named = {
        row[0]
        for name in ("duplicates", "ambiguous", "already_twice")
        for row in rows(findings, name, "sync_key")
        if row[0] == f["id"]
    }
    assert named == {f["id"]} and len(findings.table("ambiguous")) == 2


def test_the_email_and_its_csv_files_carry_ids_not_names(site, state_folder):
    from sisflow.readiness import send

    findings = readiness(site["conn"], site["config"], file=str(site["files"][1]), on=ON)
    msg = _email(send(findings, site["config"])["sent"])
    assert msg["Subject"] == "[sisflow] kommune readiness for 2026-2027: 6 blocking findings"
    texts = [msg.get_body(("plain",)).get_content()] + [
        part.get_content() for part in msg.iter_attachments()
    ]
    names = {p["family"] for p in site["starters"][:5]} | {"manuell.a", "Gammel"}
    assert not [n for n in names if any(n in t for t in texts)]
    attached = {part.get_filename() for part in msg.iter_attachments()}
    assert "kommune-duplicates.csv" in attached and "kommune-rekeyed.csv" in attached
    assert len(attached) == 11  # one per list
    assert str(site["ids"]["by_name"]) in texts[0] and site["starters"][0]["id"] in texts[0]
    # the files an operator asks for carry the names, to check a match by eye
    written = findings.write_csv(state_folder / "csv")
    duplicates = next(p for p in written if p.name == "kommune-duplicates.csv").read_text()
    assert "manuell.a" in duplicates and site["starters"][0]["family"] in duplicates


def _lms(conn):
    with conn.cursor() as cur:
        return PostgresSite(cur, "kommune").snapshot()


def test_a_rollover_stops_on_blocking_findings_and_changes_nothing(site):
    conn, config = site["conn"], site["config"]
    before = _lms(conn)
    result = run_once(
        conn, "kommune", site["files"][1], on=date(2026, 8, 1), rollover=True, config=config
    )
    assert result["refusal"]["outcome"] == "not-ready"
    assert "duplicates in waiting" in result["refusal"]["reason"]
    assert result["status"] == "aborted"
    assert _lms(conn) == before
    with conn.cursor() as cur:
        assert school_year.active(cur, "kommune", config, date(2026, 8, 1)).label == "2025-2026"


def test_a_rollover_on_the_date_gives_the_expected_site_object_by_object(site, state_folder):
    conn, config, ids = site["conn"], site["config"], site["ids"]
    findings = readiness(conn, config, file=str(site["files"][1]), on=ON)
    csv = findings.write_csv(state_folder / "csv")[0]
    attached = attach(conn, "kommune", read_csv(csv), by="kari", via="cli", source=str(csv))
    assert len(attached) == 2
    result = run_once(
        conn,
        "kommune",
        site["files"][1],
        on=date(2026, 8, 1),
        rollover=True,
        override=True,
        config=config,
    )
    assert result["status"] == "committed" and result["outcome"] == "applied"
    with conn.cursor() as cur:
        assert school_year.active(cur, "kommune", config, date(2026, 8, 1)).label == "2026-2027"
    lms = _lms(conn)
    data = {year: build_year(Municipality(SEED, PUPILS), year) for year in (2025, 2026)}
    keys = {year: {p["id"] for p in d["persons"]} for year, d in data.items()}
    users = {u["sync_key"]: u for u in lms["users"] if u["sync_key"]}
    assert {k for k, u in users.items() if not u["trashed"]} == keys[2026] | {
        "elev-dup",
        "elev-namesake",
        "admin-synced",
    }
    assert {k for k, u in users.items() if u["trashed"]} == keys[2025] - keys[2026]
    # the first-graders made by hand are the accounts that carry their keys: no second account
    for account, pupil in (("by_name", 0), ("by_two", 1)):
        key = site["starters"][pupil]["id"]
        assert users[key]["id"] == ids[account]
    with conn.cursor() as cur:
        a = site["starters"][0]
        cur.execute(
            "SELECT username FROM lms.users WHERE site = 'kommune' AND first_name = %s"
            " AND last_name = %s AND birth_date = %s",
            (a["given"], a["family"], a["bday"]),
        )
        assert cur.fetchall() == [(a["username"],)]  # one account, updated from the SIS
    courses = {
        year: {g["id"] for g in d["groups"] if g["type"] == "undervisningsgruppe"}
        for year, d in data.items()
    }
    assert {
        c["sync_key"]
        for c in lms["courses"]
        if c["state"] == "active" and c["created_by_integration"]
    } == courses[2026]
    assert {c["sync_key"] for c in lms["courses"] if c["state"] == "archived"} == courses[2025]
    assert [c["title"] for c in lms["courses"] if not c["created_by_integration"]] == []
    units = {
        year: {
            g["id"]
            for g in d["groups"]
            if g["type"] in ("skoleeier", "skole", "trinn", "basisgruppe")
        }
        for year, d in data.items()
    }
    assert {u["sync_key"] for u in lms["units"] if not u["removed"]} == units[2026]
    assert {(t["sync_key"], t["archived"]) for t in lms["terms"]} == {
        ("2025-08-15..2026-06-20", True),
        ("2026-08-15..2027-06-20", False),
    }
    learners = {
        (g, p)
        for g, members in data[2026]["members"].items()
        if g in courses[2026]
        for p, role in members
        if role == "01"
    }
    assert {
        (p["course"], p["user"])
        for p in lms["participants"]
        if p["synced"] and p["role"] == "learner"
    } == learners
    # administrators stay as people made them
    assert {u["id"] for u in lms["users"] if u["profile"] == "admin" and u["manual"]} == {
        ids["admin_idle"]
    }
    # the email says it is the rollover's, with the readiness summary and the override
    text = _text(result["email"]["sent"])
    assert "rollover: applied" in text and "blocking findings OVERRIDDEN in the form" in text
    assert "School year: 2026-2027" in text and "now the active one" in text


def test_an_attach_is_recorded_and_can_be_undone(site, state_folder):
    conn, ids = site["conn"], site["ids"]
    key = site["starters"][0]["id"]
    (first,) = attach(
        conn,
        "kommune",
        [{"account_id": str(ids["by_name"]), "sync_key": key, "line": 2}],
        by="kari",
        via="cli",
    )
    with pytest.raises(AttachError, match="already carries a sync key"):
        attach(
            conn,
            "kommune",
            [{"account_id": str(ids["by_name"]), "sync_key": "x"}],
            by="kari",
            via="cli",
        )
    done = undo(conn, "kommune", first, by="ola")
    assert done == {"attachment": first, "account_id": ids["by_name"], "sync_key": key}
    with conn.cursor() as cur:
        cur.execute("SELECT sync_key FROM lms.users WHERE id = %s", (ids["by_name"],))
        assert cur.fetchone() == (None,)
    (record,) = listing(conn, "kommune")
    assert (record["attached_by"], record["undone_by"]) == ("kari", "ola")
    assert record["undone_at"] is not None
    with pytest.raises(AttachError, match="was undone at"):
        undo(conn, "kommune", first, by="ola")


def test_a_list_with_one_bad_row_attaches_nothing_and_names_the_line(site, tmp_path):
    conn, ids = site["conn"], site["ids"]
    csv = tmp_path / "duplicates.csv"
    csv.write_text(
        "account_id,sync_key\n"
        f"{ids['by_name']},{site['starters'][0]['id']}\n"
        f"{ids['admin_idle']},{site['starters'][1]['id']}\n",
        encoding="utf-8",
    )
    with pytest.raises(AttachError) as err:
        attach(conn, "kommune", read_csv(csv), by="kari", via="cli", source=str(csv))
    assert str(err.value) == (
        f"{csv}: line 3: account {ids['admin_idle']} is an administrator:"
        " administrators stay manual; nothing attached"
    )
    assert listing(conn, "kommune") == []
    with conn.cursor(cursor_factory=RealDictCursor) as cur:
        cur.execute("SELECT sync_key FROM lms.users WHERE id = %s", (ids["by_name"],))
        assert cur.fetchone()["sync_key"] is None


def test_next_years_groups_wait_for_the_rollover(site):
    """An import of next year's export before the rollover creates none of next year's
    groups; the rollover does."""
    conn, config = site["conn"], site["config"]
    result = run_once(conn, "kommune", site["files"][1], on=date(2026, 8, 10), config=config)
    assert result["status"] == "committed"
    courses_2026 = {
        g["id"]
        for g in build_year(Municipality(SEED, PUPILS), 2026)["groups"]
        if g["type"] == "undervisningsgruppe"
    }
    lms = _lms(conn)
    assert not {c["sync_key"] for c in lms["courses"]} & courses_2026
    text = _text(result["email"]["sent"])
    assert "belong to a school year after 2025-2026: they wait" in text
    result = run_once(
        conn,
        "kommune",
        site["files"][1],
        on=date(2026, 8, 11),
        rollover=True,
        override=True,
        config=config,
    )
    assert result["outcome"] == "applied"
    assert {c["sync_key"] for c in _lms(conn)["courses"] if c["state"] == "active"} >= courses_2026


@pytest.mark.parametrize(
    ("vendor", "day", "allowed"),
    [
        ("other", date(2026, 7, 31), False),
        ("other", date(2026, 8, 1), True),
        ("Visma Flyt Skole", date(2026, 6, 19), False),
        ("Visma Flyt Skole", date(2026, 6, 20), True),
    ],
)
def test_rollover_is_refused_before_the_earliest_date(site, vendor, day, allowed):
    config = lenient(sis_vendor=vendor, school_year={"start": "2025-08-18", "end": "2026-06-19"})
    with site["conn"], site["conn"].cursor() as cur:  # the active year as Visma gives it
        cur.execute(
            "UPDATE sis.school_years SET start_date = '2025-08-18', end_date = '2026-06-19'"
        )
    result = run_once(
        site["conn"],
        "kommune",
        site["files"][1],
        on=day,
        rollover=True,
        override=True,
        config=config,
    )
    assert (result["refusal"] is None) is allowed
    if not allowed:
        assert result["refusal"]["outcome"] == "rollover-too-early"


def test_a_rollover_into_a_past_school_year_is_refused(site):
    result = run_once(
        site["conn"],
        "kommune",
        site["files"][1],
        on=date(2026, 8, 1),
        rollover=True,
        target_year="2024-2025",
        config=site["config"],
    )
    assert result["refusal"]["reason"] == "2024-2025 is before the active school year 2025-2026"


def test_forgetting_a_customer_forgets_its_school_year_and_attachments(site):
    """A demo or benchmark reset starts the story again: the next first import sets the school
    year anew, and no attach from before is left to undo."""
    from sisflow import state

    conn = site["conn"]
    attach(
        conn,
        "kommune",
        [{"account_id": str(site["ids"]["by_name"]), "sync_key": site["starters"][0]["id"]}],
        by="kari",
        via="cli",
    )
    with conn, conn.cursor() as cur:
        assert school_year.stored(cur, "kommune") == school_year.SchoolYear(
            date(2025, 8, 1), date(2026, 7, 31)
        )
        state.forget(cur, "kommune")
        assert school_year.stored(cur, "kommune") is None
    assert listing(conn, "kommune") == []
