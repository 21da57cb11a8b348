"""Streaming reader for IMS Enterprise 1.1 and its Norwegian profile PIFU-IMS 1.1-1.3.

A school owner's export can hold a million memberships, so the file is read once and every
record is let go as soon as it is turned into a tuple: memory stays flat as the file grows. A
fast reader scans the records' text (:mod:`.scan`) and hands lxml only the records that are
not plain, or the whole file when the scan is unsure; otherwise lxml's ``iterparse`` reads it,
clearing each record element. The same single pass computes the file's size and sha256.

Namespaces are ignored (no namespace, the PIFU namespaces and the IMS ones are all seen in the
wild); the encoding is whatever the XML declaration says. No DTD is loaded, no entity is
resolved and no network is touched.

What is fatal (the file is rejected whole and nothing is staged):
  - the file is empty, not well-formed, or its root is not ``<enterprise>``;
  - it has no ``<properties>`` before its first record, or ``properties/type`` is not
    full, delta or event;
  - a full file with no person, group or membership at all (staging it would remove
    everything; delta files may be empty).
What skips one record, listed with id, line and reason (the rest of the file goes on):
  - a missing sourcedid (record, member or parent), a duplicate id, an invalid date,
    an unknown roletype, idtype, status or recstatus;
  - in full files, a membership naming a person or group that is not in the file (or was
    itself skipped). Delta files refer to what already exists, so that check is made
    against the import database when the file is staged.
What is a warning (kept as it is): a person without a name, a group whose parent is not in a
full file, ``recstatus="3"`` in a full file (the record is treated as absent, so skipped), a
missing ``properties/type`` (taken as full).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator
from datetime import date, datetime

from lxml import etree

from .records import (
    FILE_TYPES,
    ROLE_TYPES,
    FatalFileError,
    FileInfo,
    Group,
    Membership,
    Person,
    Problem,
    Properties,
    ValidationResult,
)
from .scan import LXML_OPTIONS, MAX_RECORD, Scanner, TooLarge, Unscannable

_RECORD_TAGS = ("{*}properties", "{*}person", "{*}group", "{*}membership")

# -- the plain membership ----------------------------------------------------------------------
# Nearly all of a file's rows are members written the one way every SIS writes them. Such a
# <membership>, serialised by lxml (which normalises attribute quoting and drops comments), is
# recognised whole by one regular expression and turned into COPY rows in C, without a Python
# object per member. Anything else (another element, an attribute, whitespace around a value,
# an escaped character, a line break, a member not seen yet, a duplicate, the group's second
# <membership>) goes the straightforward way, which says what is wrong with it.

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
    fast way, so its keys were not kept for the duplicate check (``straightforward``)."""

    def __init__(self, why: str, *, straightforward: bool = False):
        super().__init__(why)
        self.straightforward = straightforward


_ROLETYPE_ALIASES = {str(i): f"{i:02d}" for i in range(1, 9)}  # "1" -> "01", seen in the wild


_LOCAL_NAMES: dict[str, str] = {}


def _local(tag) -> str:
    """The tag without its namespace. Cached: a file uses a handful of tags a million times."""
    try:
        return _LOCAL_NAMES[tag]
    except (KeyError, TypeError):
        if not isinstance(tag, str):
            return ""  # an unresolved entity reference or similar node
        name = _LOCAL_NAMES[tag] = tag[tag.rfind("}") + 1 :]
        return name


def _text(el) -> str | None:
    if len(el):  # a value holds text only; an entity reference is a node of its own
        _no_entities(el)
    t = el.text
    if t is None:
        return None
    t = t.strip()
    return t or None


class EntityInValue(ValueError):
    """An entity reference in a value: never resolved, so the value cannot be read."""


def _no_entities(el) -> None:
    for child in el:
        if child.tag is etree.Entity:
            raise EntityInValue(f"entity reference {child.text} in <{_local(el.tag)}>")


def _check_date(value: str | None) -> str | None:
    """An ISO date (xs:date, optionally with time zone or time) -> 'YYYY-MM-DD'; ValueError else."""
    if value is None:
        return None
    day = date.fromisoformat(value[:10])
    if len(value) > 10 and value[10] not in "TZ+-":
        raise ValueError(value)
    return day.isoformat()


#: declarations of a one-byte encoding, whose files must not hold UTF-8 sequences
_SINGLE_BYTE = {
    "iso-8859-1",
    "iso8859-1",
    "latin1",
    "latin-1",
    "iso-8859-15",
    "windows-1252",
    "cp1252",
}
_DECLARATION = re.compile(rb"""^(?:\xef\xbb\xbf)?<\?xml[^>]*encoding\s*=\s*["']([^"']+)["']""")
#: a valid multi-byte UTF-8 sequence: in text declared ISO-8859-1 it reads as "Ã¸" and the like
_UTF8_SEQUENCE = re.compile(
    rb"[\xc2-\xdf][\x80-\xbf]|\xe0[\xa0-\xbf][\x80-\xbf]|[\xe1-\xec\xee\xef][\x80-\xbf]{2}"
    rb"|\xed[\x80-\x9f][\x80-\xbf]|\xf0[\x90-\xbf][\x80-\xbf]{2}|[\xf1-\xf3][\x80-\xbf]{3}"
    rb"|\xf4[\x80-\x8f][\x80-\xbf]{2}"
)


#: words other systems write into IMS Enterprise 1.1's free-text properties/type
_FULL_WORDS = ("snapshot", "full", "complete")
_DELTA_WORDS = ("update", "increment", "delta", "change")


def file_type_of(text: str | None) -> str | None:
    """full, delta or event from properties/type as written ("Snapshot", "DATABASE UPDATE",
    "DB Increment", ...); None when the text says none of them."""
    word = (text or "").strip().lower()
    if word in FILE_TYPES:
        return word
    if not word:
        return None
    if "event" in word:
        return "event"
    if any(w in word for w in _FULL_WORDS):
        return "full"
    if any(w in word for w in _DELTA_WORDS):
        return "delta"
    return None


class _HashingReader:
    """A binary file that hashes and counts what passes through it, so one pass does both;
    for a file declared in a one-byte encoding it also finds the first UTF-8 sequence
    (``utf8_line``): bytes that contradict the declaration."""

    def __init__(self, f):
        self._f = f
        self.sha256 = hashlib.sha256()
        self.size = 0
        self.declared: str | None = None
        self.utf8_line: int | None = None
        self._single_byte = False
        self._lines = 1
        self._tail = b""
        #: where the last record ended: lxml may read at most MAX_RECORD bytes past it (one
        #: record, or the space between two), so its tree stays bounded whatever the file holds
        self.record_end: int | None = None

    def read(self, n: int = -1) -> bytes:
        if self.record_end is not None and self.size - self.record_end > MAX_RECORD:
            self.record_end = None  # said once: lxml may read on as it unwinds
            raise TooLarge(None, "a record, or the space after the last one,")
        data = self._f.read(n)
        if self.size == 0 and data:
            found = _DECLARATION.match(data[:200])
            self.declared = found.group(1).decode("ascii", "replace").lower() if found else None
            self._single_byte = self.declared in _SINGLE_BYTE
        if self._single_byte and self.utf8_line is None:
            window = self._tail + data
            hit = _UTF8_SEQUENCE.search(window)
            if hit:
                self.utf8_line = (
                    self._lines + window.count(b"\n", 0, hit.start()) - self._tail.count(b"\n")
                )
            else:
                self._lines += data.count(b"\n")
                self._tail = data[-3:]
        self.sha256.update(data)
        self.size += len(data)
        return data

    def drain(self) -> None:
        self.record_end = None  # only hashed, never held
        while self.read(1 << 20):
            pass


#: the longest id taken: an index entry of the import database holds two ids of at most four
#: bytes a character comfortably; real ids are far shorter
MAX_ID = 255
#: the longest name, email, user id or group title taken: what LMSs hold in such a field (a
#: longer one would be cut or refused there, one record at a time)
MAX_VALUE = 255


def _too_long(values: dict) -> str | None:
    """The first value over :data:`MAX_VALUE`, as a record's problem."""
    for name, value in values.items():
        if value is not None and len(value) > MAX_VALUE:
            return f"{name} of {len(value)} characters is longer than the LMS takes ({MAX_VALUE})"
    return None


def _check_id(value: str) -> None:
    if len(value) > MAX_ID:
        raise _BadRecord(
            f"id of {len(value)} characters is longer than {MAX_ID}",
            f"{value[:40]}...",
            identified=False,
        )


class _BadRecord(Exception):
    """``identified``: False when the record's own key cannot be read (missing, empty, too
    long): ``record_id`` is then only something to show."""

    def __init__(self, reason: str, record_id: str | None = None, *, identified: bool = True):
        super().__init__(reason)
        self.reason, self.record_id, self.identified = reason, record_id, identified


class ImsReader:
    """Iterate over the good records of one file; ``result`` holds what was found on the way.

    Iterating raises :class:`FatalFileError` (and sets ``result.fatal``) when the file is
    rejected; a consumer must then throw away whatever it has taken so far.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        max_examples: int = 10_000,
        default_type: str = "full",
        fast: bool = False,
        scan: bool | None = None,
    ):
        """``default_type``: what a missing or unknown ``properties/type`` means (the
        customer's ``file_type``; full by default, the PIFU rule). ``fast``: plain records
        are read by regular expressions, and plain memberships are given as
        :class:`MembershipRows` (staging only); iterating may then raise :class:`ReadAgain`,
        after which :meth:`read_again` starts over. ``scan`` (the default when fast): the
        records' text is found without lxml (:mod:`.scan`), which parses only the records
        that are not plain."""
        self.path = os.fspath(path)
        self.default_type = default_type
        self.max_examples = max_examples
        self.fast = fast
        self.scan = fast if scan is None else scan
        self._offset = 0  # the line of a record's text, less one, when lxml parsed that text
        self._membership_groups: set[str] = set()  # groups seen in a <membership>
        self._fast_groups: set[str] = set()  # ... of those, the ones read the fast way
        self.plain = {"person": 0, "group": 0, "membership": 0}  # records read the fast way
        self.result = ValidationResult(
            FileInfo(path=self.path, name=os.path.basename(self.path)), max_examples=max_examples
        )
        self.file_type: str | None = None
        self._persons: set[str] = set()
        self._groups: set[str] = set()
        self._skipped_ids: dict[tuple[str, str], int] = {}  # (entity, id) -> line
        self._interned: dict[str, int] = {}  # interned ids: membership keys as exact small ints
        self._membership_keys: set[int] = set()
        self._deferred: list[Membership] = []
        self._parents: list[tuple[str, str, int]] = []

    def read_again(self, why: ReadAgain) -> None:
        """Start over the slower way ``why`` asks for: lxml's parse of the whole file, or
        every record the straightforward way."""
        fast = self.fast and not why.straightforward
        self.__init__(
            self.path,
            max_examples=self.max_examples,
            default_type=self.default_type,
            fast=fast,
            scan=False,
        )

    # -- the pass over the file ------------------------------------------------------------

    def __iter__(self) -> Iterator[Person | Group | Membership]:
        info = self.result.file
        with open(self.path, "rb") as raw:
            info.size = os.fstat(raw.fileno()).st_size
            if info.size == 0:
                self._fatal(None, "the file is empty")
            hashing = _HashingReader(raw)
            try:
                yield from (self._scanned if self.scan else self._parsed)(hashing)
            finally:  # a rejected file is still identified by its checksum
                hashing.drain()
                info.sha256 = hashing.sha256.hexdigest()
        if self.result.properties is None:
            self._fatal(None, "no <properties> element")
        yield from self._finish()

    def _parsed(self, hashing: _HashingReader) -> Iterator[Person | Group | Membership]:
        """The records as lxml's ``iterparse`` finds them, each element cleared once read."""
        context = etree.iterparse(hashing, events=("end",), tag=_RECORD_TAGS, **LXML_OPTIONS)
        root = None
        line = None
        hashing.record_end = 0
        try:
            for _event, el in context:
                hashing.record_end, line = hashing.size, el.sourceline
                parent = el.getparent()
                if root is None:
                    root = parent
                    self._check_root(root)
                if parent is not root:
                    continue  # a record-named element nested deeper (e.g. in an extension)
                if hashing.utf8_line is not None:
                    self._encoding_contradicted(hashing)
                records = self._record(_local(el.tag), el.sourceline, el)
                el.clear(keep_tail=False)
                while el.getprevious() is not None:
                    del root[0]
                yield from records
        except etree.XMLSyntaxError as err:
            line = err.position[0] if err.position else err.lineno
            self._fatal(line, f"not well-formed XML: {err.msg}")
        except TooLarge as err:
            self._fatal(line, str(err))
        hashing.drain()  # bytes that contradict the encoding may follow the last record
        if root is None:
            self._check_root(context.root)
        if hashing.utf8_line is not None:
            self._encoding_contradicted(hashing)

    def _scanned(self, hashing: _HashingReader) -> Iterator[Person | Group | Membership]:
        """The records of a file of the simple shape (see :mod:`.scan`); :class:`ReadAgain`
        with lxml when it is not."""
        scanner = Scanner(hashing)
        try:
            for kind, line, text in scanner:
                if kind == "properties" or "\n" in text or "\t" in text:
                    # a line break or tab: the lines, or a value, would differ from lxml's
                    records = self._record(kind, line, self._parsed_text(scanner, text, line))
                else:
                    records = self._record(kind, line, None, text, scanner)
                yield from records
        except Unscannable as why:
            raise ReadAgain(f"read with lxml: {why}") from None
        except TooLarge as err:
            self._fatal(err.line, str(err))

    def _parsed_text(self, scanner: Scanner, text: str, line: int):
        """One record's text parsed by lxml as the whole file would have been."""
        element = scanner.parse(text, line)
        self._offset = line - 1
        return element

    def _check_root(self, root) -> None:
        if root is None or _local(root.tag) != "enterprise":
            name = _local(root.tag) if root is not None else None
            self._fatal(
                root.sourceline if root is not None else None,
                f"the root element is <{name}>, expected <enterprise>",
            )

    def _encoding_contradicted(self, hashing: _HashingReader):
        self._fatal(
            hashing.utf8_line,
            f"the file declares {hashing.declared.upper()} but holds UTF-8 byte sequences"
            " (its letters would be imported garbled, e.g. 'Ã¸' for 'ø'): ask for an"
            " export whose XML declaration says UTF-8, or written in ISO-8859-1",
        )

    def _fatal(self, line: int | None, reason: str):
        self.result.fatal = Problem("file", None, line, reason)
        raise FatalFileError(self.path, line, reason)

    def _record(
        self, kind: str, line: int, el, text: str | None = None, scanner: Scanner | None = None
    ) -> list[Person | Group | Membership]:
        """The good records of one top-level element (a list: one call per element is
        cheaper than a generator per level, and a membership element holds many rows).
        The element is ``el``, or only its ``text`` as written, which lxml parses when it is
        not plain."""
        if self.fast and text is None:
            text = etree.tostring(el, encoding="unicode", with_tail=False)
        if kind == "membership":
            if self.result.properties is None:
                self._fatal(line, "<membership> before <properties>: properties must come first")
            if self.fast:
                rows = self._plain_membership(text, line, el)
                if rows is not None:
                    return rows
            if el is None:
                el = self._parsed_text(scanner, text, line)
            return self._membership(el, line)
        if kind == "properties":
            self._properties(el, line)
            return []
        if self.result.properties is None:
            self._fatal(line, f"<{kind}> before <properties>: properties must come first")
        self.result.records[kind] += 1
        seen = self._persons if kind == "person" else self._groups
        record = self.fast and _PLAIN_READERS[kind](text, line)
        if record:  # a plain record has no recstatus
            self.plain[kind] += 1
            recstatus = None
        else:
            if el is None:
                el = self._parsed_text(scanner, text, line)
            try:
                recstatus, record = self._read(kind, el, line)
            except _BadRecord as bad:
                record_id = (bad.record_id or self._peek_id(el)) if bad.identified else None
                self._problem(kind, record_id or bad.record_id, line, bad.reason)
                if record_id:
                    self._skipped_ids.setdefault((kind, record_id), line)
                    self.result.keep(kind, record_id, None, line, bad.reason)
                else:
                    self._keep_unidentified(kind, None, line, bad.reason)
                return []
            if record is None:
                return []
        if record.sourcedid in seen:
            self._problem(kind, record.sourcedid, line, "duplicate id: the first one is kept")
            return []
        if recstatus == 3 and self.file_type == "full":
            self._problem(
                kind,
                record.sourcedid,
                line,
                "recstatus 3 (delete) in a full file: treated as absent",
                severity="warning",
            )
            self.result.skipped[kind] += 1
            self._skipped_ids.setdefault((kind, record.sourcedid), line)
            return []
        seen.add(record.sourcedid)
        if kind == "group" and record.parent_id:
            self._parents.append((record.sourcedid, record.parent_id, line))
        return [record]

    def _read(self, kind: str, el, line: int) -> tuple[int | None, Person | Group | None]:
        """A person or group the straightforward way: its recstatus and the record (None when
        it cannot be identified)."""
        recstatus = self._recstatus(el)
        try:
            record_id = self._peek_id(el)
        except EntityInValue as err:
            return recstatus, self._unidentified(kind, line, str(err)) or None
        try:
            if kind == "person":
                return recstatus, self._person(el, line, recstatus)
            return recstatus, self._group(el, line, recstatus)
        except EntityInValue as err:
            raise _BadRecord(f"{err}: the value cannot be read", record_id) from None

    def _finish(self) -> Iterator[Membership]:
        result = self.result
        if self.file_type == "full":
            if not any(result.records.values()):
                self._fatal(None, "a full file with no records: it would remove everything")
            for group_id, parent_id, line in self._parents:
                if parent_id not in self._groups:
                    self._problem(
                        "group",
                        group_id,
                        line,
                        f"parent '{parent_id}' is not in the file",
                        severity="warning",
                    )
        deferred, self._deferred = self._deferred, []
        for m in deferred:
            reason = self._unknown_reference(m)
            if reason:
                self._problem("membership", f"{m.group_id}/{m.member_id}", m.line, reason)
            elif self._first_key(m):
                yield m

    # -- properties ------------------------------------------------------------------------

    def _properties(self, el, line: int) -> None:
        values: dict[str, str | None] = {}
        for c in el:
            name = _local(c.tag)
            if name in ("datasource", "target", "type", "datetime", "comments"):
                try:
                    values.setdefault(name, _text(c))
                except EntityInValue as err:
                    self._fatal(line, f"properties: {err}")
        file_type = file_type_of(values.get("type"))
        if file_type is None:
            file_type = self.default_type
            said = f"'{values['type']}' is not a known type" if values.get("type") else "is missing"
            self._problem(
                "file",
                None,
                line,
                f"properties/type {said}: taken as {file_type} (the customer's file_type)",
                severity="warning",
            )
        elif values["type"].strip().lower() not in FILE_TYPES:
            self._problem(
                "file",
                None,
                line,
                f"properties/type '{values['type']}' read as {file_type}",
                severity="warning",
            )
        stamp = values.get("datetime")
        if stamp:
            try:
                datetime.fromisoformat(stamp.replace("Z", "+00:00"))
            except ValueError:
                self._problem(
                    "file",
                    None,
                    line,
                    f"properties/datetime '{stamp}' is not ISO 8601",
                    severity="warning",
                )
        self.file_type = file_type
        self.result.properties = Properties(
            datasource=values.get("datasource"),
            target=values.get("target"),
            type=file_type,
            datetime=stamp,
            lang=el.get("lang"),
            comments=values.get("comments"),
        )

    # -- persons and groups ----------------------------------------------------------------

    def _unidentified(self, kind: str, line: int, reason: str) -> list:
        """A record whose id cannot be read: in a full file its absence would delete the record
        it names, so the file is rejected; in a delta file the record is skipped."""
        if self.file_type == "full":
            self._fatal(
                line,
                f"{kind}: {reason}: the record cannot be identified, and a full"
                " file without it would remove it",
            )
        self._problem(kind, None, line, f"{reason}: the record cannot be identified")
        return []

    def _keep_unidentified(self, kind: str, group_id: str | None, line: int, reason: str) -> None:
        """A record whose key cannot be read may be any record the file leaves out: in a full
        file, every removal it could explain is kept back for this run (no id: every
        ``kind``; a member without one: every member of ``group_id``)."""
        if self.file_type == "full":
            self.result.keep(
                kind,
                group_id,
                None,
                line,
                f"{reason}: no {_COULD_BE[kind] if group_id is None else 'member'}"
                " is removed in this run, since it could be any of them",
            )

    def _peek_id(self, el) -> str | None:
        """The record's current id, when a problem was found before it was read."""
        ids = [
            (c.get("sourcedidtype"), *self._sourcedid(c))
            for c in el
            if _local(c.tag) == "sourcedid"
        ]
        try:
            return self._current_id(ids, "record")[1]
        except _BadRecord:
            return None

    @staticmethod
    def _recstatus(el) -> int | None:
        value = el.get("recstatus")
        if value is None:
            return None
        if value.strip() not in ("1", "2", "3"):
            raise _BadRecord(f"recstatus '{value}' is not 1, 2 or 3")
        return int(value)

    @staticmethod
    def _sourcedid(el) -> tuple[str | None, str | None]:
        source = sid = None
        for c in el:
            name = _local(c.tag)
            if name == "id":
                sid = _text(c)
            elif name == "source":
                source = _text(c)
        return source, sid

    def _current_id(self, ids: list, what: str) -> tuple[str | None, str]:
        """Pick the current sourcedid: the one marked New, else the first that is not Old."""
        current = [i for i in ids if i[0] != "Old" and i[2]]
        if not current:
            raise _BadRecord(f"{what} has no sourcedid/id", identified=False)
        chosen = next((i for i in current if i[0] == "New"), current[0])
        _check_id(chosen[2])
        return chosen[1], chosen[2]

    def _person(self, el, line: int, recstatus: int | None) -> Person:
        ids, userids = [], []
        fn = family = given = email = bday = gender = role = extension = None
        for c in el:
            name = _local(c.tag)
            if name == "sourcedid":
                ids.append((c.get("sourcedidtype"), *self._sourcedid(c)))
            elif name == "userid":
                userids.append([c.get("useridtype"), _text(c)])
            elif name == "name":
                for n in c:
                    nname = _local(n.tag)
                    if nname == "fn":
                        fn = _text(n)
                    elif nname == "n":
                        for part in n:
                            pname = _local(part.tag)
                            if pname == "family":
                                family = _text(part)
                            elif pname == "given":
                                given = _text(part)
            elif name == "demographics":
                for d in c:
                    dname = _local(d.tag)
                    if dname == "bday":
                        bday = _text(d)
                    elif dname == "gender":
                        gender = _text(d)
            elif name == "email":
                email = _text(c)
            elif name == "institutionrole":
                role = c.get("institutionroletype")
            elif name == "extension":
                extension = etree.tostring(c, encoding="unicode", with_tail=False)
        source, sid = self._current_id(ids, "person")
        too_long = _too_long(
            {
                "name/fn": fn,
                "name/n/family": family,
                "name/n/given": given,
                "email": email,
                **{f"userid {i + 1}": v for i, (_, v) in enumerate(userids)},
            }
        )
        if too_long:
            raise _BadRecord(too_long, sid)
        try:
            bday = _check_date(bday)
        except ValueError:
            raise _BadRecord("invalid date in demographics/bday", sid) from None
        if fn is None and family is None and given is None and recstatus != 3:
            self._problem("person", sid, line, "no name", severity="warning")
        old = [i[2] for i in ids if i[0] == "Old" and i[2]]
        return Person(
            line,
            recstatus,
            sid,
            source,
            _json(old) if old else None,
            _json(userids) if userids else None,
            fn,
            family,
            given,
            email,
            bday,
            gender,
            role,
            extension,
        )

    def _group(self, el, line: int, recstatus: int | None) -> Group:
        ids, types = [], []
        short = long = full = begin = end = parent = extension = None
        for c in el:
            name = _local(c.tag)
            if name == "sourcedid":
                ids.append((c.get("sourcedidtype"), *self._sourcedid(c)))
            elif name == "grouptype":
                scheme = value = level = None
                for t in c:
                    tname = _local(t.tag)
                    if tname == "scheme":
                        scheme = _text(t)
                    elif tname == "typevalue":
                        value, level = _text(t), t.get("level")
                types.append([scheme, value, level])
            elif name == "description":
                for d in c:
                    dname = _local(d.tag)
                    if dname == "short":
                        short = _text(d)
                    elif dname == "long":
                        long = _text(d)
                    elif dname == "full":
                        full = _text(d)
            elif name == "timeframe":
                begin, end = self._timeframe(c)
            elif name == "relationship" and c.get("relation") == "1":
                for r in c:
                    if _local(r.tag) == "sourcedid":
                        parent = self._sourcedid(r)[1]
                if parent is None:
                    ids_so_far = [i for i in ids if i[2]]
                    raise _BadRecord(
                        "parent relationship has no sourcedid/id",
                        ids_so_far[0][2] if ids_so_far else None,
                    )
            elif name == "extension":
                extension = etree.tostring(c, encoding="unicode", with_tail=False)
        source, sid = self._current_id(ids, "group")
        if begin == "invalid" or end == "invalid":
            raise _BadRecord("invalid date in timeframe", sid)
        too_long = _too_long({"description/short": short, "description/long": long})
        if too_long:
            raise _BadRecord(too_long, sid)
        if parent == sid:
            parent = None  # a top-level organisation names itself as its parent
        grouptype = types[0][1] if types else None
        return Group(
            line,
            recstatus,
            sid,
            source,
            grouptype,
            _json(types) if types else None,
            short,
            long,
            full,
            begin,
            end,
            parent,
            extension,
        )

    @staticmethod
    def _timeframe(el) -> tuple[str | None, str | None]:
        begin = end = None
        for t in el:
            tname = _local(t.tag)
            if tname in ("begin", "end"):
                try:
                    value = _check_date(_text(t))
                except ValueError:
                    value = "invalid"
                if tname == "begin":
                    begin = value
                else:
                    end = value
        return begin, end

    # -- memberships -----------------------------------------------------------------------

    def _plain_membership(self, text: str, line: int, el) -> list[MembershipRows] | None:
        """The rows of a plain <membership> in a full file (its text as written, or ``el``
        serialised), or None to read it the straightforward way."""
        if self.file_type != "full":
            return None
        if "\n" in text:  # a pretty-printed file: its members' lines differ
            return None
        whole = _MEMBERSHIP_HEAD.match(text)
        if whole is None or not text.endswith("</member></membership>"):
            return None
        group_id = whole.group(1)
        if group_id not in self._groups or group_id in self._membership_groups:
            return None
        rows = _member_rows(text[whole.end() : -len("</membership>")], f"{line},,{group_id},")
        # a line break inside a tag is lost in serialisation: the last role must be on the
        # element's line, so every member's line is the element's
        if rows is None or el is not None and el[-1][-1].sourceline + self._offset != line:
            return None
        ids = _ROW_MEMBER_ID.findall(rows)
        # a member twice (two roles) or not seen yet: the straightforward way keeps the keys
        if len(set(ids)) != len(ids) or not self._persons.issuperset(ids):
            return None
        self._membership_groups.add(group_id)
        self._fast_groups.add(group_id)
        self.result.records["membership"] += len(ids)
        self.plain["membership"] += len(ids)
        return [MembershipRows(rows)]

    def _membership(self, el, line: int) -> list[Membership]:
        group_id = None
        for c in el:
            if _local(c.tag) == "sourcedid":
                try:
                    group_id = self._sourcedid(c)[1]
                except EntityInValue as err:
                    return self._unidentified("membership", line, f"group {err}")
                break
        if group_id is None:
            self._problem("membership", None, line, "membership has no sourcedid/id")
            self._keep_unidentified("membership", None, line, "membership has no sourcedid/id")
            return []
        try:
            _check_id(group_id)
        except _BadRecord as bad:
            self._problem("membership", bad.record_id, line, bad.reason)
            self._keep_unidentified("membership", None, line, f"membership: {bad.reason}")
            return []
        if group_id in self._fast_groups:
            raise ReadAgain(
                f"line {line}: group '{group_id}' has a second <membership>", straightforward=True
            )
        self._membership_groups.add(group_id)
        rows: list[Membership] = []
        # in full files, a member not seen yet waits for the end of the file
        check_refs = self.file_type == "full"
        group_known = group_id in self._groups
        persons, groups, first_key = self._persons, self._groups, self._first_key
        for member in el:
            if _local(member.tag) != "member":
                continue
            for m in self._member(member, group_id):
                if check_refs and not (
                    group_known and m.member_id in (persons if m.idtype == 1 else groups)
                ):
                    self._deferred.append(m)
                elif first_key(m):
                    rows.append(m)
        return rows

    def _member(self, member, group_id: str) -> list[Membership]:
        member_line = member.sourceline + self._offset
        member_id = None
        idtype = "1"
        roles = []
        for c in member:
            name = _local(c.tag)
            if name == "sourcedid":
                for part in c:
                    if _local(part.tag) == "id":
                        try:
                            member_id = _text(part)
                        except EntityInValue as err:
                            return self._unidentified(
                                "membership", member_line, f"member of '{group_id}': {err}"
                            )
            elif name == "idtype":
                try:
                    idtype = _text(c) or "1"
                except EntityInValue:
                    idtype = "?"
            elif name == "role":
                roles.append(c)
        self.result.records["membership"] += len(roles) or 1
        if member_id is not None and len(member_id) > MAX_ID:
            reason = f"id of {len(member_id)} characters is longer than {MAX_ID}"
            self._problem("membership", f"{group_id}/{member_id[:40]}...", member_line, reason)
            self._keep_unidentified("membership", group_id, member_line, f"member: {reason}")
            return []
        if member_id is not None and idtype in ("1", "2") and not roles:
            reason = "member has no role"
            self._problem("membership", f"{group_id}/{member_id}", member_line, reason)
            self.result.keep("membership", group_id, member_id, member_line, reason)
            return []
        if member_id is None:
            self._problem("membership", f"{group_id}/?", member_line, "member has no sourcedid/id")
            self._keep_unidentified(
                "membership", group_id, member_line, "member has no sourcedid/id"
            )
            return []
        if idtype not in ("1", "2"):
            self._problem(
                "membership",
                f"{group_id}/{member_id}",
                member_line,
                f"idtype '{idtype}' is not 1 or 2",
            )
            return []
        out = []
        for role in roles:
            try:
                try:
                    m = self._role(role, group_id, member_id, 1 if idtype == "1" else 2)
                except EntityInValue as err:
                    raise _BadRecord(f"{err}: the value cannot be read") from None
            except _BadRecord as bad:
                self._problem(
                    "membership",
                    f"{group_id}/{member_id}",
                    role.sourceline + self._offset,
                    bad.reason,
                )
                self.result.keep(
                    "membership", group_id, member_id, role.sourceline + self._offset, bad.reason
                )
                continue
            if m.recstatus == 3 and self.file_type == "full":
                self._problem(
                    "membership",
                    f"{group_id}/{member_id}",
                    m.line,
                    "role recstatus 3 (delete) in a full file: treated as absent",
                    severity="warning",
                )
                continue
            out.append(m)
        return out

    def _role(self, role, group_id: str, member_id: str, idtype: int) -> Membership:
        raw_type = (role.get("roletype") or "").strip()
        roletype = _ROLETYPE_ALIASES.get(raw_type, raw_type)
        if roletype not in ROLE_TYPES:
            raise _BadRecord(f"unknown roletype '{raw_type}'")
        recstatus = self._recstatus(role)
        status, subrole, begin, end, extension = 1, None, None, None, None
        for c in role:
            name = _local(c.tag)
            if name == "status":
                value = _text(c)
                if value not in ("0", "1"):
                    raise _BadRecord(f"status '{value}' is not 0 or 1")
                status = int(value)
            elif name == "subrole":
                subrole = _text(c)
            elif name == "timeframe":
                begin, end = self._timeframe(c)
                if begin == "invalid" or end == "invalid":
                    raise _BadRecord("invalid date in role timeframe")
            elif name == "extension":
                extension = etree.tostring(c, encoding="unicode", with_tail=False)
        return Membership(
            role.sourceline + self._offset,
            recstatus,
            group_id,
            member_id,
            idtype,
            roletype,
            subrole,
            status,
            begin,
            end,
            extension,
        )

    def _unknown_reference(self, m: Membership) -> str | None:
        if m.group_id not in self._groups:
            return self._missing("group", m.group_id)
        member_kind = "person" if m.idtype == 1 else "group"
        known = self._persons if m.idtype == 1 else self._groups
        if m.member_id not in known:
            return self._missing(member_kind, m.member_id)
        return None

    def _missing(self, kind: str, rid: str) -> str:
        skipped_at = self._skipped_ids.get((kind, rid))
        if skipped_at:
            return f"names {kind} '{rid}', which was skipped (line {skipped_at})"
        return f"unknown {kind} '{rid}'"

    def _first_key(self, m: Membership) -> bool:
        """Record the membership's key; False (and a problem) when the key was seen before."""
        ids = self._interned
        g = ids.setdefault(m.group_id, len(ids))
        p = ids.setdefault(m.member_id, len(ids))
        key = (((g << 32) | p) << 8 | int(m.roletype)) << 1 | (m.idtype - 1)
        if key in self._membership_keys:
            self._problem(
                "membership",
                f"{m.group_id}/{m.member_id}",
                m.line,
                f"duplicate membership (roletype '{m.roletype}'): the first one is kept",
            )
            return False
        self._membership_keys.add(key)
        return True

    def _problem(self, entity, record_id, line, reason, severity="error") -> None:
        self.result.add(Problem(entity, record_id, line, reason, severity))


def validate(path: str | os.PathLike, *, max_examples: int = 10_000) -> ValidationResult:
    """Read a whole file and return what was found, without staging anything."""
    reader = ImsReader(path, max_examples=max_examples)
    try:
        for _record in reader:
            pass
    except FatalFileError:
        pass
    return reader.result
