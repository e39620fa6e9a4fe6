"""Apply convkey's migrations with yoyo, then always run the post-apply function files.

yoyo runs ``post-apply*`` files only when a regular migration was pending in the same run; convkey
wants every changed function body deployed on every ``migrate``, so it applies pending migrations
and then runs the post-apply step itself, under yoyo's lock. A session-level advisory lock taken
first makes concurrent ``convkey migrate`` runs queue up instead of racing on yoyo's own tables.
A proxy database (``convkey shards``, README "Scaling out by business") has its own migration
source, ``proxy/``: ``migrate`` recognises such a database and applies that source instead.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from urllib.parse import quote, urlencode

import psycopg
from psycopg.conninfo import conninfo_to_dict
from yoyo import get_backend, read_migrations

logger = logging.getLogger("convkey.migrate")

# 'convkey' in ASCII: the key of the advisory lock that serializes migrate runs.
MIGRATE_LOCK_KEY = 0x636F6E766B6579
LOCK_TIMEOUT_S = 300


def migration_dirs() -> tuple[Path, Path]:
    """(sql, functions): shipped inside the wheel, or the repository's own folders in a checkout."""
    shipped = resources.files("convkey") / "_migrations"
    if shipped.is_dir():
        base = Path(str(shipped))
    else:
        base = Path(__file__).resolve().parents[2]
    sql, functions = base / "sql", base / "functions"
    if not sql.is_dir() or not functions.is_dir():
        raise FileNotFoundError(f"convkey migrations not found under {base}")
    return sql, functions


def yoyo_url(dsn: str) -> str:
    """Turn any libpq DSN (URI or key=value) into yoyo's ``postgresql+psycopg://`` URL."""
    params = conninfo_to_dict(dsn)
    user = params.pop("user", None)
    password = params.pop("password", None)
    host = params.pop("host", None)
    port = params.pop("port", None)
    dbname = params.pop("dbname", None) or user or ""
    netloc = ""
    if user:
        netloc = quote(user, safe="")
        if password:
            netloc += ":" + quote(password, safe="")
        netloc += "@"
    elif password:
        params["password"] = password
    # a unix-socket folder, a host list or an IPv6 address cannot stand in the URL's netloc
    if host and not host.startswith("/") and "," not in host and ":" not in host:
        netloc += host
        if port:
            netloc += f":{port}"
    else:
        if host:
            params["host"] = host
        if port:
            params["port"] = port
    path = quote(dbname, safe="")
    if path != dbname:
        # yoyo does not unquote the URL path; its query arguments override it and are unquoted
        params["dbname"] = dbname
    query = ("?" + urlencode(params)) if params else ""
    return f"postgresql+psycopg://{netloc}/{path}{query}"


@dataclass
class MigrateReport:
    applied: list[str] = field(default_factory=list)
    rolled_back: list[str] = field(default_factory=list)
    post_apply: list[str] = field(default_factory=list)
    status: list[tuple[str, bool]] = field(default_factory=list)
    schema_version: str | None = None
    functions: list[str] = field(default_factory=list)


def _load(dirs: tuple[Path, Path] | None = None):
    sql, functions = dirs or migration_dirs()
    return read_migrations(str(sql), str(functions))


def migrate(dsn: str, *, list_only: bool = False, rollback_all: bool = False,
            dirs: tuple[Path, Path] | None = None) -> MigrateReport:
    """Apply pending migrations and the post-apply files (or list, or roll everything back).

    ``dirs`` (sql, functions) names the migration source; by default the package's own, or the
    proxy's (``convkey.shards.proxy_dirs()``) when the database is a convkey proxy.
    """
    report = MigrateReport()
    with psycopg.connect(dsn, autocommit=True) as lock_conn:
        if dirs is None:
            from .shards import is_proxy, proxy_dirs

            dirs = proxy_dirs() if is_proxy(lock_conn) else migration_dirs()
        migrations = _load(dirs)
        lock_conn.execute("SET lock_timeout = 0")
        lock_conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATE_LOCK_KEY,))
        try:
            backend = get_backend(yoyo_url(dsn))
            try:
                with backend.lock(timeout=LOCK_TIMEOUT_S):
                    if list_only:
                        applied = set(backend.get_applied_migration_hashes())
                        report.status = [(m.id, m.hash in applied) for m in migrations]
                    elif rollback_all:
                        pending = backend.to_rollback(migrations)
                        backend.rollback_migrations(pending)
                        report.rolled_back = [m.id for m in pending]
                    else:
                        pending = backend.to_apply(migrations)
                        backend.apply_migrations_only(pending)
                        report.applied = [m.id for m in pending]
                        backend.run_post_apply(migrations)
                        report.post_apply = [m.id for m in migrations.post_apply]
            finally:
                backend.connection.close()
        finally:
            lock_conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATE_LOCK_KEY,))
        _describe(lock_conn, migrations, report)
    return report


def _describe(conn: psycopg.Connection, migrations, report: MigrateReport) -> None:
    """Fill in the schema version (last applied regular migration) and the installed functions."""
    has_yoyo = conn.execute("SELECT to_regclass('_yoyo_migration') IS NOT NULL").fetchone()[0]
    if has_yoyo:
        row = conn.execute(
            "SELECT migration_id FROM _yoyo_migration ORDER BY applied_at_utc DESC, migration_id DESC LIMIT 1"
        ).fetchone()
        report.schema_version = row[0] if row else None
    report.functions = [
        r[0]
        for r in conn.execute(
            """SELECT p.oid::regprocedure::text FROM pg_proc p
               JOIN pg_namespace n ON n.oid = p.pronamespace
               WHERE n.nspname = 'convkey' AND p.proname NOT LIKE '\\_%%' ORDER BY 1"""
        )
    ]
