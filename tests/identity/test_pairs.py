"""Which keys pair, and how sure the pair is: small files written by hand, run for real."""

from __future__ import annotations

from datetime import date

from tests.factory import enterprise, group, lenient, member, membership, person, run_once, write

DAY = date(2025, 9, 1)
NIN = "personNIN"


def run(conn, folder, text, name):
    return run_once(conn, "kommune", write(folder, text, name), on=DAY, config=lenient())


def school(pupil: str, *, login="ola", nin="01011912345", email="ola@skole.no", group_id="5A"):
    return enterprise(
        group("skole", "skole", short="Skolen"),
        group(group_id, "basisgruppe", parent="skole", short="5A"),
        person(
            pupil,
            "Ola",
            "Nordmann",
            bday="2015-03-01",
            email=email,
            userids=[("username", login), (NIN, nin)],
        ),
        membership(group_id, member(pupil)),
    )


def pairs(result):
    return [
        (p["old_key"], p["new_key"], p["certainty"], p["evidence"], p["decision"])
        for p in (result["relinks"] or {}).get("pairs", [])
    ]


def test_a_national_id_with_the_username_is_certain(conn, tmp_path):
    run(conn, tmp_path, school("p1"), "day1.xml")
    result = run(conn, tmp_path, school("p2", email="ny@skole.no"), "day2.xml")
    assert pairs(result) == [("p1", "p2", "high", ["username", "national id"], "accepted")]


def test_a_national_id_alone_waits_for_a_person(conn, tmp_path):
    run(conn, tmp_path, school("p1"), "day1.xml")
    result = run(conn, tmp_path, school("p2", login="o.nordmann", email="ny@skole.no"), "day2.xml")
    assert result["status"] == "held"
    assert pairs(result) == [("p1", "p2", "low", ["national id"], None)]


def test_different_people_do_not_pair(conn, tmp_path):
    """A pupil leaves and another with the parents' shared email arrives: no evidence."""
    run(conn, tmp_path, school("p1"), "day1.xml")
    other = school("p2", login="kari", nin="02021923456").replace(">Ola<", ">Kari<")
    result = run(conn, tmp_path, other.replace("Ola Nordmann", "Kari Nordmann"), "day2.xml")
    assert pairs(result) == []
    assert result["counts"]["person"] == {"create": 1, "update": 0, "delete": 1}


def test_a_school_rekeyed_with_its_class_keeps_both_units(conn, tmp_path):
    run(conn, tmp_path, school("p1"), "day1.xml")
    with conn.cursor() as cur:
        cur.execute("SELECT sync_key, id FROM lms.units WHERE site = 'kommune' ORDER BY 1")
        before = dict(cur.fetchall())
    text = school("p1", group_id="5A-ny").replace("<id>skole</id>", "<id>skole-ny</id>")
    result = run(conn, tmp_path, text, "day2.xml")
    assert sorted(pairs(result)) == [
        ("5A", "5A-ny", "high", ["code", "name", "school", "term"], "accepted"),
        ("skole", "skole-ny", "high", ["code", "name", "school", "term"], "accepted"),
    ]
    with conn.cursor() as cur:
        cur.execute("SELECT sync_key, id FROM lms.units WHERE site = 'kommune' ORDER BY 1")
        assert dict(cur.fetchall()) == {"5A-ny": before["5A"], "skole-ny": before["skole"]}
        cur.execute(
            "SELECT n.sync_key, p.sync_key FROM lms.units n JOIN lms.units p ON p.id = n.parent_id"
            " WHERE n.site = 'kommune' AND n.sync_key = '5A-ny'"
        )
        assert cur.fetchall() == [("5A-ny", "skole-ny")]
        cur.execute(
            "SELECT count(*) FROM lms.unit_members m JOIN lms.units n ON n.id = m.unit_id"
            " WHERE n.sync_key = '5A-ny'"
        )
        assert cur.fetchone() == (1,)  # the pupil is still a member


def test_a_delta_file_that_rekeys_a_pupil_relinks_the_account(conn, tmp_path):
    """A delta file deletes the old key (recstatus 3) and brings the new one with its
    membership: one account, the same membership, nothing trashed."""
    run(conn, tmp_path, school("p1"), "day1.xml")
    with conn.cursor() as cur:
        cur.execute("SELECT id FROM lms.users WHERE sync_key = 'p1'")
        (account,) = cur.fetchone()
    delta = enterprise(
        person("p1", "Ola", "Nordmann", recstatus=3),
        person(
            "p2",
            "Ola",
            "Nordmann",
            bday="2015-03-01",
            email="ola@skole.no",
            userids=[("username", "ola"), (NIN, "01011912345")],
        ),
        membership("5A", member("p2")),
        kind="delta",
    )
    result = run(conn, tmp_path, delta, "day2.xml")
    assert result["status"] == "committed"
    assert pairs(result) == [
        ("p1", "p2", "high", ["username", "national id", "email+name+birth date"], "accepted")
    ]
    assert result["counts"]["person"] == {"create": 0, "update": 1, "delete": 0}
    assert result["counts"]["membership"] == {"create": 0, "update": 0, "delete": 0}
    with conn.cursor() as cur:
        cur.execute("SELECT id, trashed_at FROM lms.users WHERE site = 'kommune' ORDER BY id")
        assert cur.fetchall() == [(account, None)]
        cur.execute(
            "SELECT group_id, member_id FROM sis.memberships WHERE customer = 'kommune'"
            " AND idtype = 1"
        )
        assert cur.fetchall() == [("5A", "p2")]
        cur.execute(
            "SELECT u.sync_key FROM lms.unit_members m JOIN lms.users u ON u.id = m.user_id"
            " JOIN lms.units n ON n.id = m.unit_id WHERE n.sync_key = '5A'"
        )
        assert cur.fetchall() == [("p2",)]  # the same member of the class, under its new key
