"""A <membership> read the straightforward way, member by member and role by role, or as
staging rows when it is plain (:mod:`.plain`); the part of
:class:`~sisflow.ims.reader.ImsReader` that reads memberships."""

from __future__ import annotations

from lxml import etree

from .elements import ElementReading
from .plain import _MEMBERSHIP_HEAD, _ROW_MEMBER_ID, MembershipRows, ReadAgain, _member_rows
from .records import RECSTATUS_DELETE, ROLE_TYPES, Membership
from .values import _ROLETYPE_ALIASES, MAX_ID, EntityInValue, _BadRecord, _check_id, _local, _text


class MembershipReading(ElementReading):
    """Memberships, with the duplicate and reference checks of a full file."""

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
        group_id = self._groups.get(whole.group(1))
        if group_id is None or group_id in self._membership_groups:
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
        self._membership_groups[group_id] = True
        self._last_group = group_id  # the key of its digest
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
        if self._membership_groups.get(group_id):
            raise ReadAgain(
                f"line {line}: group '{group_id}' has a second <membership>", straightforward=True
            )
        group_id = self._groups.get(group_id, group_id)
        self._membership_groups[group_id] = False
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
