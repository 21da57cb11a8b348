"""Bad data never removes good data: a record the file holds in a form that cannot be read is
kept as it was; hostile values go through every COPY unchanged; files whose bytes contradict
their declaration are rejected whole. Real files, the real pipeline, a real Postgres."""

import email
import email.policy

import pytest
from sisflow import state

from tests.factory import enterprise, group, lenient, member, membership, person, run_once, write


def run(conn, tmp_path, text, name, **kw):
    return run_once(conn, "kommune", write(tmp_path, text, name), config=lenient(), **kw)


def school(
    *, bday_p2="2015-02-02", end_mat="2026-06-19", extra_members=(), p2=True, course_members=None
):
    persons = [person("p1", "Åse", "Lund", bday="2015-01-01"), person("t1", "Kari", "Lærer")]
    if p2:
        persons.append(person("p2", "Bo", "Berg", bday=bday_p2))
    return enterprise(
        *persons,
        group("owner", "skoleeier", scheme="pifu-ims-go-org"),
        group("school", "skole", parent="owner", scheme="pifu-ims-go-org", level="2"),
        group("5A", parent="school"),
        group("MAT-5A", "undervisningsgruppe", parent="5A", begin="2025-08-15", end=end_mat),
        membership(
            "5A", member("p1"), *([member("p2")] if p2 else []), member("t1", "02"), *extra_members
        ),
        membership(
            "MAT-5A",
            *(
                course_members
                if course_members is not None
                else [member("p1"), member("p2"), member("t1", "02")]
            ),
        ),
    )


def current(conn):
    return state.snapshot(conn.cursor(), "kommune")


def lms(conn, sql, *args):
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return cur.fetchall()


def text_of(result) -> str:
    with open(result["email"]["sent"], "rb") as f:
        msg = email.message_from_bytes(f.read(), policy=email.policy.default)
    return msg.get_body(("plain",)).get_content()


def participants(conn, course="MAT-5A"):
    return sorted(
        lms(
            conn,
            "SELECT u.sync_key, p.synced FROM lms.participants p"
            " JOIN lms.courses c ON c.id = p.course_id"
            " JOIN lms.users u ON u.id = p.user_id WHERE c.sync_key = %s",
            course,
        )
    )


# -- a record skipped for an error keeps its state -----------------------------------------------


def test_an_impossible_birth_date_keeps_the_pupil_and_all_their_groups(conn, tmp_path):
    run(conn, tmp_path, school(), "day1.xml")
    before = current(conn)
    result = run(conn, tmp_path, school(bday_p2="2019-02-30"), "day2.xml")
    assert result["status"] == "committed"
    assert result["counts"]["person"]["delete"] == 0
    assert result["counts"]["membership"]["delete"] == 0
    assert current(conn) == before  # p2, its birth date and its memberships as they were
    assert lms(conn, "SELECT trashed_at IS NULL FROM lms.users WHERE sync_key = 'p2'") == [(True,)]
    assert ("p2", True) in participants(conn)
    text = text_of(result)
    assert "Kept as it was because the record is invalid (1;" in text
    line = next(
        i
        for i, t in enumerate(
            write(tmp_path, school(bday_p2="2019-02-30"), "x.xml").read_text().splitlines(), 1
        )
        if "2019-02-30" in t
    )
    assert f"line {line}: person p2: invalid date in demographics/bday" in text
    assert "2019-02-30" not in text and "Berg" not in text  # ids and lines only


def test_an_impossible_end_date_never_archives_the_course(conn, tmp_path):
    run(conn, tmp_path, school(), "day1.xml")
    bad = run(conn, tmp_path, school(end_mat="2026-06-31"), "day2.xml")
    assert bad["counts"]["group"]["delete"] == 0
    assert lms(conn, "SELECT state FROM lms.courses WHERE sync_key = 'MAT-5A'") == [("active",)]
    assert len(participants(conn)) == 3
    fixed = run(conn, tmp_path, school(end_mat="2026-06-20"), "day3.xml")  # the SIS fixes it
    assert fixed["counts"]["group"] == {"create": 0, "update": 1, "delete": 0}
    assert lms(conn, "SELECT state FROM lms.courses WHERE sync_key = 'MAT-5A'") == [("active",)]


def test_a_bad_role_keeps_that_participation(conn, tmp_path):
    run(conn, tmp_path, school(), "day1.xml")
    bad_role = member("p2").replace("<status>1</status>", "<status>7</status>")
    result = run(
        conn,
        tmp_path,
        school(course_members=[member("p1"), bad_role, member("t1", "02")]),
        "day2.xml",
    )
    assert result["counts"]["membership"]["delete"] == 0
    assert ("p2", True) in participants(conn)
    assert "membership MAT-5A/p2: status '7' is not 0 or 1" in text_of(result)


def test_a_member_without_a_role_is_listed_and_kept(conn, tmp_path):
    run(conn, tmp_path, school(), "day1.xml")
    no_role = (
        "<member><sourcedid><source>x</source><id>p2</id></sourcedid><idtype>1</idtype></member>"
    )
    result = run(
        conn,
        tmp_path,
        school(course_members=[member("p1"), no_role, member("t1", "02")]),
        "day2.xml",
    )
    assert result["counts"]["membership"]["delete"] == 0
    assert ("p2", True) in participants(conn)
    assert "membership MAT-5A/p2: member has no role" in text_of(result)


def test_a_bad_recstatus_is_reported_with_the_records_id(conn, tmp_path):
    text = enterprise(person("p1"), person("p9").replace("<person>", '<person recstatus="9">'))
    result = run(conn, tmp_path, text, "a.xml")
    with conn.cursor() as cur:
        cur.execute("SELECT record_id, reason FROM sis.problems WHERE run_id = %s", (result["id"],))
        assert cur.fetchall() == [("p9", "recstatus '9' is not 1, 2 or 3")]


# -- membership rules ------------------------------------------------------------------------------


def test_a_role_deleted_inside_a_full_file_removes_the_participant(conn, tmp_path):
    run(conn, tmp_path, school(), "day1.xml")
    deleted = member("p2", recstatus=3)
    result = run(
        conn,
        tmp_path,
        school(course_members=[member("p1"), deleted, member("t1", "02")]),
        "day2.xml",
    )
    assert result["counts"]["membership"]["delete"] == 1
    assert ("p2", True) not in participants(conn)


def test_a_delta_that_deletes_a_person_adds_no_membership_for_them(conn, tmp_path):
    run(conn, tmp_path, school(), "day1.xml")
    delta = enterprise(
        person("p2", recstatus=3), membership("5A", member("p2", "04", recstatus=1)), kind="delta"
    )
    result = run(conn, tmp_path, delta, "delta.xml")
    assert not [m for m in current(conn)["membership"] if m[1] == "p2"]
    assert lms(conn, "SELECT trashed_at IS NOT NULL FROM lms.users WHERE sync_key = 'p2'") == [
        (True,)
    ]
    assert not lms(
        conn,
        "SELECT 1 FROM lms.participants p JOIN lms.users u ON u.id = p.user_id"
        " WHERE u.sync_key = 'p2' AND p.synced",
    )
    assert "membership 5A/p2: names a person or group that this file deletes" in text_of(result)


# -- values that break the machinery ---------------------------------------------------------------

HOSTILE = ["\\.", "a\\b", "tab\there", 'quo"te', "komma,semikolon;", "æøå-😀", "\\N", "x\\.y"]


def test_hostile_values_go_through_every_copy_unchanged(conn, tmp_path):
    people = [person(f"id{v}" if v != "\\." else v, f"Navn{v}", "Etter\\navn") for v in HOSTILE]
    people[1] = people[1].replace("Etter\\navn</family>", "Etter\nlinje\tfane</family>", 1)
    ids = [v if v == "\\." else f"id{v}" for v in HOSTILE]
    day1 = enterprise(
        *people,
        group("5A"),
        group("\\."),
        membership("5A", *(member(i) for i in ids)),
        membership("\\.", member("\\.")),
        # a bad record with a hostile id: problems and kept keys go by COPY too
        person("\\.bad", bday="2015-13-01"),
    )
    first = run(conn, tmp_path, day1, "day1.xml")
    assert first["status"] == "committed" and first["skipped"]["person"] == 1
    assert {row[0] for row in current(conn)["person"]} == set(ids)
    assert {row[0] for row in current(conn)["membership"]} == {"5A", "\\."}
    assert "Etter\nlinje\tfane" in {row[5] for row in current(conn)["person"]}  # family
    assert sorted(k for (k,) in lms(conn, "SELECT sync_key FROM lms.users")) == sorted(ids)
    assert lms(conn, "SELECT record_id FROM sis.kept") == [("\\.bad",)]
    # the ones who leave go to the trash, the end-of-data marker among them, and no one else
    leaving = {"\\.", 'idquo"te'}
    day2 = enterprise(
        *(p for p, i in zip(people, ids, strict=True) if i not in leaving),
        group("5A"),
        membership("5A", *(member(i) for i in ids if i not in leaving)),
    )
    second = run(conn, tmp_path, day2, "day2.xml")  # the unit "\." leaves too
    assert second["lms_counts"]["users_removed"]["applied"] == 2
    assert second["lms_counts"]["groups_removed"]["applied"] == 1
    assert lms(conn, "SELECT sync_key, removed_at IS NOT NULL FROM lms.units ORDER BY 1") == [
        ("5A", False),
        ("\\.", True),
    ]
    trashed = {
        k for (k,) in lms(conn, "SELECT sync_key FROM lms.users WHERE trashed_at IS NOT NULL")
    }
    assert trashed == leaving


def test_an_id_too_long_for_the_index_is_a_problem_of_its_record(conn, tmp_path):
    long_id = "x" * 3000
    text = enterprise(
        person("p1"), person(long_id), group("5A"), membership("5A", member("p1"), member(long_id))
    )
    result = run(conn, tmp_path, text, "a.xml")
    assert result["status"] == "committed"
    assert result["skipped"] == {"person": 1, "group": 0, "membership": 1}
    assert {row[0] for row in current(conn)["person"]} == {"p1"}
    assert "id of 3000 characters is longer than 255" in text_of(result)


def test_utf8_bytes_in_a_file_declared_iso_8859_1_are_rejected_whole(conn, tmp_path):
    run(conn, tmp_path, school(), "day1.xml")
    before = current(conn)
    text = enterprise(person("p1", "Åse", "Grønli"), encoding="ISO-8859-1")
    result = run(conn, tmp_path, text, "mislabelled.xml")  # written as UTF-8
    assert result["status"] == "rejected"
    assert result["fatal"]["line"] == next(
        i for i, line in enumerate(text.splitlines(), 1) if "Grønli" in line
    )
    assert "declares ISO-8859-1 but holds UTF-8 byte sequences" in result["fatal"]["reason"]
    assert current(conn) == before
    honest = write(tmp_path, text, "latin1.xml", encoding="iso-8859-1")
    ok = run_once(conn, "kommune", honest, config=lenient())
    assert ok["status"] == "committed"
    assert "Åse Grønli" in {row[4] for row in current(conn)["person"]}  # fn, read right


DTD = '<!DOCTYPE enterprise [<!ENTITY xxe "injected">]>\n'


def with_dtd(text: str) -> str:
    head, rest = text.split("\n", 1)
    return f"{head}\n{DTD}{rest}"


def test_an_entity_in_a_value_is_a_listed_problem_and_the_record_is_kept(conn, tmp_path):
    run(conn, tmp_path, school(), "day1.xml")
    before = current(conn)
    text = with_dtd(school().replace("<fn>Bo Berg</fn>", "<fn>&xxe;</fn>"))
    result = run(conn, tmp_path, text, "day2.xml")
    assert result["status"] == "committed"
    assert current(conn) == before  # p2 kept: not deleted, not nulled
    assert "person p2: entity reference &xxe; in <fn>: the value cannot be read" in text_of(result)


def test_an_entity_in_an_id_rejects_a_full_file(conn, tmp_path):
    run(conn, tmp_path, school(), "day1.xml")
    before = current(conn)
    text = with_dtd(school().replace("<id>p2</id>", "<id>&xxe;</id>", 1))
    result = run(conn, tmp_path, text, "day2.xml")
    assert result["status"] == "rejected"
    assert (
        "person: entity reference &xxe; in <id>: the record cannot be identified"
        in result["fatal"]["reason"]
    )
    assert current(conn) == before


@pytest.mark.parametrize("bad_id", ["p2\nExtra: line", "p2\u2028x", "p2\rSubject: x"])
def test_control_characters_in_ids_add_no_lines_to_the_plain_text_email(conn, tmp_path, bad_id):
    text = enterprise(person("p1"), person(bad_id, bday="2015-02-30"))
    result = run(conn, tmp_path, text, "a.xml")
    body = text_of(result)
    assert not any(
        line.startswith(("Extra: line", "x", "Subject: x")) for line in body.splitlines()
    )
    assert "p2\\n" in body or "p2\\u2028" in body or "p2\\r" in body


def test_an_untyped_userid_is_the_login_name(conn, tmp_path):
    typed = person("p1", userids=[("username", "aase.lund")])
    untyped = person("p2").replace("<name>", "<userid>bo.berg</userid><name>")
    run(conn, tmp_path, enterprise(typed, untyped), "a.xml")
    assert lms(conn, "SELECT sync_key, username FROM lms.users ORDER BY 1") == [
        ("p1", "aase.lund"),
        ("p2", "bo.berg"),
    ]


def test_a_customers_delta_files_without_a_type_are_read_as_delta(conn, tmp_path):
    run(conn, tmp_path, school(), "day1.xml")
    untyped_delta = enterprise(person("p9"), properties="<properties></properties>")
    result = run_once(
        conn,
        "kommune",
        write(tmp_path, untyped_delta, "delta.xml"),
        config=lenient(file_type="delta"),
    )
    assert result["file_type"] == "delta"
    assert result["counts"]["person"] == {"create": 1, "update": 0, "delete": 0}  # p1, p2 stay


# -- a record whose key cannot be read removes nothing it could be -------------------------------

NO_ID = "<sourcedid><source>sas</source></sourcedid>"
UNREADABLE_IDS = {
    "no sourcedid": "",
    "no id": NO_ID,
    "an empty id": "<sourcedid><source>sas</source><id> </id></sourcedid>",
    "an id too long": f"<sourcedid><source>sas</source><id>{'x' * 300}</id></sourcedid>",
}


@pytest.mark.parametrize("ids", list(UNREADABLE_IDS))
def test_a_pupil_without_a_readable_id_is_not_trashed(conn, tmp_path, ids):
    run(conn, tmp_path, school(), "day1.xml")
    before = current(conn)
    day2 = school().replace(
        person("p2", "Bo", "Berg", bday="2015-02-02"),
        person("p2", "Bo", "Berg", bday="2015-02-02", ids=UNREADABLE_IDS[ids]),
    )
    result = run(conn, tmp_path, day2, "day2.xml")
    assert result["status"] == "committed"
    assert result["counts"]["person"]["delete"] == 0
    assert result["counts"]["membership"]["delete"] == 0
    assert current(conn) == before
    assert lms(conn, "SELECT trashed_at IS NULL FROM lms.users WHERE sync_key = 'p2'") == [(True,)]
    assert ("p2", True) in participants(conn)
    assert "person (no id): " in text_of(result)
    # the next good file that leaves p2 out removes them as usual
    gone = run(conn, tmp_path, school(p2=False), "day3.xml")
    assert gone["counts"]["person"]["delete"] == 1


def test_a_course_without_a_readable_id_is_not_archived(conn, tmp_path):
    run(conn, tmp_path, school(), "day1.xml")
    before = current(conn)
    nameless = group(
        "MAT-5A", "undervisningsgruppe", parent="5A", begin="2025-08-15", end="2026-06-19"
    )
    day2 = school().replace(nameless, nameless.replace("<id>MAT-5A</id>", "<id></id>"))
    day2 = day2.replace(membership("MAT-5A", member("p1"), member("p2"), member("t1", "02")), "")
    result = run(conn, tmp_path, day2, "day2.xml")
    assert result["counts"]["group"]["delete"] == 0
    assert result["counts"]["membership"]["delete"] == 0
    assert current(conn) == before
    assert lms(conn, "SELECT state FROM lms.courses WHERE sync_key = 'MAT-5A'") == [("active",)]
    assert participants(conn) == [("p1", True), ("p2", True), ("t1", True)]


def test_a_member_without_a_readable_id_removes_no_member_of_its_group(conn, tmp_path):
    run(conn, tmp_path, school(), "day1.xml")
    members = [member("p1"), member("p2"), member("t1", "02")]
    blind = [members[0], members[1].replace("<id>p2</id>", ""), members[2]]
    day2 = school().replace(membership("MAT-5A", *members), membership("MAT-5A", *blind))
    result = run(conn, tmp_path, day2, "day2.xml")
    assert result["counts"]["membership"]["delete"] == 0
    assert ("p2", True) in participants(conn)


def test_a_person_without_a_name_keeps_the_names_of_the_account(conn, tmp_path):
    run(conn, tmp_path, school(), "day1.xml")
    named = person("p2", "Bo", "Berg", bday="2015-02-02")
    nameless = named.replace(named[named.index("<name>") : named.index("</name>") + 7], "")
    result = run(conn, tmp_path, school().replace(named, nameless), "day2.xml")
    assert result["counts"]["person"]["update"] == 0
    assert lms(conn, "SELECT first_name, last_name FROM lms.users WHERE sync_key = 'p2'") == [
        ("Bo", "Berg")
    ]


# -- the order of exports -------------------------------------------------------------------------


def _made_at(stamp, *pupils):
    props = (
        f"<properties><datasource>sas@test</datasource><type>full</type>"
        f"<datetime>{stamp}</datetime></properties>"
    )
    return enterprise(*(person(p) for p in pupils), properties=props)


def test_an_export_from_the_future_is_no_floor_for_the_ones_after_it(conn, tmp_path):
    run(conn, tmp_path, _made_at("2025-08-15T05:00:00", "p1"), "day1.xml")
    future = run(conn, tmp_path, _made_at("2099-01-01T05:00:00", "p1", "p2"), "day2.xml")
    assert future["status"] == "committed"
    assert "properties/datetime 2099-01-01T05:00:00 is ahead of the clock" in text_of(future)
    after = run(conn, tmp_path, _made_at("2025-08-16T05:00:00", "p1", "p2", "p3"), "day3.xml")
    assert after["status"] == "committed"
    assert after["counts"]["person"]["create"] == 1


def test_an_older_export_is_refused_until_a_person_accepts_it(conn, tmp_path):
    run(conn, tmp_path, _made_at("2025-08-15T05:00:00", "p1", "p2"), "day1.xml")
    older = run(conn, tmp_path, _made_at("2025-08-01T05:00:00", "p1"), "old.xml")
    assert older["status"] == "rejected"
    text = text_of(older)
    assert "from sas@test at 2025-08-01T05:00:00 (full)" in text
    assert "--accept-older" in text
    accepted = run(
        conn, tmp_path, _made_at("2025-08-01T05:00:00", "p1"), "old.xml", accept_older=True
    )
    assert accepted["status"] == "committed"
    assert accepted["counts"]["person"]["delete"] == 1
