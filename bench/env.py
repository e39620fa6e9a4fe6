"""The bench database and the machine it runs on.

By default a throwaway cluster: ``EmbeddedCluster`` in a ``mkdtemp`` home (the same code as the
embedded default database and the test harness), started with PostgreSQL's defaults, so fsync,
synchronous_commit and full_page_writes are on: writes are bound by commit flushes as they are
for a user. With ``--dsn`` (a superuser DSN) a scratch database is created on that server instead
and dropped afterwards; the test suite's smoke test uses that with its own server.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
from psycopg.conninfo import make_conninfo

from convkey.embedded import EmbeddedCluster, find_bindir
from convkey.migrate import migrate

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SQL_DIR = HERE / "sql"
SCRIPTS_DIR = HERE / "scripts"
BENCH_DB = "convkey_bench"


class BenchEnv:
    """One migrated bench database, with an autocommit connection for setup statements."""

    def __init__(self, dsn: str | None = None, *, log=print):
        self.admin_dsn = dsn
        self.log = log
        self.cluster: EmbeddedCluster | None = None
        self.dbname = BENCH_DB if dsn is None else f"{BENCH_DB}_{os.getpid()}"
        self.dsn = ""
        self._conn: psycopg.Connection | None = None
        self.bindir = find_bindir()

    # --- lifecycle ---------------------------------------------------------------------------
    def open(self) -> "BenchEnv":
        if self.admin_dsn is None:
            home = Path(tempfile.mkdtemp(prefix="convkey-bench-"))
            os.chmod(home, 0o755)
            self.cluster = EmbeddedCluster(home, port=5432, fsync=True, dbname=self.dbname)
            t0 = time.monotonic()
            self.cluster.start()
            self.dsn = self.cluster.url()
            self.log(f"bench cluster in {home} (fsync on), started in {time.monotonic() - t0:.1f}s")
        else:
            with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.dbname}" WITH (FORCE)')
                conn.execute(f'CREATE DATABASE "{self.dbname}"')
            self.dsn = make_conninfo(self.admin_dsn, dbname=self.dbname)
            self.log(f"bench database {self.dbname} on the given server")
        t0 = time.monotonic()
        migrate(self.dsn)
        self.log(f"migrated with convkey migrate in {time.monotonic() - t0:.1f}s")
        return self

    def dsn_for(self, dbname: str) -> str:
        """The bench server's DSN for another of its databases."""
        return make_conninfo(self.dsn, dbname=dbname)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self.cluster is not None:
            self.cluster.destroy()
        elif self.admin_dsn is not None:
            with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.dbname}" WITH (FORCE)')

    @property
    def own_cluster(self) -> bool:
        return self.cluster is not None

    # --- SQL helpers ---------------------------------------------------------------------------
    @property
    def conn(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self.dsn, autocommit=True)
        return self._conn

    def sql(self, text: str, params=None) -> list[tuple]:
        cur = self.conn.execute(text, params)
        return cur.fetchall() if cur.description else []

    def value(self, text: str, params=None):
        rows = self.sql(text, params)
        return rows[0][0] if rows else None

    def run_file(self, name: str) -> None:
        """Run one of bench/sql/*.sql (several statements, no parameters)."""
        self.conn.execute((SQL_DIR / name).read_text(encoding="utf-8"))

    def checkpoint(self) -> None:
        try:
            self.sql("CHECKPOINT")
        except psycopg.Error:  # not a superuser on a --dsn server: runs simply start without it
            pass

    def restart_with(self, settings: dict[str, str]) -> bool:
        """Own cluster only: ALTER SYSTEM the settings and restart. False when not possible."""
        if self.cluster is None:
            return False
        for name, value in settings.items():
            self.sql(f"ALTER SYSTEM SET {name} = {value}")
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self.cluster.stop()
        self.cluster.start()
        return True

    # --- description ---------------------------------------------------------------------------
    def describe(self) -> dict[str, str]:
        info = machine()
        info["postgresql"] = self.value("SELECT version()")
        settings = dict(self.sql(
            "SELECT name, current_setting(name) FROM pg_settings WHERE name = ANY(%s)",
            (["fsync", "synchronous_commit", "full_page_writes", "shared_buffers", "max_wal_size", "wal_sync_method",
              "max_connections"],)))
        info["server settings"] = ", ".join(f"{k}={settings[k]}" for k in sorted(settings))
        info["server"] = "own throwaway cluster (EmbeddedCluster in mkdtemp)" if self.own_cluster else "--dsn server"
        pgbench = subprocess.run([str(self.bindir / "pgbench"), "--version"], capture_output=True, text=True)
        info["pgbench"] = pgbench.stdout.strip()
        return info


def machine() -> dict[str, str]:
    info: dict[str, str] = {}
    info["nproc"] = str(os.cpu_count())
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            total = next(line for line in fh if line.startswith("MemTotal:"))
        info["memory"] = f"{int(total.split()[1]) / 1024 / 1024:.1f} GiB"
    except (OSError, StopIteration):
        info["memory"] = "unknown"
    model = "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info["cpu"] = model
    info["kernel"] = platform.platform()
    info["python"] = platform.python_version()
    info["date"] = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    info["git"] = git_state()
    return info


def git_state() -> str:
    if not shutil.which("git"):
        return "unknown"
    try:
        head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", "functions", "sql",
                                "runner"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" + uncommitted changes in functions/, sql/ or runner/" if dirty else "")


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"
