"""The embedded default database: a private PostgreSQL cluster kept in ``.convkey/``.

With no DSN configured, every command uses a cluster under ``$CONVKEY_HOME`` (default
``./.convkey``), created with ``initdb`` and started with ``pg_ctl`` on a unix socket the first
time it is needed, reused afterwards. As root the server binaries refuse to run, so they run
through ``runuser -u postgres``. The test harness uses the same class on a ``mkdtemp`` folder.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from .errors import ConfigurationError

INSTALL_HINT = (
    "Install the PostgreSQL server (Debian/Ubuntu: apt-get install postgresql-15; "
    "macOS: brew install postgresql@15), or point convkey at an existing server with "
    "CONVKEY_DSN=postgresql://user@host/dbname (or --dsn)."
)
DEFAULT_DBNAME = "convkey"
SOCKET_PATH_MAX = 100  # sun_path is 108 bytes on Linux; keep room for ".s.PGSQL.NNNNN"


def find_bindir() -> Path:
    """The folder holding initdb/pg_ctl/postgres: $CONVKEY_PG_BINDIR, pg_config, then known paths."""
    candidates: list[str] = []
    if os.environ.get("CONVKEY_PG_BINDIR"):
        candidates.append(os.environ["CONVKEY_PG_BINDIR"])
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=True)
            candidates.append(out.stdout.strip())
        except (OSError, subprocess.CalledProcessError):
            pass
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True)
    candidates += sorted(glob.glob("/opt/homebrew/opt/postgresql@*/bin"), reverse=True)
    candidates += ["/usr/local/pgsql/bin", "/usr/pgsql-15/bin"]
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(str(Path(initdb).parent))
    for c in candidates:
        if c and (Path(c) / "initdb").is_file() and (Path(c) / "pg_ctl").is_file():
            return Path(c)
    raise ConfigurationError(
        "no PostgreSQL server binaries (initdb, pg_ctl) found for the embedded database",
        hint=INSTALL_HINT,
    )


def _version_key(path: str) -> int:
    part = Path(path).parent.name
    return int(part) if part.isdigit() else 0


def _as_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


@dataclass
class EmbeddedCluster:
    """A PostgreSQL cluster in ``home``: data in ``home/pgdata``, socket in ``home`` (or /tmp)."""

    home: Path
    port: int = 5432
    fsync: bool = True
    dbname: str = DEFAULT_DBNAME

    @classmethod
    def default(cls) -> "EmbeddedCluster":
        home = os.environ.get("CONVKEY_HOME") or os.path.join(os.getcwd(), ".convkey")
        return cls(Path(home).absolute())

    @property
    def datadir(self) -> Path:
        return self.home / "pgdata"

    @property
    def socket_dir(self) -> Path:
        if len(str(self.home)) + 20 <= SOCKET_PATH_MAX:
            return self.home
        # a deep working directory: unix socket paths are limited to ~107 bytes
        import hashlib

        digest = hashlib.sha1(str(self.home).encode()).hexdigest()[:12]
        return Path("/tmp") / f"convkey-{digest}"

    @property
    def logfile(self) -> Path:
        return self.home / "postgres.log"

    def url(self, dbname: str | None = None) -> str:
        """A libpq URI for a database of this cluster (unix socket, user postgres, trust auth)."""
        db = dbname or self.dbname
        return f"postgresql://postgres@/{quote(db)}?host={quote(str(self.socket_dir))}&port={self.port}"

    # --- running the server binaries ---------------------------------------------------------
    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        cmd = [str(find_bindir() / args[0]), *args[1:]]
        if _as_root():
            runuser = shutil.which("runuser")
            if not runuser:
                raise ConfigurationError(
                    "running as root, but runuser is missing: PostgreSQL refuses to run as root",
                    hint="run convkey as an ordinary user, or set CONVKEY_DSN",
                )
            cmd = [runuser, "-u", "postgres", "--", *cmd]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if check and proc.returncode != 0:
            raise ConfigurationError(
                f"{args[0]} failed (exit {proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}",
                hint=f"see {self.logfile}",
            )
        return proc

    def _prepare_home(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        for d in {self.home, self.socket_dir}:
            d.mkdir(parents=True, exist_ok=True)
            if _as_root():
                shutil.chown(d, "postgres", "postgres")
        if _as_root():
            probe = subprocess.run(["runuser", "-u", "postgres", "--", "test", "-w", str(self.home)])
            if probe.returncode != 0:
                raise ConfigurationError(
                    f"the postgres user cannot write to {self.home} (a parent folder is private)",
                    hint="set CONVKEY_HOME to a folder under /tmp or /var/tmp, or set CONVKEY_DSN",
                )

    def initialized(self) -> bool:
        return (self.datadir / "PG_VERSION").is_file()

    def running(self) -> bool:
        if not self.initialized():
            return False
        return self._run("pg_ctl", "status", "-D", str(self.datadir), check=False).returncode == 0

    def start(self) -> bool:
        """Create (first time) and start the cluster, and create its database. True if it started now."""
        self._prepare_home()
        if not self.initialized():
            self._run("initdb", "-D", str(self.datadir), "-U", "postgres", "-A", "trust",
                      "-E", "UTF8", "--locale=C.UTF-8", "--no-instructions")
        if self.running():
            self._ensure_database()
            return False
        opts = f"-k '{self.socket_dir}' -p {self.port} -c listen_addresses=''"
        if not self.fsync:
            opts += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._run("pg_ctl", "start", "-w", "-t", "60", "-D", str(self.datadir), "-l", str(self.logfile), "-o", opts)
        self._ensure_database()
        return True

    def _ensure_database(self) -> None:
        import psycopg

        deadline = time.monotonic() + 30
        while True:
            try:
                with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
                    exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.dbname,)).fetchone()
                    if not exists:
                        conn.execute(f'CREATE DATABASE "{self.dbname}"')
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def stop(self) -> bool:
        if not self.running():
            return False
        self._run("pg_ctl", "stop", "-w", "-m", "fast", "-D", str(self.datadir))
        return True

    def destroy(self) -> None:
        """Stop and delete the cluster (used by the test harness for its throwaway clusters)."""
        try:
            self.stop()
        finally:
            shutil.rmtree(self.home, ignore_errors=True)
            if self.socket_dir != self.home:
                shutil.rmtree(self.socket_dir, ignore_errors=True)


def resolve_dsn(cli_dsn: str | None = None, *, start: bool = True) -> str:
    """DSN for every command: --dsn, else CONVKEY_DSN, else DATABASE_URL, else the embedded default."""
    for value in (cli_dsn, os.environ.get("CONVKEY_DSN"), os.environ.get("DATABASE_URL")):
        if value:
            return value
    cluster = EmbeddedCluster.default()
    if start:
        cluster.start()
    return cluster.url()
