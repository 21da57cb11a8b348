import psycopg2
from sisflow.db.migrations import available, migrate


def test_migrations_are_applied_once_and_recorded(db_url):
    conn = psycopg2.connect(db_url)  # the template was migrated already
    assert migrate(conn) == []
    with conn.cursor() as cur:
        cur.execute("SELECT version, name FROM public.sisflow_migrations ORDER BY version")
        assert cur.fetchall() == [(v, name) for v, name, _ in available()]
    conn.close()


def test_migrating_an_empty_database_builds_the_schema(pg_server_url):
    from tests.conftest import _admin, _with_db

    admin = _admin(pg_server_url)
    with admin.cursor() as cur:
        cur.execute("DROP DATABASE IF EXISTS sisflow_empty")
        cur.execute("CREATE DATABASE sisflow_empty")
    conn = psycopg2.connect(_with_db(pg_server_url, "sisflow_empty"))
    applied = migrate(conn)
    assert applied == [name for _, name, _ in available()]
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM sis.runs")
        assert cur.fetchone() == (0,)
    assert migrate(conn) == []  # a second start changes nothing
    conn.close()
    with admin.cursor() as cur:
        cur.execute("DROP DATABASE sisflow_empty WITH (FORCE)")
