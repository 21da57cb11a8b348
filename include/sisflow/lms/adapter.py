"""The LMS as sisflow sees it: one customer's site, changed in batches, always by sync key.

Another LMS plugs in by implementing :class:`LmsSite`. Every operation takes a batch of rows,
an iterable read once (it streams from the import database: a rollover's 200,000-row batch of
memberships is never in memory whole), and must be idempotent (applying a batch twice leaves
what applying it once left), because a run killed half-way is started again from the last
finished step. An operation never touches an object without a sync key: those are manual,
made by people, and stay as they are. Operations return the rows they could not apply, as
outcomes ("skipped": nothing in the LMS answers to that key; "failed": the LMS refused it).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from typing import NamedTuple

#: what :meth:`LmsSite.accounts` tells of each account
ACCOUNT_FIELDS = (
    "id",
    "sync_key",
    "username",
    "email",
    "given",
    "family",
    "birth_date",
    "profile",
    "last_login",
    "created_at",
    "trashed",
)


class UserRow(NamedTuple):
    sync_key: str
    username: str | None
    first_name: str | None
    last_name: str | None
    email: str | None
    profile: str  # student, teacher, staff, admin, guest
    birth_date: str | None = None  # ISO date: how a manual account is matched to its person


class UnitRow(NamedTuple):
    sync_key: str
    kind: str  # skoleeier, skole, trinn, basisgruppe
    name: str
    parent_key: str | None


class TermRow(NamedTuple):
    sync_key: str
    name: str
    begins: str | None
    ends: str | None


class CourseRow(NamedTuple):
    sync_key: str
    title: str
    code: str | None
    unit_key: str | None  # the hierarchy unit the course hangs under
    term_key: str | None


class MemberRow(NamedTuple):
    """A user in a course (participant) or in a unit, with a role."""

    group_key: str
    user_key: str
    role: str


class Outcome(NamedTuple):
    entity: str
    key: str
    outcome: str  # skipped or failed
    detail: str


class LmsSite(ABC):
    """One customer's site in an LMS."""

    site: str

    @abstractmethod
    def upsert_users(self, rows: Iterable[UserRow]) -> list[Outcome]:
        """Create or update accounts; an account in the trash comes back out of it."""

    @abstractmethod
    def relink_users(self, pairs: Iterable[tuple[str, str]]) -> list[Outcome]:
        """Give accounts a new sync key, (old, new) each: the account keeps its id, logins,
        work and memberships. A pair whose new key an account has already is done; one
        whose both keys are taken fails."""

    @abstractmethod
    def relink_groups(self, pairs: Iterable[tuple[str, str]]) -> list[Outcome]:
        """Give courses and units a new sync key, (old, new) each, as :meth:`relink_users`:
        a course keeps its content and participants, a unit its place and members."""

    @abstractmethod
    def trash_users(self, keys: Iterable[str]) -> list[Outcome]:
        """Move accounts to the trash (recoverable); never a hard delete."""

    @abstractmethod
    def upsert_units(self, rows: Iterable[UnitRow]) -> list[Outcome]:
        """Create or update hierarchy units and link them to their parents."""

    @abstractmethod
    def upsert_terms(self, rows: Iterable[TermRow]) -> list[Outcome]:
        """Create or update the terms the integration owns."""

    @abstractmethod
    def archive_terms_except(self, keys: Iterable[str]) -> int:
        """Archive the integration's terms whose key is not in ``keys``; how many."""

    @abstractmethod
    def upsert_courses(self, rows: Iterable[CourseRow]) -> list[Outcome]:
        """Create or update courses. An archived course stays archived and unlinked."""

    @abstractmethod
    def add_participants(self, rows: Iterable[MemberRow]) -> list[Outcome]:
        """Add synced participants to courses (a manual participant stays manual)."""

    @abstractmethod
    def add_unit_members(self, rows: Iterable[MemberRow]) -> list[Outcome]:
        """Add users to hierarchy units."""

    @abstractmethod
    def remove_memberships(self, rows: Iterable[MemberRow]) -> list[Outcome]:
        """Remove synced participants or unit members; manual participants stay."""

    @abstractmethod
    def retire_groups(self, keys: Iterable[str], *, archive_courses: bool) -> list[Outcome]:
        """A group left the file: remove its unit, or retire its course. Retiring a course
        removes its hierarchy link and turns its synced participants into manual ones, who
        keep access; with ``archive_courses`` an integration-created course is archived too."""

    @abstractmethod
    def restore(self, undone: int, *, scoped: bool) -> dict:
        """Put back what run ``undone`` changed, from the site's journal of it: each object
        and member still as that run left it goes back to what it was before; one changed
        since is a conflict and stays; one the run created goes, unless something uses it
        since (kept). Journaled as this site's own run. ``scoped``: only the sync keys in the
        scope tables (:mod:`sisflow.undo.scope`). Counts per kind and verdict."""

    @abstractmethod
    def accounts(self) -> Iterator[dict]:
        """Every account, manual ones included, for the readiness checks: a dict of
        :data:`ACCOUNT_FIELDS` each. An iterator: a school owner has a hundred thousand."""

    @abstractmethod
    def terms(self) -> list[dict]:
        """Every term: id, sync_key, name, begins, ends, created_by_integration, archived."""

    @abstractmethod
    def set_sync_key(self, account_id: int, old: str | None, new: str | None) -> bool:
        """Give an account a sync key (or take it back: ``new`` None), only if it still has
        ``old``; whether it did. An operator's act (readiness), never the import's."""

    @abstractmethod
    def snapshot(self) -> dict:
        """The site as it stands: users, units, courses, participants and terms, without
        names or emails (ids, keys, kinds, states and counts)."""
