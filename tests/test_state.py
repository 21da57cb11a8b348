"""The current state and the history a customer leaves behind, against a real Postgres."""

from sisflow import state

from tests.factory import enterprise, group, lenient, member, membership, person, run_once, write


def _school(*members):
    """A class, and a club: a kind of group the LMS does not take (its members are skipped)."""
    return enterprise(
        person("p1"),
        person("p2"),
        person("t1"),
        group("5A"),
        group("sjakk", "sjakklubb"),
        membership("5A", *members),
        membership("sjakk", member("p1")),
    )


def _rows_of_runs(conn, run_ids) -> dict[str, int]:
    """Every table of the import database with a run_id: its rows of these runs."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT c.table_name FROM information_schema.columns c"
            " JOIN information_schema.tables t USING (table_schema, table_name)"
            " WHERE c.table_schema = 'sis' AND c.column_name = 'run_id'"
            " AND t.table_type = 'BASE TABLE' AND c.table_name NOT LIKE '%\\_\\_%'"
        )
        tables = [t for (t,) in cur.fetchall()]
        found = {}
        for table in tables:
            cur.execute(
                f"SELECT count(*) FROM sis.{table} WHERE run_id = ANY(%s)", (list(run_ids),)
            )
            found[table] = cur.fetchone()[0]
        return found


def test_forgetting_a_customer_leaves_no_row_of_its_runs_and_keeps_the_others(conn, tmp_path):
    ids = {}
    no_role = (
        "<member><sourcedid><source>x</source><id>p2</id></sourcedid><idtype>1</idtype></member>"
    )
    for customer in ("kommune", "annen"):
        first = run_once(
            conn,
            customer,
            write(
                tmp_path,
                _school(member("p1"), member("p2"), member("t1", "02")),
                f"{customer}1.xml",
            ),
            config=lenient(customer),
        )
        second = run_once(
            conn,
            customer,
            write(tmp_path, _school(member("p1"), no_role, member("t1", "02")), f"{customer}2.xml"),
            config=lenient(customer),
        )  # p2's membership is kept for its error
        ids[customer] = [first["id"], second["id"]]
    before, others = _rows_of_runs(conn, ids["kommune"]), _rows_of_runs(conn, ids["annen"])
    # the runs left a change set, outcomes of the apply, a problem and a kept record
    assert {t for t, n in before.items() if n} >= {
        "membership_changes",
        "apply_outcomes",
        "problems",
        "kept",
    }

    with conn, conn.cursor() as cur:
        state.forget(cur, "kommune")

    assert {t: n for t, n in _rows_of_runs(conn, ids["kommune"]).items() if n} == {}
    assert _rows_of_runs(conn, ids["annen"]) == others  # the other customer's history is whole


def test_a_rebuilt_partition_keeps_what_an_error_kept_and_what_the_run_left_alone(
    conn, tmp_path, monkeypatch
):
    no_role = (
        "<member><sourcedid><source>x</source><id>p2</id></sourcedid><idtype>1</idtype></member>"
    )
    day1 = _school(member("p1"), member("p2", status=0), member("t1", "02"))
    # three of the four memberships leave; p2's is unreadable (kept as it was)
    day2 = enterprise(
        person("p1"), person("p2"), person("t1"), group("5A"), membership("5A", no_role)
    )
    snapshots = {}
    for customer, share in (("rebuilt", 0.5), ("by-row", float("inf"))):
        monkeypatch.setattr(state, "REBUILD_SHARE", share)
        for day, text in (("1", day1), ("2", day2)):
            run_once(
                conn,
                customer,
                write(tmp_path, text, f"{customer}{day}.xml"),
                config=lenient(customer),
            )
        with conn.cursor() as cur:
            snapshots[customer] = state.snapshot(cur, customer)
    assert snapshots["rebuilt"] == snapshots["by-row"]
    assert {m[:3] + m[5:6] for m in snapshots["rebuilt"]["membership"]} == {
        ("5A", "p2", "1", "0")
    }  # as day 1 had it
    assert len(snapshots["rebuilt"]["person"]) == 3  # untouched rows stay
