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
_FOLD = str.maketrans({"æ": "ae", "ø": "o", "å": "a", "ß": "ss"})
_NOT_LETTERS = re.compile(r"[^a-z ]+")


def normal_name(given: str | None, family: str | None) -> str | None:
    """Case, accents, Norwegian letters, hyphens and spacing do not tell two names apart."""
    if not given or not family:
        return None
    text = unicodedata.normalize("NFKD", f"{given} {family}".casefold().translate(_FOLD))
    text = "".join(c for c in text if not unicodedata.combining(c)).replace("-", " ")
    return " ".join(_NOT_LETTERS.sub(" ", text).split()) or None


def keyed(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame (columns username, email, given, family, birth_date) with one column per
    key, normalised; a key that cannot be formed is missing (NaN), and never matches."""
    out = frame.copy()
    out["k_username"] = frame["username"].str.strip().str.casefold().replace("", None)
    out["k_email"] = frame["email"].str.strip().str.casefold().replace("", None)
    # a school owner's pupils share first and last names: each pair is normalised once
    cache: dict[tuple, str | None] = {}
    names = [cache[key] if key in cache else cache.setdefault(key, normal_name(*key))
             for key in zip(frame["given"], frame["family"], strict=True)]
    birth = frame["birth_date"].astype("string")
    out["k_name+birth date"] = pd.Series(names, index=frame.index, dtype="string") + "|" + birth
    return out


def pairs(left: pd.DataFrame, right: pd.DataFrame, left_id: str, right_id: str,
          keys=KEYS) -> pd.DataFrame:
    """Every (left id, right id) that agree on at least one key, with the keys they agree on
    (``evidence``) and how many (``agree``)."""
    found = []
    for key in keys:
        column = f"k_{key}"
        joined = left[[left_id, column]].dropna().merge(right[[right_id, column]].dropna(),
                                                        on=column)
        found.append(joined[[left_id, right_id]].assign(key=key))
    every = pd.concat(found, ignore_index=True).drop_duplicates()
    if every.empty:
        return pd.DataFrame(columns=[left_id, right_id, "evidence", "agree"])
    order = {k: i for i, k in enumerate(KEYS)}
    grouped = every.groupby([left_id, right_id])["key"].agg(
        lambda ks: " + ".join(sorted(ks, key=order.get)))
    out = grouped.rename("evidence").reset_index()
    out["agree"] = out["evidence"].str.count(r" \+ ") + 1
    return out


def certainty(agree: int) -> str:
    """Two keys or more agree: high; one: medium (someone should look)."""
    return "high" if agree >= 2 else "medium"


def shared(frame: pd.DataFrame, id_column: str, keys=("username", "name+birth date")
           ) -> pd.DataFrame:
    """Groups of rows with different ids that share a key: one person under several ids.
    Email is left out here: siblings often share a parent's address."""
    found = []
    for key in keys:
        column = f"k_{key}"
        sub = frame[[id_column, column]].dropna().drop_duplicates()
        sub = sub[sub.duplicated(column, keep=False)]  # values under more than one id
        for ids in sub.groupby(column)[id_column].agg(lambda ids: " ".join(sorted(ids))):
            found.append({"sync_keys": ids, "evidence": key})
    if not found:
        return pd.DataFrame(columns=["sync_keys", "evidence"])
    return (pd.DataFrame(found).groupby("sync_keys")["evidence"]
            .agg(lambda ks: " + ".join(sorted(set(ks), key=KEYS.index))).reset_index())
