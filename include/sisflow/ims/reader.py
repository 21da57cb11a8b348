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
missing or unknown ``properties/type`` (taken as the customer's ``file_type``, full unless it
says otherwise).

The reader is in parts: :mod:`.scan` finds the records' text, :mod:`.plain` reads the plain
ones by regular expressions, :mod:`.elements` and :mod:`.memberships` read a record's element
the straightforward way, :mod:`.values` checks values and counts the file's bytes; this module
is the pass.
"""

from __future__ import annotations

import os
from array import array
from collections.abc import Iterator
from datetime import datetime

from lxml import etree

from .digests import Digests, digest
from .memberships import MembershipReading
from .plain import _PLAIN_READERS, MembershipRows, ReadAgain
from .records import (
    FILE_TYPES,
    RECSTATUS_DELETE,
    FatalFileError,
    FileInfo,
    Group,
    Membership,
    Person,
    Properties,
    ValidationResult,
)
from .scan import LXML_OPTIONS, Scanner, TooLarge, Unscannable, text_of
from .values import (
    EntityInValue,
    _BadRecord,
    _HashingReader,
    _local,
    _text,
    file_type_of,
)

__all__ = ["ImsReader", "MembershipRows", "ReadAgain", "Record", "validate"]

#: what the reader gives: records, and the staging rows of a plain membership (fast only)
Record = Person | Group | Membership | MembershipRows

_RECORD_TAGS = ("{*}properties", "{*}person", "{*}group", "{*}membership")


class ImsReader(MembershipReading):
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
        known: Digests | None = None,
        digests: bool = False,
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
        #: the groups seen in a <membership>: True for those read the fast way
        self._membership_groups: dict[str, bool] = {}
        self.plain = {"person": 0, "group": 0, "membership": 0}  # records read the fast way
        self.result = ValidationResult(
            FileInfo(path=self.path, name=os.path.basename(self.path)), max_examples=max_examples
        )
        self.file_type: str | None = None
        self._persons: set[str] = set()
        #: each group id seen, to its first str: a group's <membership> keeps that one
        self._groups: dict[str, str] = {}
        self._skipped_ids: dict[tuple[str, str], int] = {}  # (entity, id) -> line
        self._interned: dict[str, int] = {}  # interned ids: membership keys as exact small ints
        self._membership_keys: set[int] = set()
        self._deferred: list[Membership] = []
        self._parents: list[tuple[str, str, int]] = []
        self.known = known
        self._last_group = ""
        self._known = known.index() if known is not None and self.scan and fast else None
        #: the digests of the records read the fast way without a problem
        self.digests = Digests() if digests and self.scan and fast else None
        #: the entries of ``known`` taken as unchanged: the staging of the rest is the change
        self.taken = array("I")
        self._looked: tuple[bytes | None, bytes] = (None, b"")  # a line's bytes, digest

    def read_again(self, why: ReadAgain) -> None:
        """Start over the slower way ``why`` asks for: every record read (none taken as
        unchanged), lxml's parse of the whole file, or every record the straightforward way."""
        if why.every_record:
            ImsReader.__init__(
                self,
                self.path,
                max_examples=self.max_examples,
                default_type=self.default_type,
                fast=self.fast,
                scan=self.scan,
                digests=self.digests is not None,
            )
            return
        fast = self.fast and not why.straightforward
        ImsReader.__init__(
            self,
            self.path,
            max_examples=self.max_examples,
            default_type=self.default_type,
            fast=fast,
            scan=False,
        )

    # -- the pass over the file ------------------------------------------------------------

    def __iter__(self) -> Iterator[Record]:
        info = self.result.file
        with open(self.path, "rb") as raw:
            info.size = os.fstat(raw.fileno()).st_size
            hashing = _HashingReader(raw)
            try:
                if info.size == 0:
                    self._fatal(None, "the file is empty")
                yield from (self._scanned if self.scan else self._parsed)(hashing)
            finally:  # a rejected file is still identified by its checksum
                hashing.drain()
                info.sha256 = hashing.sha256.hexdigest()
                info.size = hashing.size  # what was read: more when it grew meanwhile
        if self.result.properties is None:
            self._fatal(None, "no <properties> element")
        yield from self._finish()

    def _parsed(self, hashing: _HashingReader) -> Iterator[Record]:
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

    def _scanned(self, hashing: _HashingReader) -> Iterator[Record]:
        """The records of a file of the simple shape (see :mod:`.scan`); :class:`ReadAgain`
        with lxml when it is not."""
        scanner = Scanner(hashing, self._take if self._known else None)
        digests = self.digests
        try:
            for kind, line, data in scanner:
                if kind == "properties" or b"\n" in data or b"\t" in data:
                    # a line break or tab: the lines, or a value, would differ from lxml's
                    text = text_of(data, line)
                    records = self._record(kind, line, self._parsed_text(scanner, text, line))
                elif digests is None:
                    records = self._record(kind, line, None, text_of(data, line), scanner)
                else:
                    if data is self._looked[0]:  # looked up as a line already
                        key = self._looked[1]
                    else:
                        key = digest(data)
                        if self._known and self._unchanged(key, line, kind):
                            continue
                    text = text_of(data, line)
                    plain = self.plain[kind]
                    records = self._record(kind, line, None, text, scanner)
                    if records and self.plain[kind] > plain and self.file_type == "full":
                        first = records[0]
                        if isinstance(first, MembershipRows):
                            record_id, parent = self._last_group, ""
                        elif isinstance(first, Group):
                            record_id, parent = first.sourcedid, first.parent_id or ""
                        else:
                            assert isinstance(first, Person)
                            record_id, parent = first.sourcedid, ""
                        digests.add(key, kind, record_id, self.plain[kind] - plain, parent)
                yield from records
        except Unscannable as why:
            raise ReadAgain(f"read with lxml: {why}") from None
        except TooLarge as err:
            self._fatal(err.line, str(err))

    def _take(self, data: bytes, line: int) -> bool:
        """A whole line taken as unchanged, by its digest (the scan's line by line path: the
        line is a record's bytes if it is taken; if not, and it is a record, it comes back
        to the reader, its digest looked up already)."""
        key = digest(data)
        if self._unchanged(key, line):
            return True
        self._looked = (data, key)
        return False

    def _unchanged(self, key: bytes, line: int, kind: str | None = None) -> bool:
        """Take the record of this digest (and ``kind``, when the scan said) as unchanged,
        when what it gave depends on nothing that differs in this file: no record of its id
        read before it, and (a membership) its group read before it. Whether the people its
        members name are still in the file is known only at its end: the staging checks it
        then (:mod:`sisflow.unchanged`)."""
        assert self._known is not None and self.known is not None
        i = self._known.pop(key, -1)  # the same text again is a duplicate: read, and said so
        if i < 0 or self.file_type != "full":
            return False
        known = self.known
        kind_of = known.kind(i)
        if kind is not None and kind_of != kind:
            return False
        kind = kind_of
        record_id = known.name(2 * i)
        if kind == "person":
            if record_id in self._persons:
                return False
            self._persons.add(record_id)
        elif kind == "group":
            if record_id in self._groups:
                return False
            self._groups[record_id] = record_id
            parent = known.name(2 * i + 1)
            if parent:
                self._parents.append((record_id, parent, line))
        else:
            group_id = self._groups.get(record_id)
            if group_id is None or group_id in self._membership_groups:
                return False
            self._membership_groups[group_id] = True
        rows = known.rows[i]
        self.result.records[kind] += rows
        self.plain[kind] += rows
        self.taken.append(i)
        return True

    def unchanged(self) -> Iterator[tuple[str, str]]:
        """(kind, id) of the records taken as unchanged."""
        known = self.known
        if known is not None:
            for i in self.taken:
                yield known.kind(i), known.name(2 * i)

    def table(self) -> Digests | None:
        """The digests of this file's clean records: those taken as unchanged, and those
        read; None when they were not kept."""
        if self.digests is None:
            return None
        if self.known is None or not self.taken:
            return self.digests
        table = self.known.taken(self.taken)
        table.extend(self.digests)
        return table

    def _parsed_text(self, scanner: Scanner | None, text: str | None, line: int):
        """One record's text parsed by lxml as the whole file would have been (only the
        scan gives a record as text)."""
        assert scanner is not None and text is not None
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
            f"the file declares {(hashing.declared or '').upper()} but holds UTF-8 byte sequences"
            " (its letters would be imported garbled, e.g. 'Ã¸' for 'ø'): ask for an"
            " export whose XML declaration says UTF-8, or written in ISO-8859-1",
        )

    def _record(
        self, kind: str, line: int, el, text: str | None = None, scanner: Scanner | None = None
    ) -> list[Record]:
        """The good records of one top-level element (a list: one call per element is
        cheaper than a generator per level, and a membership element holds many rows).
        The element is ``el``, or only its ``text`` as written, which lxml parses when it is
        not plain."""
        if self.fast and text is None:
            text = etree.tostring(el, encoding="unicode", with_tail=False)
        if kind == "membership":
            if self.result.properties is None:
                self._fatal(line, "<membership> before <properties>: properties must come first")
            if self.fast and text is not None:
                rows = self._plain_membership(text, line, el)
                if rows is not None:
                    return list(rows)
            if el is None:
                el = self._parsed_text(scanner, text, line)
            return list(self._membership(el, line))
        if kind == "properties":
            self._properties(el, line)
            return []
        if self.result.properties is None:
            self._fatal(line, f"<{kind}> before <properties>: properties must come first")
        self.result.records[kind] += 1
        seen = self._persons if kind == "person" else self._groups
        record = self.fast and text is not None and _PLAIN_READERS[kind](text, line)
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
        if recstatus == RECSTATUS_DELETE and self.file_type == "full":
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
        if kind == "person":
            self._persons.add(record.sourcedid)
        else:
            self._groups[record.sourcedid] = record.sourcedid
        if isinstance(record, Group) and record.parent_id:
            self._parents.append((record.sourcedid, record.parent_id, line))
        return [record]

    def _read(self, kind: str, el, line: int) -> tuple[int | None, Person | Group | None]:
        """A person or group the straightforward way: its recstatus and the record (None when
        it cannot be identified)."""
        recstatus = self._recstatus(el)
        try:
            record_id = self._peek_id(el)
        except EntityInValue as err:
            self._unidentified(kind, line, str(err))
            return recstatus, None
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
        self._let_go()

    def _let_go(self) -> None:
        """Forget what only the pass needed (the ids seen, the digests still to be looked
        up): a large municipality's run stages and stores for a while after its last record,
        and these are most of what it holds."""
        self._known = None
        self._persons, self._groups, self._membership_groups = set(), {}, {}
        self._skipped_ids, self._interned, self._membership_keys = {}, {}, set()
        self._parents = []

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
        elif (values["type"] or "").strip().lower() not in FILE_TYPES:
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


def validate(path: str | os.PathLike, *, max_examples: int = 10_000) -> ValidationResult:
    """Read a whole file and return what was found, without staging anything."""
    reader = ImsReader(path, max_examples=max_examples)
    try:
        for _record in reader:
            pass
    except FatalFileError:
        pass
    return reader.result
