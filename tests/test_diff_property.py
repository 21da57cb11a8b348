"""Property: committing diff(A, B) on top of A leaves exactly B, whatever A and B are."""

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sisflow import state

from tests.factory import enterprise, group, lenient, member, membership, person, run_once, write

PERSON_IDS = [f"p{i}" for i in range(8)]
GROUP_IDS = [f"g{i}" for i in range(4)]
NAMES = ["Åse", "Ørjan", "Kari", "Bjørn"]
_customers = itertools.count()


@st.composite
def exports(draw):
    persons = draw(
        st.dictionaries(
            st.sampled_from(PERSON_IDS),
            st.tuples(st.sampled_from(NAMES), st.sampled_from([None, "a@x.no", "b@x.no"])),
            min_size=1,
        )
    )
    groups = draw(
        st.dictionaries(
            st.sampled_from(GROUP_IDS),
            st.tuples(
                st.sampled_from(["basisgruppe", "undervisningsgruppe"]),
                st.sampled_from([None, "2025-08-15"]),
            ),
        )
    )
    keys = st.tuples(
        st.sampled_from(sorted(groups) or ["-"]),
        st.sampled_from(sorted(persons)),
        st.sampled_from(["01", "02"]),
    )
    members = draw(st.dictionaries(keys, st.sampled_from([0, 1]))) if groups else {}
    records = [person(p, given, "Hansen", email=email) for p, (given, email) in persons.items()]
    records += [group(g, kind, begin=begin) for g, (kind, begin) in groups.items()]
    for g in sorted(groups):
        ms = [
            member(p, role, status=status) for (gg, p, role), status in members.items() if gg == g
        ]
        if ms:
            records.append(membership(g, *ms))
    return enterprise(*records)


# the state moves forward row by row, or (when most of a partition leaves) is rebuilt
@pytest.mark.parametrize("rebuild_share", [float("inf"), 0.0], ids=["by-row", "rebuilt"])
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(a=exports(), b=exports())
def test_applying_the_diff_of_a_and_b_to_a_gives_b(
    conn, tmp_path, monkeypatch, rebuild_share, a, b
):
    monkeypatch.setattr(state, "REBUILD_SHARE", rebuild_share)
    n = next(_customers)
    path_a = write(tmp_path, a, f"a{n}.xml")
    path_b = write(tmp_path, b, f"b{n}.xml")
    moved, fresh = f"moved-{n}", f"fresh-{n}"
    run_once(conn, moved, path_a, config=lenient(moved))
    result = run_once(conn, moved, path_b, config=lenient(moved))
    run_once(conn, fresh, path_b, config=lenient(fresh))
    with conn.cursor() as cur:
        assert state.snapshot(cur, moved) == state.snapshot(cur, fresh)
    if a == b:
        assert result["status"] == "unchanged"
    else:
        assert result["status"] == "committed"
