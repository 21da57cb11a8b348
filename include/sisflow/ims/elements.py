"""The straightforward way through a record: an lxml element read child by child, with a
problem for every value that is not what the profile allows (:class:`ElementReading`, the part
of :class:`~sisflow.ims.reader.ImsReader` that reads one record)."""

from __future__ import annotations

from lxml import etree

from .plain import (
    _COULD_BE,
    _json,
)
from .records import (
    FatalFileError,
    Group,
    Membership,
    Person,
    Problem,
    ValidationResult,
)
from .values import (
    _BadRecord,
    _check_date,
    _check_id,
    _local,
    _text,
    _too_long,
)


class ElementReading:
    """Reads one record's element; the reader's state (``result``, the ids seen) is the
    :class:`~sisflow.ims.reader.ImsReader`'s."""

    # the reader's state, set by ImsReader.__init__
    path: str
    result: ValidationResult
    file_type: str | None
    plain: dict[str, int]
    _offset: int
    _persons: set[str]
    _groups: dict[str, str]
    _membership_groups: dict[str, bool]
    _last_group: str
    _skipped_ids: dict[tuple[str, str], int]
    _interned: dict[str, int]
    _membership_keys: set[int]
    _deferred: list[Membership]

    def _fatal(self, line: int | None, reason: str):
        self.result.fatal = Problem("file", None, line, reason)
        raise FatalFileError(self.path, line, reason)

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

    def _problem(self, entity, record_id, line, reason, severity="error") -> None:
        self.result.add(Problem(entity, record_id, line, reason, severity))
