"""The digest table a run keeps: whatever entries a day takes back, in whatever order, and
whatever it adds to them, each entry keeps its digest, kind, rows, id and parent, and the
packed form gives back the same table."""

import random

from sisflow.ims.digests import Digests, digest


def _table(n: int) -> Digests:
    table = Digests()
    for i in range(n):
        kind = ("person", "group", "membership")[i % 3]
        # empty ids and parents, and ids not in ASCII, among them
        record_id = "" if i % 11 == 0 else f"id{i}" + "æ" * (i % 4 == 0)
        table.add(
            digest(f"<{kind}>{i}</{kind}>".encode()), kind, record_id, i % 7, f"up{i}" * (i % 2)
        )
    return table


def _entries(table: Digests, order) -> list[tuple]:
    return [
        (table.key(i), table.kind(i), table.rows[i], table.name(2 * i), table.name(2 * i + 1))
        for i in order
    ]


def test_entries_taken_keep_what_they_were_in_any_order():
    table = _table(5_000)
    gaps = [i for i in range(5_000) if i % 97 not in (3, 4)]  # runs with a few left out
    shuffled = list(range(5_000))
    random.Random(7).shuffle(shuffled)
    mixed = list(range(2_000, 2_100)) + [5, 1, 3] + list(range(10, 20)) + [4_999]
    for order in (gaps, shuffled, mixed, []):
        taken = table.taken(order)
        assert _entries(taken, range(len(taken))) == _entries(table, order)
        assert Digests.unpack(b"".join(taken.packed())) == taken


def test_tables_put_together_keep_each_entry():
    first, second = _table(300), _table(1_000).taken(range(500, 1_000))
    together = Digests()
    for part in (Digests(), first, Digests(), second):
        together.extend(part)
    assert _entries(together, range(len(together))) == _entries(first, range(300)) + _entries(
        second, range(500)
    )
    assert Digests.unpack(b"".join(together.packed())) == together


def test_a_table_without_some_ids_of_a_kind():
    table = _table(600)
    left = table.without("group", {"id13", "id7", "id5"})  # id5 is a membership's: kept
    assert len(left) == 598
    assert {left.name(2 * i) for i in range(len(left)) if left.kind(i) == "group"}.isdisjoint(
        {"id13", "id7"}
    )
