"""Matching LMS accounts to SIS persons on normalised keys, as pandas joins.

A key is one piece of evidence: the same username, the same email, or the same birth date and
normalised name. Two accounts or persons that share a key probably are one person; how sure a
match is follows from how many keys agree. Nothing here guesses: a manual account that matches
more than one person (or a person matched by more than one account) is ambiguous.
"""

from __future__ import annotations

import re
import unicodedata

import pandas as pd

#: evidence, in the order it is written
KEYS = ("username", "email", "name+birth date")
#: the keys by which two ids are one person (not email: siblings often share a parent's)
SHARED = ("username", "name+birth date")
_FOLD = str.maketrans({"æ": "ae", "ø": "o", "å": "a", "ß": "ss"})
_NOT_LETTERS = re.compile(r"[^a-z ]+")


def normal_name(given: str | None, family: str | None) -> str | None:
    """Case, accents, Norwegian letters, hyphens and spacing do not tell two names apart."""
    if not given or not family:
        return None
    text = unicodedata.normalize("NFKD", f"{given} {family}".casefold().translate(_FOLD))
    text = "".join(c for c in text if not unicodedata.combining(c)).replace("-", " ")
    return " ".join(_NOT_LETTERS.sub(" ", text).split()) or None


def row_keys(username, email, given, family, birth_date, cache: dict) -> tuple:
    """One person's or account's keys, in the order of :data:`KEYS`; a key that cannot be
    formed (a value missing or blank) is None, and never matches. ``cache``: a school owner's
    pupils share first and last names, and each pair is normalised once."""
    pair = (given if isinstance(given, str) else None, family if isinstance(family, str) else None)
    name = cache[pair] if pair in cache else cache.setdefault(pair, normal_name(*pair))
    return (
        _folded(username),
        _folded(email),
        f"{name}|{birth_date}" if name and isinstance(birth_date, str) else None,
    )


def _folded(value) -> str | None:
    return (value.strip().casefold() or None) if isinstance(value, str) else None


def keyed(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame (columns username, email, given, family, birth_date) with one column per
    key (``k_`` and the key's name), as :func:`row_keys` forms them."""
    cache: dict = {}
    keys = [
        row_keys(*row, cache)
        for row in zip(
            frame["username"],
            frame["email"],
            frame["given"],
            frame["family"],
            frame["birth_date"],
            strict=True,
        )
    ]
    out = frame.copy()
    for i, key in enumerate(KEYS):
        out[f"k_{key}"] = pd.Series([k[i] for k in keys], index=frame.index, dtype="string")
    return out


def pairs(
    left: pd.DataFrame, right: pd.DataFrame, left_id: str, right_id: str, keys=KEYS
) -> pd.DataFrame:
    """Every (left id, right id) that agree on at least one key, with the keys they agree on
    (``evidence``) and how many (``agree``)."""
    found = []
    for key in keys:
        column = f"k_{key}"
        joined = (
            left[[left_id, column]].dropna().merge(right[[right_id, column]].dropna(), on=column)
        )
        found.append(joined[[left_id, right_id]].assign(key=key))
    every = pd.concat(found, ignore_index=True).drop_duplicates()
    if every.empty:
        return pd.DataFrame(columns=[left_id, right_id, "evidence", "agree"])
    order = {k: i for i, k in enumerate(KEYS)}
    grouped = every.groupby([left_id, right_id])["key"].agg(
        lambda ks: " + ".join(sorted(ks, key=lambda k: order[k]))
    )
    out = grouped.rename("evidence").reset_index()
    out["agree"] = out["evidence"].str.count(r" \+ ") + 1
    return out


def certainty(agree: int) -> str:
    """Two keys or more agree: high; one: medium (someone should look)."""
    return "high" if agree >= 2 else "medium"


def shared(frame: pd.DataFrame, id_column: str, keys=SHARED) -> pd.DataFrame:
    """Groups of rows with different ids that share a key: one person under several ids."""
    found = []
    for key in keys:
        column = f"k_{key}"
        sub = frame[[id_column, column]].dropna().drop_duplicates()
        sub = sub[sub.duplicated(column, keep=False)]  # values under more than one id
        for ids in sub.groupby(column)[id_column].agg(lambda ids: " ".join(sorted(ids))):
            found.append({"sync_keys": ids, "evidence": key})
    if not found:
        return pd.DataFrame(columns=["sync_keys", "evidence"])
    return (
        pd.DataFrame(found)
        .groupby("sync_keys")["evidence"]
        .agg(lambda ks: " + ".join(sorted(set(ks), key=KEYS.index)))
        .reset_index()
    )
