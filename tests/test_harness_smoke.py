def test_template_has_schema(db_conn):
    assert db_conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname = 'convkey'").fetchone()[0] == 1
