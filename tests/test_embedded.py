"""The embedded default database: the ``convkey db`` commands, ``migrate`` without a DSN, the
no-PostgreSQL hint and the socket folder of a deep working directory.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from convkey import cli, embedded
from convkey.errors import ConfigurationError
from snapshot import applied_ids, migration_ids
from snapshot import run_cli as convkey


@pytest.fixture
def convkey_home(monkeypatch):
    """A private $CONVKEY_HOME the postgres user can reach; its cluster is stopped and removed after."""
    home = Path(tempfile.mkdtemp(prefix="convkey-home-"))
    os.chmod(home, 0o755)
    monkeypatch.setenv("CONVKEY_HOME", str(home))
    monkeypatch.delenv("CONVKEY_DSN", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    try:
        yield home
    finally:
        embedded.EmbeddedCluster(home).destroy()
        shutil.rmtree(home, ignore_errors=True)


def test_db_commands_and_migrate_without_dsn(convkey_home):
    status = convkey("db", "status")
    assert status.returncode == 3 and status.stdout.startswith("not created"), status

    started = convkey("db", "start")
    assert started.returncode == 0 and started.stdout.startswith("started"), started

    url_proc = convkey("db", "url")
    assert url_proc.returncode == 0, url_proc
    url = url_proc.stdout.strip()
    assert url.startswith("postgresql://")
    assert Path(conninfo_to_dict(url)["host"]) == convkey_home
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT current_database()").fetchone()[0] == embedded.DEFAULT_DBNAME

    status = convkey("db", "status")
    assert status.returncode == 0 and status.stdout.startswith("running"), status

    again = convkey("db", "start")
    assert again.returncode == 0 and again.stdout.startswith("already running"), again

    migrated = convkey("migrate")
    assert migrated.returncode == 0, migrated
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = 'convkey'").fetchone()
    assert applied_ids(url) == migration_ids()

    stopped = convkey("db", "stop")
    assert stopped.returncode == 0 and stopped.stdout.startswith("stopped"), stopped
    status = convkey("db", "status")
    assert status.returncode == 3 and status.stdout.startswith("stopped"), status


def hide_postgresql(monkeypatch) -> None:
    monkeypatch.delenv("CONVKEY_PG_BINDIR", raising=False)
    monkeypatch.setattr(embedded.shutil, "which", lambda *a, **k: None)
    monkeypatch.setattr(embedded.glob, "glob", lambda *a, **k: [])


def assert_install_hint(hint: str) -> None:
    assert "install" in hint.lower() and "postgresql" in hint.lower(), hint
    assert "CONVKEY_DSN" in hint, hint


def test_no_postgresql_binaries_hint(monkeypatch):
    hide_postgresql(monkeypatch)
    with pytest.raises(ConfigurationError) as err:
        embedded.find_bindir()
    assert_install_hint(err.value.hint)


def test_cli_without_postgresql_prints_the_hint(monkeypatch, convkey_home, capsys):
    hide_postgresql(monkeypatch)
    assert cli.main(["db", "start"]) == 2
    stderr = capsys.readouterr().err
    assert stderr.startswith("convkey: error:")
    assert_install_hint(stderr.split("hint:", 1)[1])


def test_deep_home_gets_a_socket_folder_under_tmp():
    base = Path(tempfile.mkdtemp(prefix="convkey-deep-"))
    os.chmod(base, 0o755)
    home = base / ("d" * 60) / ("e" * 60)
    cluster = embedded.EmbeddedCluster(home, port=5439, fsync=False)
    try:
        assert len(str(home)) > 100
        assert cluster.socket_dir.parent == Path("/tmp")
        assert cluster.socket_dir == embedded.EmbeddedCluster(home).socket_dir, "the folder must be stable"
        assert len(str(cluster.socket_dir / ".s.PGSQL.65535")) < 108
        assert Path(conninfo_to_dict(cluster.url())["host"]) == cluster.socket_dir

        cluster.start()  # the server really listens there
        with psycopg.connect(cluster.url()) as conn:
            assert conn.execute("SELECT current_setting('unix_socket_directories')").fetchone()[0] == str(
                cluster.socket_dir
            )
    finally:
        cluster.destroy()
        shutil.rmtree(base, ignore_errors=True)
    assert not cluster.socket_dir.exists(), "destroy() removes the socket folder under /tmp"
