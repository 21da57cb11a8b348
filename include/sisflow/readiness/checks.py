"""The year-end readiness checks (docs/rules.md: rules 1, 2, 3, 9, 10 and 12), as pandas frames.

Each check is one frame. The status email and its CSV attachments show the columns in
``ListSpec.public`` (ids, keys, reasons); the CSV files an operator asks for on the command
line add the columns in ``ListSpec.names`` (names, usernames, birth dates) so that a match can
be checked by eye. Nothing of those reaches a log.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import NamedTuple

import pandas as pd

from ..calendar import OSLO
from ..config import CustomerConfig
from ..lms.adapter import ACCOUNT_FIELDS
from ..lms.postgres_site import PostgresSite
from ..school_year import SchoolYear
from . import matching
from .narrowing import narrowed
from .people import SisData

_WHO = ["username", "given", "family", "birth_date", "email"]


class ListSpec(NamedTuple):
    title: str
    blocking: bool  # stops a rollover unless the operator overrides it
    public: list[str]
    names: list[str]


LISTS: dict[str, ListSpec] = {
    "duplicates": ListSpec(
        "Manual accounts that match a person in the SIS data (duplicates in waiting: attach "
        "the sync key)",
        True,
        ["account_id", "sync_key", "certainty", "evidence"],
        _WHO,
    ),
    "ambiguous": ListSpec(
        "Manual accounts that match more than one person, or a person matched by more than one "
        "manual account (never guessed: a person decides)",
        True,
        ["account_id", "sync_key", "evidence"],
        _WHO,
    ),
    "already_twice": ListSpec(
        "Manual accounts whose person already has a synced account (merge them by hand)",
        False,
        ["account_id", "sync_key", "synced_account_id", "evidence"],
        _WHO,
    ),
    "created_twice": ListSpec(
        "Persons the integration would create twice (one username under several sync keys,"
        " or a username a synced account has under another key)",
        True,
        ["sync_keys", "evidence"],
        [],
    ),
    "rekeyed": ListSpec(
        "Persons the SIS re-keyed whose pair waits for a person (one key leaves, another "
        "arrives, and the evidence is not certain: sisflow relink CUSTOMER --accept|--refuse ID)",
        True,
        ["pair_id", "old_key", "new_key", "certainty", "ambiguous", "evidence"],
        [],
    ),
    "rekeyed_decided": ListSpec(
        "Persons the SIS re-keyed that the rollover relinks (certain evidence) or that a "
        "person decided: the account keeps its history under the new key unless refused",
        False,
        ["pair_id", "old_key", "new_key", "certainty", "evidence", "decision"],
        [],
    ),
    "maybe_twice": ListSpec(
        "Persons who share a name and birth date under several sync keys (in a large "
        "municipality often two people: check by hand)",
        False,
        ["sync_keys", "evidence"],
        [],
    ),
    "admins_with_sync_key": ListSpec(
        "Administrators that carry a sync key (administrators are made by hand, without one)",
        True,
        ["account_id", "sync_key"],
        ["username"],
    ),
    "inactive": ListSpec(
        "Accounts with no login for {months} months (the integration never cleans up the manual "
        "ones)",
        False,
        ["account_id", "sync_key", "manual", "last_login"],
        ["username"],
    ),
    "terms": ListSpec(
        "Terms the integration made, and what the rollover does with them",
        False,
        ["term_id", "sync_key", "begins", "ends", "at_rollover"],
        ["name"],
    ),
    "missing_terms": ListSpec(
        "No terms for the new school year in the file (is it last year's export?)",
        True,
        ["school_year", "reason"],
        [],
    ),
}


@dataclass
class Findings:
    customer: str
    school_year: SchoolYear  # the year the rollover goes into
    source: str
    on: date
    months: int
    frames: dict[str, pd.DataFrame]
    notes: list[str] = field(default_factory=list)

    def title(self, name: str) -> str:
        return LISTS[name].title.format(months=self.months)

    @property
    def blocking(self) -> dict[str, int]:
        return {
            name: len(frame)
            for name, frame in self.frames.items()
            if LISTS[name].blocking and len(frame)
        }

    def summary(self) -> dict:
        """Ids and counts only: what a status email, a plan and XCom carry."""
        return {
            "school_year": self.school_year.label,
            "source": self.source,
            "on": self.on.isoformat(),
            "counts": {name: len(frame) for name, frame in self.frames.items()},
            "blocking": self.blocking,
            "notes": list(self.notes),
            "titles": {name: self.title(name) for name in self.frames},
        }

    def table(self, name: str, *, names: bool = False) -> pd.DataFrame:
        spec = LISTS[name]
        columns = spec.public + (spec.names if names else [])
        return self.frames[name].reindex(columns=columns)

    def csv(self, name: str, *, names: bool = False) -> bytes:
        buffer = io.StringIO()
        self.table(name, names=names).to_csv(buffer, index=False)
        return buffer.getvalue().encode("utf-8")

    def write_csv(self, folder: Path, *, names: bool = True) -> list[Path]:
        """One CSV file per list, with names (the operator asked for them)."""
        folder.mkdir(parents=True, exist_ok=True)
        written = []
        for name in self.frames:
            path = folder / f"{self.customer}-{name}.csv"
            path.write_bytes(self.csv(name, names=names))
            written.append(path)
        return written

    def proposals(self) -> list[dict]:
        """The sync keys to attach: one per duplicate in waiting (ids only)."""
        return [
            {k: (None if pd.isna(v) else v) for k, v in row.items()}
            for row in self.table("duplicates").to_dict("records")
        ]


def _accounts(rows: list[tuple]) -> pd.DataFrame:
    accounts = pd.DataFrame.from_records(rows, columns=list(ACCOUNT_FIELDS))
    accounts = accounts.rename(columns={"id": "account_id"})
    accounts["trashed"] = accounts["trashed"].astype(bool)
    for column in ("sync_key", "username", "email", "given", "family", "profile"):
        accounts[column] = accounts[column].astype("string")
    accounts["birth_date"] = (
        accounts["birth_date"]
        .map(lambda d: d.isoformat() if isinstance(d, date) else None)
        .astype("string")
    )
    for column in ("last_login", "created_at"):
        accounts[column] = pd.to_datetime(accounts[column], utc=True)
    return accounts


def _matches(accounts: pd.DataFrame, people: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Manual accounts against the persons in the SIS data (keyed)."""
    live = accounts[~accounts["trashed"]]
    manual = matching.keyed(live[live["sync_key"].isna() & (live["profile"] != "admin")])
    found = matching.pairs(manual, people, "account_id", "sync_key")
    found = found.merge(manual[["account_id", *_WHO]], on="account_id", how="left")
    # a synced account for the key already (even one in the trash: the import restores it)
    synced = accounts.dropna(subset=["sync_key"])[["sync_key", "account_id"]].rename(
        columns={"account_id": "synced_account_id"}
    )
    found = found.merge(synced, on="sync_key", how="left")
    twice = found[found["synced_account_id"].notna()]
    # an account that matches two persons is ambiguous, even when one of them has a synced
    # account already: proposed, it could hand one sibling's account to the other
    per_account = found.groupby("account_id")["sync_key"].transform("nunique")
    found = found.assign(per_account=per_account)
    waiting = found[found["synced_account_id"].isna()]
    per_key = waiting.groupby("sync_key")["account_id"].transform("nunique")
    clear = (waiting["per_account"] == 1) & (per_key == 1)
    duplicates = waiting[clear].assign(
        certainty=waiting.loc[clear, "agree"].map(matching.certainty)
    )
    return {
        "duplicates": duplicates.sort_values("account_id"),
        "ambiguous": waiting[~clear].sort_values(["account_id", "sync_key"]),
        "already_twice": twice.assign(
            synced_account_id=twice["synced_account_id"].astype("Int64")
        ).sort_values("account_id"),
    }


def _idle_before(on: date, months: int) -> pd.Timestamp:
    return pd.Timestamp(datetime.combine(on, datetime.min.time(), tzinfo=OSLO)) - pd.DateOffset(
        months=months
    )


def _inactive(accounts: pd.DataFrame, on: date, months: int) -> pd.DataFrame:
    cutoff = _idle_before(on, months)
    seen = accounts["last_login"].fillna(accounts["created_at"])
    idle = accounts[~accounts["trashed"] & (seen < cutoff)].copy()
    idle["manual"] = idle["sync_key"].isna()
    idle["last_login"] = idle["last_login"].dt.strftime("%Y-%m-%d")
    return idle.sort_values(["manual", "account_id"], ascending=[False, True])


def _terms(
    cur, customer: str, target: SchoolYear, sis: SisData
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The integration's terms and what rollover does with them; and, for a whole export,
    whether it has terms for the new school year at all."""
    terms = pd.DataFrame.from_records(
        PostgresSite(cur, customer).terms(),
        columns=["id", "sync_key", "name", "begins", "ends", "created_by_integration", "archived"],
    )
    ours = terms[terms["created_by_integration"] & ~terms["archived"]].rename(
        columns={"id": "term_id"}
    )
    if sis.whole:  # rollover archives the terms the new file no longer has
        keys = {f"{b}..{e}" for b, e in sis.terms}
        leaving = ~ours["sync_key"].isin(keys)
    else:
        leaving = ours["ends"].map(lambda d: d is not None and d < target.start)
    ours = ours.assign(at_rollover=leaving.map({True: "archived", False: "stays"}))
    missing = []
    if sis.whole and not any(target.start <= b <= target.end for b, _ in sis.terms):
        missing.append(
            {
                "school_year": target.label,
                "reason": f"no course group in {sis.source} begins in {target.label}",
            }
        )
    return ours, pd.DataFrame(missing, columns=["school_year", "reason"])


def _notes(
    config: CustomerConfig, current: SchoolYear | None, target: SchoolYear, sis: SisData
) -> list[str]:
    notes = [
        f"Course archiving is {'on' if config.course_archiving else 'off'}: at rollover "
        + (
            "last year's courses are archived (their members keep access as manual participants)."
            if config.course_archiving
            else "last year's courses are detached from the hierarchy and stay active."
        )
    ]
    if config.summer_school:
        summer_start = current.end if current else target.start - timedelta(days=45)
        covered = any(
            w.start <= summer_start + timedelta(days=1) and w.end >= target.start
            for w in config.delay_delete
        )
        if not covered:
            notes.append(
                "Summer school: the summer export must carry the regular classes and courses as "
                "well as the summer ones, or the regular courses are archived and the classes "
                "deleted. A delay-delete window over the summer prevents that; there is none."
            )
    if not sis.whole:
        next_terms = [b for b, _ in sis.terms if target.start <= b <= target.end]
        if not next_terms:
            notes.append(
                f"No terms for {target.label} yet: the rollover's file creates them "
                "from its course groups (absence and assessments need them before "
                "school starts)."
            )
    return notes


def _username_of_a_synced_account(cur) -> pd.DataFrame:
    """Persons whose username a synced account has under another sync key that the SIS data
    still holds: the import would create a second account with the same login. (Where the
    other key leaves, it is a re-keyed person: see :func:`_rekeyed`.) Read from the checks'
    own tables of accounts and keys (:mod:`.narrowing`)."""
    cur.execute(
        "SELECT DISTINCT p.sync_key, a.sync_key FROM person_keys p"
        " JOIN ready_accounts a ON lower(btrim(a.username)) = p.value"
        " WHERE p.key = %s AND a.sync_key IS NOT NULL AND NOT a.trashed"
        " AND a.sync_key <> p.sync_key"
        " AND EXISTS (SELECT 1 FROM person_keys q WHERE q.sync_key = a.sync_key)",
        (matching.KEYS.index("username"),),
    )
    rows = [
        {"sync_keys": " ".join(sorted(pair)), "evidence": "username of a synced account"}
        for pair in cur.fetchall()
    ]
    return pd.DataFrame(rows, columns=["sync_keys", "evidence"]).drop_duplicates()


def _rekeyed(cur, customer: str, sis: SisData) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The identity changes a new export would bring, found as the import finds them and
    stored as pairs (without a run) so that a person can decide them before the rollover:
    those that wait for a person, and those that are certain or decided."""
    from .. import identity
    from ..identity import pairs as find
    from ..identity.decisions import record

    waiting_columns = LISTS["rekeyed"].public
    decided_columns = LISTS["rekeyed_decided"].public
    if sis.sides is None:
        return pd.DataFrame(columns=waiting_columns), pd.DataFrame(columns=decided_columns)
    if find.persons(cur, *sis.sides(cur)):
        record(cur, customer, "person", None)
    rows = [
        {
            "pair_id": p.id,
            "old_key": p.old_key,
            "new_key": p.new_key,
            "certainty": p.certainty,
            "ambiguous": p.ambiguous,
            "evidence": " + ".join(p.evidence),
            "decision": p.decision
            or ("relinked by the rule" if p.certainty == "high" and not p.ambiguous else None),
        }
        for p in identity.listed(cur, customer=customer, just_found=True)
        if p.entity == "person"
    ]
    frame = pd.DataFrame(rows, columns=[*waiting_columns, "decision"])
    waits = frame["decision"].isna()
    return (
        frame[waits][waiting_columns].reset_index(drop=True),
        frame[~waits][decided_columns].reset_index(drop=True),
    )


def check(
    cur,
    config: CustomerConfig,
    target: SchoolYear,
    *,
    people: SisData,
    on: date,
    current: SchoolYear | None = None,
) -> Findings:
    """Every readiness check for rolling ``config``'s customer into ``target``."""
    found, keyed = narrowed(
        cur,
        PostgresSite(cur, config.id).accounts(),
        people.people(cur),
        shared=matching.SHARED,
        idle_before=_idle_before(on, config.inactive_months).to_pydatetime(),
    )
    accounts = _accounts(found)
    frames = _matches(accounts, keyed)
    shared = matching.shared(keyed, "sync_key")
    by_username = shared["evidence"].str.contains("username", regex=False)
    frames["created_twice"] = pd.concat(
        [shared[by_username], _username_of_a_synced_account(cur)], ignore_index=True
    )
    frames["maybe_twice"] = shared[~by_username]
    frames["rekeyed"], frames["rekeyed_decided"] = _rekeyed(cur, config.id, people)
    frames["admins_with_sync_key"] = accounts[
        (accounts["profile"] == "admin") & accounts["sync_key"].notna()
    ]
    frames["inactive"] = _inactive(accounts, on, config.inactive_months)
    frames["terms"], frames["missing_terms"] = _terms(cur, config.id, target, people)
    frames = {name: frames[name] for name in LISTS}  # the lists in their order
    return Findings(
        config.id,
        target,
        people.source,
        on,
        config.inactive_months,
        frames,
        _notes(config, current, target, people),
    )
