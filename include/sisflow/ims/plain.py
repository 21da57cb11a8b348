"""The fast way through a file: plain records recognised whole by regular expressions.

Nearly all of a file's rows are members written the one way every SIS writes them. Such a
<membership>, serialised by lxml (which normalises attribute quoting and drops comments), is
recognised whole by one regular expression and turned into COPY rows in C, without a Python
object per member. Anything else (another element, an attribute, whitespace around a value,
an escaped character, a line break, a member not seen yet, a duplicate, the group's second
<membership>) goes the straightforward way (:mod:`.elements`), which says what is wrong with it.
"""

from __future__ import annotations

import json
import re
from datetime import date

from .records import Group, Person
from .values import MAX_VALUE, _too_long

#: an id that needs no stripping, unescaping nor CSV quoting, within MAX_ID
_PLAIN_ID = r'[^\s<>&,"\\]{1,255}'
_PLAIN_SOURCEDID = r"<sourcedid>(?:<source>[^<&]*</source>)?<id>({})</id></sourcedid>"
_PLAIN_ROLE = r'<idtype>1</idtype><role roletype="({})"><status>({})</status></role>'
_PLAIN_MEMBER = re.compile(
    "<member>"
    + _PLAIN_SOURCEDID.format(_PLAIN_ID)
    + _PLAIN_ROLE.format("0[1-8]", "[01]")
    + "</member>"
)
_MEMBERSHIP_HEAD = re.compile(
    r'<membership(?: xmlns="[^"&<]*")?>' + _PLAIN_SOURCEDID.format(_PLAIN_ID) + "(?=<member>)"
)
#: what plain members become (see _member_rows); anything else left in them fails this
_PLAIN_ROWS = re.compile(rf"(?:\d+,,{_PLAIN_ID},{_PLAIN_ID},1,0[1-8],,[01],,,\r\n)+")
_ROW_MEMBER_ID = re.compile(r"^\d+,,[^,]*,([^,]*),", re.MULTILINE)


#: a value that needs no stripping nor unescaping (what ``_text`` would give unchanged)
_V = r"([^<&\s](?:[^<&]*[^<&\s])?)"
_PLAIN_PERSON = re.compile(
    r'<person(?: xmlns="[^"&<]*")?>'
    rf"<sourcedid>(?:<source>{_V}</source>)?<id>({_PLAIN_ID})</id></sourcedid>"
    r'((?:<userid(?: useridtype="[^"&<]*")?>[^<&]*</userid>)*)'
    rf"(?:<name>(?:<fn>{_V}</fn>)?(?:<n>(?:<family>{_V}</family>)?(?:<given>{_V}</given>)?"
    r"</n>)?</name>)?"
    rf"(?:<demographics>(?:<gender>{_V}</gender>)?(?:<bday>(\d{{4}}-\d\d-\d\d)</bday>)?"
    r"</demographics>)?"
    rf"(?:<email>{_V}</email>)?"
    r'(?:<institutionrole institutionroletype="([^"&<]*)"/>)?'
    r"</person>"
)
_PLAIN_USERID = re.compile(rf'<userid( useridtype="([^"&<]*)")?>{_V}</userid>')


#: ``json.dumps(..., ensure_ascii=False)`` without building an encoder per call: the JSON of
#: user ids, old ids and group types (tuples are written as arrays, as lists are)
_json = json.JSONEncoder(ensure_ascii=False).encode


def _plain_person(text: str, line: int) -> Person | None:
    """A plain person (its element as text) read by one regular expression, or None to read
    it the straightforward way (which also says what is wrong with it)."""
    whole = _PLAIN_PERSON.fullmatch(text)
    if whole is None:
        return None
    source, sid, userid_part, fn, family, given, gender, bday, email, role = whole.groups()
    if fn is None and family is None and given is None:
        return None  # the straightforward way warns about it
    if _too_long({"fn": fn, "family": family, "given": given, "email": email}):
        return None  # the straightforward way says which value
    if bday is not None:
        try:
            date.fromisoformat(bday)
        except ValueError:
            return None
    userids = None
    if userid_part:
        found = _PLAIN_USERID.findall(userid_part)
        if len(found) != userid_part.count("<userid") or any(
            len(value) > MAX_VALUE for _, _, value in found
        ):
            return None  # an empty, spaced or too long value: _text's business
        userids = _json([(kind if typed else None, value) for typed, kind, value in found])
    return Person(
        line, None, sid, source, None, userids, fn, family, given, email, bday, gender, role, None
    )


_PLAIN_GROUP = re.compile(
    r'<group(?: xmlns="[^"&<]*")?>'
    rf"<sourcedid>(?:<source>{_V}</source>)?<id>({_PLAIN_ID})</id></sourcedid>"
    r"((?:<grouptype>.*?</grouptype>)*)"
    rf"(?:<description>(?:<short>{_V}</short>)?(?:<long>{_V}</long>)?(?:<full>{_V}</full>)?"
    r"</description>)?"
    r'(?:<timeframe>(?:<begin(?: restrict="[01]")?>(\d{4}-\d\d-\d\d)</begin>)?'
    r'(?:<end(?: restrict="[01]")?>(\d{4}-\d\d-\d\d)</end>)?'
    r"(?:<adminperiod>[^<&]*</adminperiod>)?</timeframe>)?"
    r'(?:<relationship relation="1">'
    rf"<sourcedid>(?:<source>{_V}</source>)?<id>({_PLAIN_ID})</id></sourcedid>"
    r"(?:<label>[^<&]*</label>)?</relationship>)?"
    r"</group>"
)
_GROUPTYPE = (
    rf'<grouptype>(?:<scheme>{_V}</scheme>)?<typevalue( level="([^"&<]*)")?>{_V}'
    r"</typevalue></grouptype>"
)
_PLAIN_GROUPTYPE = re.compile(_GROUPTYPE)
_PLAIN_GROUPTYPES = re.compile(f"(?:{_GROUPTYPE})+")


def _plain_group(text: str, line: int) -> Group | None:
    """A plain group (its element as text) read by regular expressions, or None to read it
    the straightforward way."""
    whole = _PLAIN_GROUP.fullmatch(text)
    if whole is None:
        return None
    source, sid, type_part, short, long, full, begin, end, _parent_source, parent = whole.groups()
    if _too_long({"short": short, "long": long}):
        return None
    try:
        for day in (begin, end):
            if day is not None:
                date.fromisoformat(day)
    except ValueError:
        return None
    types = None
    grouptype = None
    if type_part:
        if not _PLAIN_GROUPTYPES.fullmatch(type_part):
            return None
        found = _PLAIN_GROUPTYPE.findall(type_part)
        grouptype = found[0][3]
        types = _json(
            [
                (scheme or None, value, level if has_level else None)
                for scheme, has_level, level, value in found
            ]
        )
    if parent == sid:
        parent = None
    return Group(
        line, None, sid, source, grouptype, types, short, long, full, begin, end, parent, None
    )


_PLAIN_READERS = {"person": _plain_person, "group": _plain_group}
#: what a record without a key could be, in words
_COULD_BE = {
    "person": "person or membership of a person",
    "group": "group or membership",
    "membership": "membership",
}


_FIRST_MEMBER = re.compile(r"<member><sourcedid>(?:<source>[^<&]*</source>)?<id>")


def _member_rows(members: str, head: str) -> str | None:
    """COPY rows (line, recstatus, group_id, member_id, idtype, roletype, subrole, status,
    begin, end, extension; csv.writer's line ending, as COPY wants one kind) of plain members,
    or None when they are not all plain. Members of one source, as nearly always, are
    rewritten by ``str.replace`` in C; what is left must be rows and nothing else."""
    first = _FIRST_MEMBER.match(members)
    if first is None:
        return None
    rows = (
        members.replace(first.group(), head)
        .replace('</id></sourcedid><idtype>1</idtype><role roletype="', ",1,")
        .replace('"><status>', ",,")
        .replace("</status></role></member>", ",,,\r\n")
    )
    if _PLAIN_ROWS.fullmatch(rows):
        return rows
    if "<" not in rows:
        return None
    # members of several sources
    found = _PLAIN_MEMBER.findall(members)
    rows = "".join([f"{head}{i},1,{r},,{st},,,\r\n" for i, r, st in found])
    return rows if _PLAIN_ROWS.fullmatch(rows) and len(found) == members.count("<member>") else None


class MembershipRows(str):
    """Staging rows (COPY csv) of one plain <membership>: what the straightforward reading
    would give as Membership records, in the same columns."""


class ReadAgain(Exception):
    """The file must be read again, a slower way: it is not of the shape the scan reads
    (with lxml, then), or a group's memberships came in two elements and the first went the
    fast way, so its keys were not kept for the duplicate check (``straightforward``), or a
    record taken as unchanged gave what it gives no more (``every_record``: read again as
    before, but every record of it)."""

    def __init__(self, why: str, *, straightforward: bool = False, every_record: bool = False):
        super().__init__(why)
        self.straightforward = straightforward
        self.every_record = every_record
