"""The straightforward way through a record: an lxml element read child by child, with a
problem for every value that is not what the profile allows (:class:`ElementReading`, the part
of :class:`~sisflow.ims.reader.ImsReader` that reads one record)."""

from __future__ import annotations

from lxml import etree

from .plain import (
    _COULD_BE,
    _MEMBERSHIP_HEAD,
    _ROW_MEMBER_ID,
    MembershipRows,
    ReadAgain,
    _json,
    _member_rows,
)
from .records import (
    RECSTATUS_DELETE,
    ROLE_TYPES,
    FatalFileError,
    Group,
    Membership,
    Person,
    Problem,
    ValidationResult,
)
from .values import (
    _ROLETYPE_ALIASES,
    MAX_ID,
    EntityInValue,
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
    _groups: set[str]
    _membership_groups: set[str]
    _fast_groups: set[str]
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
            if m.recstatus == RECSTATUS_DELETE and self.file_type == "full":
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
