"""The fast path against the straightforward one, on generated files with random edits.

The fast reader turns plain <membership> elements into COPY rows without a Python object per
member; everything else goes the straightforward way. Both must find the same records, the
same problems on the same lines and keep the same keys, and a run must end in the same change
set whichever way it read the file.
"""

import csv
import io
import random
import re

import pytest
from sisflow.ims import generate as gen
from sisflow.ims.reader import ImsReader, MembershipRows, ReadAgain
from sisflow.ims.records import FatalFileError, Membership

from tests.factory import lenient, run_once

MEMBER = re.compile(r"<member>.*?</member>")


def _membership_lines(lines):
    return [i for i, line in enumerate(lines) if line.startswith("<membership>")]


def _member_of(lines, rng):
    """A line index and the span of one of its members."""
    i = rng.choice(_membership_lines(lines))
    found = list(MEMBER.finditer(lines[i]))
    return i, rng.choice(found)


def _edit_member(lines, rng, change):
    i, m = _member_of(lines, rng)
    lines[i] = lines[i][: m.start()] + change(m.group()) + lines[i][m.end() :]


def _edit_line(lines, rng, prefix, change):
    candidates = [i for i, line in enumerate(lines) if line.startswith(prefix)]
    i = rng.choice(candidates)
    lines[i] = change(lines[i])


def _edit_person(lines, rng, change):
    _edit_line(lines, rng, "<person>", change)


def _split_membership(lines, rng):
    """The group's members in two <membership> elements: the second must find the first's
    duplicates, so a fast reader reads the file again."""
    i = rng.choice(_membership_lines(lines))
    head = re.match(r"<membership><sourcedid>.*?</sourcedid>", lines[i]).group()
    members = MEMBER.findall(lines[i])
    if len(members) < 2:
        return
    cut = len(members) // 2
    lines[i] = head + "".join(members[:cut]) + "</membership>"
    lines.insert(i + 1, head + "".join(members[cut - 1 :]) + "</membership>")


def _drop_line(lines, rng, prefix):
    candidates = [i for i, line in enumerate(lines) if line.startswith(prefix)]
    del lines[rng.choice(candidates)]


def _move_membership_up(lines, rng):
    """A membership before the persons it names: its members wait for the end of the file."""
    i = rng.choice(_membership_lines(lines))
    lines.insert(3, lines.pop(i))


def _duplicate_person(lines, rng):
    candidates = [i for i, line in enumerate(lines) if line.startswith("<person>")]
    i = rng.choice(candidates)
    copy = lines[i].replace("<given>", "<given>Other ")
    lines.insert(rng.randrange(i, len(lines) - 1), copy)


def _insert_between_records(lines, rng, text):
    lines.insert(rng.randrange(3, len(lines) - 2), text)


def _join_lines(lines, rng):
    """Two records on one line: the second one's line break taken out."""
    i = rng.randrange(3, len(lines) - 3)
    lines[i] += lines.pop(i + 1)


def _lone_carriage_return(lines, rng):
    i = rng.randrange(3, len(lines) - 3)
    lines[i] += "\r" + lines.pop(i + 1)


#: how files are written apart from their records, each with whether the scan still reads the
#: file (True) or leaves it to lxml (False)
LAYOUTS = {
    "a comment between records": (
        lambda ls, r: _insert_between_records(ls, r, "<!-- elever -->"),
        True,
    ),
    "Windows line endings": (
        lambda ls, r: ls.__setitem__(
            slice(None), [line.rstrip("\r") + "\r" for line in ls[:-1]] + ls[-1:]
        ),
        True,
    ),
    "a byte order mark": (lambda ls, r: ls.__setitem__(0, "\ufeff" + ls[0].lstrip("\ufeff")), True),
    "a pretty-printed person": (
        lambda ls, r: _edit_line(ls, r, "<person>", lambda p: p.replace("><", ">\n  <")),
        True,
    ),
    "a pretty-printed membership": (
        lambda ls, r: _edit_line(ls, r, "<membership>", lambda m: m.replace("><", ">\n <")),
        True,
    ),
    "a tab in an attribute value": (
        lambda ls, r: _edit_line(
            ls,
            r,
            "<person>",
            lambda p: p.replace('useridtype="username"', 'useridtype="user\tname"'),
        ),
        True,
    ),
    "a greater-than sign in a name": (
        lambda ls, r: _edit_line(ls, r, "<person>", lambda p: p.replace("</given>", ">x</given>")),
        True,
    ),
    "a character reference in a name": (
        lambda ls, r: _edit_line(
            ls, r, "<person>", lambda p: p.replace("</family>", "&#248;</family>")
        ),
        True,
    ),
    "single-quoted attributes": (
        lambda ls, r: _edit_line(
            ls, r, "<membership>", lambda m: re.sub(r'roletype="(\d+)"', r"roletype='\1'", m)
        ),
        True,
    ),
    "an empty person": (lambda ls, r: _insert_between_records(ls, r, "<person/>"), True),
    "two records on a line": (lambda ls, r: _join_lines(ls, r), True),
    "a comment after a record on its line": (
        lambda ls, r: _edit_line(ls, r, "<group>", lambda g: g + " <!-- gruppe -->"),
        True,
    ),
    "a person's end tag in a comment": (
        lambda ls, r: _edit_line(
            ls, r, "<person>", lambda p: p.replace("</email>", "</email><!-- </person> -->")
        ),
        False,
    ),
    "a CDATA section": (
        lambda ls, r: _edit_line(
            ls,
            r,
            "<person>",
            lambda p: re.sub(r"<given>([^<]*)</given>", r"<given><![CDATA[\1]]></given>", p),
        ),
        False,
    ),
    "a lone carriage return": (_lone_carriage_return, False),
    "a processing instruction between records": (
        lambda ls, r: _insert_between_records(ls, r, "<?sis kilde?>"),
        False,
    ),
    "text between records": (lambda ls, r: _insert_between_records(ls, r, "stray"), False),
    "an element between records": (
        lambda ls, r: _insert_between_records(ls, r, "<extension><x>1</x></extension>"),
        False,
    ),
    "a DOCTYPE": (lambda ls, r: ls.insert(1, "<!DOCTYPE enterprise>"), False),
    "a control character in a name": (
        lambda ls, r: _edit_line(
            ls, r, "<person>", lambda p: p.replace("</given>", "\x01</given>")
        ),
        False,
    ),
    "a file cut short": (lambda ls, r: ls.__delitem__(slice(-3, None)), False),
    "a record after the root": (lambda ls, r: ls.append(ls[3]), False),
    "a namespace prefix on the root": (
        lambda ls, r: ls.__setitem__(
            slice(None),
            [
                line.replace("<enterprise xmlns=", "<ims:enterprise xmlns:ims=").replace(
                    "</enterprise>", "</ims:enterprise>"
                )
                for line in ls
            ],
        ),
        False,
    ),
}

#: what dirty exports do, each as an edit of the generated file's lines
EDITS = {
    "drop a member": lambda ls, r: _edit_member(ls, r, lambda m: ""),
    "same member twice": lambda ls, r: _edit_member(ls, r, lambda m: m + m),
    "same member, other status": lambda ls, r: _edit_member(
        ls, r, lambda m: m + m.replace("<status>1</status>", "<status>0</status>")
    ),
    "one member in two roles": lambda ls, r: _edit_member(
        ls, r, lambda m: m + re.sub(r'roletype="\d+"', 'roletype="04"', m)
    ),
    "a member of another source": lambda ls, r: _edit_member(
        ls, r, lambda m: re.sub(r"<source>[^<]*</source>", "<source>vigilo</source>", m)
    ),
    "unknown member": lambda ls, r: _edit_member(
        ls, r, lambda m: re.sub(r"<id>[^<]*</id>", "<id>nobody-1</id>", m)
    ),
    "unknown roletype": lambda ls, r: _edit_member(
        ls, r, lambda m: re.sub(r'roletype="\d+"', 'roletype="09"', m)
    ),
    "roletype without its zero": lambda ls, r: _edit_member(
        ls, r, lambda m: re.sub(r'roletype="0(\d)"', r'roletype="\1"', m)
    ),
    "status 2": lambda ls, r: _edit_member(
        ls, r, lambda m: m.replace("<status>1</status>", "<status>2</status>")
    ),
    "id in spaces": lambda ls, r: _edit_member(
        ls, r, lambda m: re.sub(r"<id>([^<]*)</id>", r"<id> \1 </id>", m)
    ),
    "line break between members": lambda ls, r: _edit_member(ls, r, lambda m: m + "\n"),
    "line break in a role tag": lambda ls, r: _edit_member(
        ls, r, lambda m: m.replace("<role ", "<role\n ")
    ),
    "a comment in a member": lambda ls, r: _edit_member(
        ls, r, lambda m: m.replace("<idtype>", "<!-- from SIS --><idtype>")
    ),
    "a subrole": lambda ls, r: _edit_member(
        ls, r, lambda m: m.replace("</status>", "</status><subrole>Kontakt</subrole>")
    ),
    "a timeframe": lambda ls, r: _edit_member(
        ls,
        r,
        lambda m: m.replace(
            "</status>",
            "</status><timeframe><begin>2025-08-01</begin><end>2026-13-01</end></timeframe>",
        ),
    ),
    "a group as member": lambda ls, r: _edit_member(
        ls, r, lambda m: m.replace("<idtype>1</idtype>", "<idtype>2</idtype>")
    ),
    "no role": lambda ls, r: _edit_member(ls, r, lambda m: re.sub(r"<role .*</role>", "", m)),
    "an escaped character": lambda ls, r: _edit_member(
        ls, r, lambda m: re.sub(r"<id>([^<]*)</id>", r"<id>\1&amp;x</id>", m)
    ),
    "a comma in an id": lambda ls, r: _edit_member(
        ls, r, lambda m: re.sub(r"<id>([^<]*)</id>", r"<id>\1,x</id>", m)
    ),
    "a member without its source": lambda ls, r: _edit_member(
        ls, r, lambda m: re.sub(r"<source>[^<]*</source>", "", m)
    ),
    "a name in spaces": lambda ls, r: _edit_person(
        ls, r, lambda p: p.replace("<given>", "<given> ")
    ),
    "an escaped name": lambda ls, r: _edit_person(
        ls, r, lambda p: p.replace("</family>", " &amp; Sønn</family>")
    ),
    "a name with a comma and a quote": lambda ls, r: _edit_person(
        ls, r, lambda p: p.replace("</family>", ', "Jr"</family>')
    ),
    "no name": lambda ls, r: _edit_person(ls, r, lambda p: re.sub(r"<name>.*</name>", "", p)),
    "only a full name": lambda ls, r: _edit_person(ls, r, lambda p: re.sub(r"<n>.*</n>", "", p)),
    "an invalid birth date": lambda ls, r: _edit_person(
        ls, r, lambda p: re.sub(r"<bday>[^<]*</bday>", "<bday>2011-02-30</bday>", p)
    ),
    "a birth date with a time": lambda ls, r: _edit_person(
        ls, r, lambda p: re.sub(r"<bday>([^<]*)</bday>", r"<bday>\1T00:00:00</bday>", p)
    ),
    "an empty username": lambda ls, r: _edit_person(
        ls, r, lambda p: re.sub(r'(<userid useridtype="username">)[^<]*', r"\1", p)
    ),
    "a username with a backslash and a quote": lambda ls, r: _edit_person(
        ls,
        r,
        lambda p: p.replace(
            '<userid useridtype="username">', '<userid useridtype="username">dom\\\\"'
        ),
    ),
    "an untyped userid": lambda ls, r: _edit_person(
        ls, r, lambda p: p.replace('<userid useridtype="workforceID">', "<userid>")
    ),
    "an old id": lambda ls, r: _edit_person(
        ls,
        r,
        lambda p: p.replace(
            "</sourcedid>",
            '</sourcedid><sourcedid sourcedidtype="Old"><id>gammel-1</id></sourcedid>',
            1,
        ),
    ),
    "an institution role": lambda ls, r: _edit_person(
        ls,
        r,
        lambda p: p.replace(
            "</person>", '<institutionrole institutionroletype="Student"/></person>'
        ),
    ),
    "an extension": lambda ls, r: _edit_person(
        ls, r, lambda p: p.replace("</person>", "<extension><x>1</x></extension></person>")
    ),
    "a person to delete": lambda ls, r: _edit_person(
        ls, r, lambda p: p.replace("<person>", '<person recstatus="3">')
    ),
    "a person removed": lambda ls, r: _drop_line(ls, r, "<person>"),
    "a group removed": lambda ls, r: _drop_line(ls, r, "<group>"),
    "a group's members in two elements": _split_membership,
    "members before their persons": _move_membership_up,
    "a person twice": _duplicate_person,
    **{name: edit for name, (edit, scanned) in LAYOUTS.items() if scanned},
}


#: edits after which a membership is still plain (a parsed comment is gone; a missing source is
#: never read)
STAYS_PLAIN = {
    "drop a member",
    "a comment in a member",
    "a person twice",
    "a member without its source",
    "a member of another source",
    "an untyped userid",
    "an institution role",
    "a username with a backslash and a quote",
    "only a full name",
    "a name with a comma and a quote",
    # layouts: lxml reads these values as plain ones
    "a comment between records",
    "Windows line endings",
    "a byte order mark",
    "a tab in an attribute value",
    "a greater-than sign in a name",
    "a character reference in a name",
    "single-quoted attributes",
    "two records on a line",
    "a comment after a record on its line",
}


def edited(text: str, seed: int, n: int = 8) -> str:
    rng = random.Random(seed)
    lines = text.split("\n")
    names = sorted(EDITS)
    for name in rng.choices(names, k=n):
        EDITS[name](lines, rng)
    return "\n".join(lines)


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    path = tmp_path_factory.mktemp("fast") / "tiny-2025.xml"
    gen.generate(path, seed=3, year=2025, size="tiny")
    return path.read_text(encoding="utf-8")


def read(path, *, fast: bool, scan: bool | None = None):
    """Everything a reading gives: rows (as text), problems, counts, kept keys; and how many
    memberships went each way."""
    reader = ImsReader(path, fast=fast, scan=scan)
    rows, ways = [], {"fast": 0, "straightforward": 0}
    try:
        while True:
            try:
                records = list(reader)
                break
            except ReadAgain as why:
                ways["read again" if why.straightforward else "with lxml"] = 1
                reader.read_again(why)
    except FatalFileError as err:
        return {"fatal": str(err)}, ways
    for record in records:
        if isinstance(record, MembershipRows):
            for row in csv.reader(io.StringIO(record)):
                rows.append(("Membership", *(v or None for v in row)))
                ways["fast"] += 1
        else:
            rows.append((type(record).__name__, *(None if v is None else str(v) for v in record)))
            ways["straightforward"] += isinstance(record, Membership)
    ways["plain persons"] = reader.plain["person"]
    ways["persons"] = reader.result.records["person"]
    result = reader.result
    return {
        "rows": sorted(rows, key=repr),
        "problems": result.problems,
        "records": result.records,
        "skipped": result.skipped,
        "kept": result.kept,
        "counts": result.problem_counts,
    }, ways


@pytest.mark.parametrize("seed", range(40))
def test_fast_and_straightforward_readings_agree(generated, tmp_path, seed):
    path = tmp_path / f"edited-{seed}.xml"
    path.write_text(edited(generated, seed), encoding="utf-8")
    fast, ways = read(path, fast=True)
    straight, straight_ways = read(path, fast=False)
    assert fast == straight
    assert read(path, fast=True, scan=False)[0] == straight  # lxml's tree, then the regexes
    assert straight_ways["fast"] == 0
    if "read again" not in ways:  # both ways taken: the edits reach the straightforward one
        assert ways["fast"] > 0
        assert (
            ways["straightforward"] > 0
            or ways["plain persons"] < ways["persons"]
            or fast["problems"]
        )


def test_every_edit_leaves_the_fast_way(generated, tmp_path):
    """Each edit alone sends its membership the straightforward way, and the readings agree:
    the regular expression takes only what it can read exactly."""
    for n, name in enumerate(sorted(EDITS)):
        lines = generated.split("\n")
        EDITS[name](lines, random.Random(n))
        path = tmp_path / f"one-edit-{n}.xml"
        path.write_text("\n".join(lines), encoding="utf-8")
        fast, ways = read(path, fast=True)
        straight, _ = read(path, fast=False)
        assert fast == straight, name
        if name not in STAYS_PLAIN:  # a person the straightforward way, or a membership
            assert (
                ways["plain persons"] < ways["persons"]
                or ways["straightforward"]
                or ways.get("read again")
                or fast["problems"]
            ), name


def test_the_scan_reads_each_layout_as_lxml_does(generated, tmp_path):
    """Each layout alone: the scan reads the file, or leaves it to lxml, as listed; either
    way the reading is the straightforward one, fatal errors included."""
    for n, (name, (edit, scanned)) in enumerate(sorted(LAYOUTS.items())):
        lines = generated.split("\n")
        edit(lines, random.Random(n))
        path = tmp_path / f"layout-{n}.xml"
        path.write_bytes("\n".join(lines).encode("utf-8"))
        fast, ways = read(path, fast=True)
        assert fast == read(path, fast=False)[0], name
        assert ("with lxml" not in ways) == scanned, name


def test_the_plain_file_is_scanned_and_not_parsed(generated, tmp_path):
    path = tmp_path / "plain.xml"
    path.write_text(generated, encoding="utf-8")
    fast, ways = read(path, fast=True)
    assert "with lxml" not in ways and "read again" not in ways
    assert ways["straightforward"] == 0 and ways["plain persons"] == ways["persons"] > 0
    assert fast == read(path, fast=False)[0]


@pytest.mark.parametrize("seed", range(4))
def test_the_change_sets_agree(conn, generated, tmp_path, monkeypatch, seed):
    """A first import of the generated file, then the edited one: through the fast reader and
    the straightforward one, the same change rows, problems and kept keys."""
    original = tmp_path / "original.xml"
    original.write_text(generated, encoding="utf-8")
    changed = tmp_path / f"edited-{seed}.xml"
    changed.write_text(edited(generated, seed, n=12), encoding="utf-8")
    found = {}
    for way in ("fast", "straightforward"):
        monkeypatch.setenv("SISFLOW_READER", way)
        customer = f"{way}-{seed}"
        run_once(conn, customer, original, config=lenient(customer))
        run = run_once(conn, customer, changed, config=lenient(customer))
        found[way] = {
            "status": run["status"],
            "counts": run["counts"],
            **_change_set(conn, run["id"]),
        }
    assert found["fast"] == found["straightforward"]
    assert sum(sum(c.values()) for c in found["fast"]["counts"].values()) > 0


def _change_set(conn, run_id):
    with conn.cursor() as cur:
        found = {}
        for table in ("person_changes", "group_changes", "membership_changes"):
            cur.execute(f"SELECT * FROM sis.{table} WHERE run_id = %s", (run_id,))
            names = [d.name for d in cur.description]
            found[table] = sorted(
                repr({k: v for k, v in zip(names, row, strict=True) if k not in ("id", "run_id")})
                for row in cur.fetchall()
            )
        cur.execute(
            "SELECT entity, record_id, line, reason, severity FROM sis.problems"
            " WHERE run_id = %s ORDER BY 1, 2, 3, 4",
            (run_id,),
        )
        found["problems"] = cur.fetchall()
        cur.execute(
            "SELECT entity, record_id, member_id, line, reason FROM sis.kept"
            " WHERE run_id = %s ORDER BY 1, 2, 3, 4",
            (run_id,),
        )
        found["kept"] = cur.fetchall()
    return found
