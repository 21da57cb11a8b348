"""Readiness and identity: the pairs a new school year's export would bring (re-keyed persons),
a username that a synced account has under another key, and an account that matches a person
with a synced account and another without one (never proposed)."""

from __future__ import annotations

import re
from datetime import date

import pytest
from sisflow import identity
from sisflow.ims.generate import generate
from sisflow.readiness import readiness

from tests.factory import lenient, run_once

ON = date(2026, 6, 1)
PUPIL, LOGIN = "elev-2025-00000", "ragnande2500000"  # goes on into 2026-2027


@pytest.fixture
def imported(conn, tmp_path):
    """2025-2026 imported; the export of 2026-2027 to change and check against."""
    first = tmp_path / "export-2025.xml"
    generate(first, seed=4, year=2025, size="tiny")
    assert run_once(conn, "kommune", first, on=date(2025, 9, 1), config=lenient())["status"] == (
        "committed"
    )
    nxt = tmp_path / "export-2026.xml"
    generate(nxt, seed=4, year=2026, size="tiny")
    return nxt


def edited(path, *replacements):
    text = path.read_text(encoding="utf-8")
    for old, new in replacements:
        assert old in text
        text = text.replace(old, new)
    path.write_text(text, encoding="utf-8")
    return str(path)


def person_record(path, key: str) -> str:
    return next(
        line
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.startswith("<person>") and f"<id>{key}</id>" in line
    )


def test_a_person_the_sis_rekeyed_blocks_until_decided_then_the_rollover_keeps_the_account(
    conn, imported
):
    file = edited(
        imported, (f"<id>{PUPIL}</id>", "<id>elev-ny-1</id>"), (f">{LOGIN}<", ">ragnhild.a<")
    )
    config = lenient()
    findings = readiness(conn, config, file=file, on=ON)

    rekeyed = findings.table("rekeyed")
    assert list(zip(rekeyed["old_key"], rekeyed["new_key"], rekeyed["certainty"], strict=True)) == [
        (PUPIL, "elev-ny-1", "low")
    ]
    assert findings.blocking["rekeyed"] == 1
    (pair_id,) = rekeyed["pair_id"]

    with conn, conn.cursor() as cur:
        identity.decide(cur, "kommune", accept=[pair_id], by="kari", via="cli")
    findings = readiness(conn, config, file=file, on=ON)
    assert "rekeyed" not in findings.blocking
    assert list(findings.table("rekeyed_decided")["decision"]) == ["accepted"]

    with conn.cursor() as cur:
        cur.execute("SELECT id FROM lms.users WHERE sync_key = %s", (PUPIL,))
        (account,) = cur.fetchone()
    result = run_once(conn, "kommune", file, on=date(2026, 8, 10), rollover=True, config=config)
    assert result["status"] == "committed"  # decided before: the rollover is not held
    with conn.cursor() as cur:
        cur.execute("SELECT id, trashed_at FROM lms.users WHERE sync_key = 'elev-ny-1'")
        assert cur.fetchone() == (account, None)


def test_a_certain_pair_is_listed_and_not_blocking(conn, imported):
    file = edited(imported, (f"<id>{PUPIL}</id>", "<id>elev-ny-1</id>"))
    findings = readiness(conn, lenient(), file=file, on=ON)
    assert findings.table("rekeyed").empty
    decided = findings.table("rekeyed_decided")
    assert list(decided["decision"]) == ["relinked by the rule"]
    assert list(decided["evidence"]) == ["username + email+name+birth date"]


def test_a_username_a_synced_account_has_under_another_key_is_created_twice(conn, imported):
    newcomer = next(
        re.search(r"<id>(elev-2026-\d+)</id>", line).group(1)
        for line in imported.read_text(encoding="utf-8").splitlines()
        if "<person>" in line and "elev-2026-" in line
    )
    login = re.search(r'useridtype="username">([^<]+)<', person_record(imported, newcomer))[1]
    file = edited(imported, (f">{login}<", f">{LOGIN}<"))  # the pupil's login, given again
    findings = readiness(conn, lenient(), file=file, on=ON)
    twice = findings.table("created_twice")
    assert (" ".join(sorted([newcomer, PUPIL])), "username of a synced account") in set(
        zip(twice["sync_keys"], twice["evidence"], strict=True)
    )
    assert findings.blocking["created_twice"] >= 1


def test_an_account_that_matches_a_synced_person_and_a_sibling_is_never_proposed(conn, imported):
    """Hedda has a synced account. A second account made by hand for her carries the parents'
    email, which the SIS has on her younger sister, a new first-grader: the account matches
    Hedda (name and birth date) and the sister (email). Proposed, it would hand Hedda's
    account to her sister."""
    hedda = person_record(imported, PUPIL)
    given, family = re.search(r"<n><family>([^<]+)</family><given>([^<]+)</given>", hedda).group(
        2, 1
    )
    bday = re.search(r"<bday>([^<]+)</bday>", hedda)[1]
    sister_line = next(
        line
        for line in imported.read_text(encoding="utf-8").splitlines()
        if "<person>" in line and "elev-2026-" in line
    )
    sister = re.search(r"<id>([^<]+)</id>", sister_line)[1]
    sister_email = re.search(r"<email>([^<]+)</email>", sister_line)[1]
    file = edited(imported, (sister_email, "foreldre@example.no"))
    with conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO lms.users (site, username, first_name, last_name, email, birth_date,"
            " profile) VALUES ('kommune', 'hedda.manuell', %s, %s, 'foreldre@example.no', %s,"
            " 'student') RETURNING id",
            (given, family, bday),
        )
        (manual,) = cur.fetchone()

    findings = readiness(conn, lenient(), file=file, on=ON)

    assert manual not in {p["account_id"] for p in findings.proposals()}
    ambiguous = findings.table("ambiguous")
    assert set(ambiguous[ambiguous["account_id"] == manual]["sync_key"]) == {sister}
    already = findings.table("already_twice")
    assert set(already[already["account_id"] == manual]["sync_key"]) == {PUPIL}
