"""One school's part of a run: the keys an undo limited to a school puts back.

The school's groups are the school and every group under it, followed by the parent links
of the current state and of the undone run's change set (a class the run deleted hangs under
the school in the change set only). Its persons are those whose memberships the run changed
in the school's groups only: a teacher the run took out of two schools is left to a whole
undo. Terms are shared by the schools and never in a school's part.
"""

from __future__ import annotations


def fill(cur, customer: str, undone: int, school: str) -> int:
    """``_undo_scope_groups`` and ``_undo_scope_persons`` for the school; how many groups."""
    params = {"customer": customer, "undone": undone, "school": school}
    for table in ("_undo_scope_groups", "_undo_scope_persons"):
        cur.execute(f"DROP TABLE IF EXISTS pg_temp.{table}")
    cur.execute(
        """
        CREATE TEMP TABLE _undo_scope_groups ON COMMIT DROP AS
        WITH RECURSIVE links AS (
            SELECT sourcedid, parent_id FROM sis.groups WHERE customer = %(customer)s
            UNION
            SELECT sourcedid, parent_id FROM sis.group_changes WHERE run_id = %(undone)s
            UNION
            SELECT sourcedid, before->>'parent_id' FROM sis.group_changes
            WHERE run_id = %(undone)s AND before IS NOT NULL
        ), under (key) AS (
            SELECT %(school)s::text
            UNION
            SELECT l.sourcedid FROM links l JOIN under u ON l.parent_id = u.key
        )
        SELECT key FROM under
        """,
        params,
    )
    cur.execute("SELECT count(*) FROM _undo_scope_groups")
    groups = cur.fetchone()[0]
    cur.execute(
        """
        CREATE TEMP TABLE _undo_scope_persons ON COMMIT DROP AS
        SELECT ch.member_id AS key FROM sis.membership_changes ch
        LEFT JOIN _undo_scope_groups s ON s.key = ch.group_id
        WHERE ch.run_id = %(undone)s AND ch.idtype = 1
        GROUP BY ch.member_id HAVING bool_and(s.key IS NOT NULL)
        """,
        params,
    )
    cur.execute("ANALYZE _undo_scope_groups")
    cur.execute("ANALYZE _undo_scope_persons")
    return groups
