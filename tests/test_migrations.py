"""Migrations: apply twice, roll everything back, two appliers at once, ``--list``, DSN resolution,
yoyo URLs, and the schema drift check (tests/schema_snapshot.sql, tests/data/landed_migrations.sha256).
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote, urlencode

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict
from yoyo import get_backend
from yoyo.backends.core.postgresql import PostgresqlPsycopgBackend
from yoyo.connections import parse_uri

import snapshot  # tests/snapshot.py
from convkey import embedded
from convkey.migrate import migrate, migration_dirs, yoyo_url
from snapshot import applied_ids, migration_ids, run_cli

_, FUNCTIONS_DIR = migration_dirs()
YOYO_TABLE = re.compile(r"public\.(_yoyo_[a-z_]+|yoyo_lock)")


def post_apply_ids() -> list[str]:
    return sorted(p.stem for p in FUNCTIONS_DIR.glob("post-apply*.sql"))


# --- apply, re-apply, roll back --------------------------------------------------------------------
def test_second_migrate_applies_nothing_and_changes_nothing(fresh_db):
    dsn = fresh_db()
    first = migrate(dsn)
    assert first.applied == migration_ids()
    assert first.post_apply == post_apply_ids()
    before = snapshot.schema_dump(dsn)

    second = migrate(dsn)

    assert second.applied == []
    assert second.post_apply == post_apply_ids(), "the function files must run on every migrate"
    assert second.schema_version == migration_ids()[-1]
    assert snapshot.schema_dump(dsn) == before
    assert applied_ids(dsn) == migration_ids()



def test_migrate_replaces_a_function_whose_result_type_changed(fresh_db):
    """_parse_wa_id returned TABLE (a set) before 0.2; CREATE OR REPLACE cannot change that, so its
    post-apply file drops the old definition first. A database migrated by the old release upgrades."""
    dsn = fresh_db()
    migrate(dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP FUNCTION convkey._parse_wa_id(text, text)")
        conn.execute("""
            CREATE FUNCTION convkey._parse_wa_id(p_raw text, p_param text)
            RETURNS TABLE(kind text, jid_user text, device integer, phone_e164 text, lid text)
            LANGUAGE sql AS $$ SELECT 'pn', '1', NULL::int, '+1', NULL::text $$""")
    before = snapshot.schema_dump(dsn)

    migrate(dsn)

    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT proretset FROM pg_proc WHERE oid = 'convkey._parse_wa_id(text, text)'::regprocedure"
                            ).fetchone()[0] is False
        assert conn.execute("SELECT kind, phone_e164 FROM convkey.parse_wa_id('972501234567:3@s.whatsapp.net')"
                            ).fetchone() == ("pn", "+972501234567")
    assert snapshot.schema_dump(dsn) != before


def leftovers(dsn: str) -> dict[str, list[str]]:
    """What a database holds outside the system schemas."""
    system = "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%%'"
    with psycopg.connect(dsn) as conn:
        return {
            "schemas": [r[0] for r in conn.execute(f"SELECT n.nspname FROM pg_namespace n WHERE {system} ORDER BY 1")],
            "relations": [
                r[0]
                for r in conn.execute(
                    "SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                    f" WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND {system} ORDER BY 1"
                )
            ],
            "functions": [
                r[0]
                for r in conn.execute(
                    f"SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
                    f" WHERE {system} ORDER BY 1"
                )
            ],
            "extensions": [r[0] for r in conn.execute("SELECT extname FROM pg_extension ORDER BY 1")],
        }


def test_rollback_all_leaves_only_yoyo_tables_and_migrates_again(fresh_db):
    dsn = fresh_db()
    migrate(dsn)

    report = migrate(dsn, rollback_all=True)

    assert report.rolled_back == migration_ids()[::-1]
    left = leftovers(dsn)
    assert left["schemas"] == ["public"], left
    assert "public._yoyo_migration" in left["relations"]
    assert [r for r in left["relations"] if not YOYO_TABLE.fullmatch(r)] == [], left
    assert left["functions"] == [], left
    assert left["extensions"] == ["plpgsql"], left
    assert applied_ids(dsn) == []

    again = migrate(dsn)
    assert again.applied == migration_ids()
    assert applied_ids(dsn) == migration_ids()


def test_two_cli_migrates_at_once_equal_one_normal_migrate(fresh_db, db_dsn):
    dsn = fresh_db()
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "convkey", "migrate", "--dsn", dsn],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]

    for p, (out, err) in zip(procs, outputs):
        assert p.returncode == 0, f"exit {p.returncode}\n{out}\n{err}"
    assert applied_ids(dsn) == migration_ids(), "each migration is recorded exactly once"
    assert snapshot.schema_dump(dsn) == snapshot.schema_dump(db_dsn)


def test_cli_list_prints_applied_or_pending_per_migration(fresh_db, db_dsn):
    def listed(dsn: str) -> list[tuple[str, str]]:
        proc = run_cli("migrate", "--list", "--dsn", dsn)
        assert proc.returncode == 0, proc.stderr
        return [tuple(line.split()) for line in proc.stdout.splitlines() if line.strip()]

    assert listed(fresh_db()) == [("pending", mid) for mid in migration_ids()]
    assert listed(db_dsn) == [("applied", mid) for mid in migration_ids()]


# --- DSN resolution and yoyo URLs ----------------------------------------------------------------
def test_resolve_dsn_order(monkeypatch, tmp_path):
    monkeypatch.setenv("CONVKEY_DSN", "dbname=from_convkey_dsn")
    monkeypatch.setenv("DATABASE_URL", "postgresql:///from_database_url")
    assert embedded.resolve_dsn("dbname=from_flag") == "dbname=from_flag"
    assert embedded.resolve_dsn(None) == "dbname=from_convkey_dsn"

    monkeypatch.setenv("CONVKEY_DSN", "")  # set but empty counts as unset
    assert embedded.resolve_dsn(None) == "postgresql:///from_database_url"

    monkeypatch.delenv("CONVKEY_DSN")
    monkeypatch.delenv("DATABASE_URL")
    home = tmp_path / "ckhome"
    monkeypatch.setenv("CONVKEY_HOME", str(home))
    url = embedded.resolve_dsn(None, start=False)
    params = conninfo_to_dict(url)
    assert url.startswith("postgresql://")
    assert Path(params["host"]) == embedded.EmbeddedCluster(home).socket_dir == home
    assert params["dbname"] == embedded.DEFAULT_DBNAME
    assert not home.exists(), "start=False must not create the cluster"

    monkeypatch.delenv("CONVKEY_HOME")
    monkeypatch.chdir(tmp_path)
    assert Path(conninfo_to_dict(embedded.resolve_dsn(None, start=False))["host"]) == tmp_path / ".convkey"


YOYO_URL_CASES = [
    # URI, password with every URL delimiter, extra parameters
    "postgresql://app:p%40ss%3Aw%2Fo%20rd%25%3F%23@db.example.com:6543/convkey?sslmode=require&application_name=ck",
    # key=value with a unix-socket folder
    "host=/var/run/postgresql port=5433 user=postgres dbname=convkey",
    # URI with a unix-socket folder (with a space) in the query
    "postgresql://postgres@/convkey?host=/tmp/convkey%20home&port=5433",
    # key=value, quoted password with quote, space, colon, at, slash, question mark, hash, percent
    r"host=db.example.com user=app password='a b\'c:d@e/f?g#h%' dbname=convkey",
    # IPv6 address
    "host=::1 port=5432 user=app dbname=convkey",
    # a password without a user (libpq then takes the user from PGUSER or the OS)
    "host=db.example.com password=s3cret dbname=convkey",
    # a database name that needs quoting in a URL
    "host=db.example.com user=app dbname='my db%2Fx'",
]


@pytest.mark.parametrize("dsn", YOYO_URL_CASES)
def test_yoyo_url_reaches_psycopg_unchanged(dsn, monkeypatch):
    """What yoyo's own backend hands to psycopg.connect equals the DSN's parameters."""
    url = yoyo_url(dsn)
    assert url.startswith("postgresql+psycopg://")
    captured: dict = {}

    class FakeConnection:
        autocommit = False

    def fake_connect(**kwargs):
        captured.update(kwargs)
        return FakeConnection()

    monkeypatch.setattr(psycopg, "connect", fake_connect)
    backend = object.__new__(PostgresqlPsycopgBackend)
    backend.connect(parse_uri(url))

    passed = {k: str(v) for k, v in captured.items() if k != "autocommit"}
    assert passed == conninfo_to_dict(dsn), url


def test_yoyo_url_round_trip_on_the_server(pg_server):
    """yoyo connects to an oddly named database over the test server, from a key=value and a URI DSN."""
    name = "convkey odd%20name"
    kv_dsn = pg_server.create_database(name)
    try:
        params = conninfo_to_dict(kv_dsn)
        auth = quote(params.pop("user", ""), safe="")
        if params.get("password"):
            auth += ":" + quote(params.pop("password"), safe="")
        del params["dbname"]
        uri_dsn = f"postgresql://{auth}@/{quote(name, safe='')}?{urlencode(params)}"
        for dsn in (kv_dsn, uri_dsn):
            backend = get_backend(yoyo_url(dsn))
            try:
                assert backend.connection.execute("SELECT current_database()").fetchone()[0] == name
            finally:
                backend.connection.close()
    finally:
        pg_server.drop_database(name)


# --- schema drift ----------------------------------------------------------------------------------
def test_schema_matches_snapshot(db_dsn):
    """The migrated template (dumped from a clone of it) equals tests/schema_snapshot.sql."""
    expected = snapshot.SNAPSHOT.read_text(encoding="utf-8") if snapshot.SNAPSHOT.exists() else ""
    actual = snapshot.render_snapshot(db_dsn)
    if actual != expected:
        pytest.fail(
            "the schema built by the migrations differs from tests/schema_snapshot.sql:\n"
            + snapshot.snapshot_diff(expected, actual)
            + f"\nIf the change is intended, run: {snapshot.UPDATE_COMMAND}",
            pytrace=False,
        )


def test_landed_migrations_unchanged():
    landed = snapshot.read_landed()
    assert "sql/0001_create_schema.sql" in landed, f"{snapshot.LANDED} is missing or empty: run make snapshot"
    problems = snapshot.landed_problems(landed, snapshot.committed_migrations())
    assert not problems, "\n".join(problems)


def test_landed_check_flags_edited_and_deleted_files_only(tmp_path, monkeypatch):
    sql = tmp_path / "sql"
    sql.mkdir()
    for name in ("0001_a_b.sql", "0002_c_d.sql", "0003_e_f.sql", "0004_wip.sql", "0005_wip.sql"):
        (sql / name).write_text(f"-- {name}\n")
    monkeypatch.setattr(snapshot, "ROOT", tmp_path)
    monkeypatch.setattr(snapshot, "SQL_DIR", sql)
    monkeypatch.setattr(snapshot, "LANDED", tmp_path / "landed.sha256")
    committed = {"sql/0001_a_b.sql", "sql/0002_c_d.sql", "sql/0003_e_f.sql"}
    assert len(snapshot.update_landed({}, committed)) == 5
    landed = snapshot.read_landed()
    assert landed["sql/0001_a_b.sql"] == hashlib.sha256(b"-- 0001_a_b.sql\n").hexdigest()
    assert snapshot.landed_problems(landed, committed) == []

    (sql / "0001_a_b.sql").write_text("-- edited\n")
    (sql / "0002_c_d.sql").unlink()
    (sql / "0004_wip.sql").write_text("-- still being written\n")  # listed, never committed
    (sql / "0005_wip.sql").rename(sql / "0006_wip.sql")
    (sql / "0007_new.sql").write_text("-- new\n")
    landed = snapshot.read_landed()
    problems = snapshot.landed_problems(landed, committed)
    assert [p.split(":")[0] for p in problems] == ["sql/0001_a_b.sql", "sql/0002_c_d.sql"]
    assert "edited" in problems[0] and "deleted" in problems[1]
    # outside a git checkout every listed file counts as landed
    assert len(snapshot.landed_problems(landed, None)) == 4

    changed = snapshot.update_landed(landed, committed)
    assert changed == ["sql/0004_wip.sql", "sql/0006_wip.sql", "sql/0007_new.sql"]
    relisted = snapshot.read_landed()
    assert relisted["sql/0001_a_b.sql"] == landed["sql/0001_a_b.sql"], "a landed hash is never rewritten"
    assert "sql/0005_wip.sql" not in relisted
