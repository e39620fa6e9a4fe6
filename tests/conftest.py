"""Test harness: one real PostgreSQL server per test session, one migrated template, a clone per test.

The server is chosen once: ``CONVKEY_TEST_DSN`` (a superuser DSN) if set; else a testcontainers
PostgreSQL when a Docker engine answers a ping; else a throwaway cluster from this machine's
``initdb``/``pg_ctl`` in a ``mkdtemp`` folder (the same code as the embedded default database).
The template database is migrated with the real ``convkey migrate`` code; each test that asks for
``db_dsn``/``db_conn`` gets a fresh ``CREATE DATABASE ... TEMPLATE`` clone.

``proxy_cluster`` adds a PL/Proxy proxy with 4 partitions on 2 shards (tests/proxy_harness.py). With
``CONVKEY_TEST_PROXY=1``, ``db_dsn``/``db_conn`` hand out proxy databases over fresh shard clones
instead, so a suite runs through the proxy unchanged (tests/test_proxy.py does that for the core
and identity-graph suites).
"""

from __future__ import annotations

import itertools
import os
import tempfile
from pathlib import Path

import psycopg
import pytest
from hypothesis import HealthCheck, settings
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from convkey.embedded import EmbeddedCluster
from convkey.migrate import migrate

DATA = Path(__file__).parent / "data"
PROXY_MODE = os.environ.get("CONVKEY_TEST_PROXY") == "1"
# a proxy-mode session may share a given server with a plain one: its own template name
TEMPLATE = "convkey_template_proxy_mode" if PROXY_MODE else "convkey_template"
_counter = itertools.count()


def _docker_answers() -> bool:
    try:
        import docker  # installed with testcontainers

        client = docker.from_env(timeout=3)
        client.ping()
        return True
    except Exception:
        return False


class Server:
    """A PostgreSQL server reachable with a superuser DSN; ``dsn(db)`` names one of its databases."""

    def __init__(self, admin_dsn: str, kind: str, cluster: EmbeddedCluster | None = None):
        self.admin_dsn = admin_dsn
        self.kind = kind
        self.cluster = cluster

    def dsn(self, dbname: str) -> str:
        params = conninfo_to_dict(self.admin_dsn)
        params["dbname"] = dbname
        return make_conninfo(**params)

    def admin(self) -> psycopg.Connection:
        return psycopg.connect(self.admin_dsn, autocommit=True)

    def create_database(self, name: str, template: str | None = None) -> str:
        with self.admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            tpl = f' TEMPLATE "{template}"' if template else ""
            conn.execute(f'CREATE DATABASE "{name}"{tpl}')
        return self.dsn(name)

    def drop_database(self, name: str) -> None:
        with self.admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_server():
    if os.environ.get("CONVKEY_TEST_DSN"):
        yield Server(os.environ["CONVKEY_TEST_DSN"], "dsn")
        return
    if _docker_answers():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:15", driver=None) as pg:
            yield Server(pg.get_connection_url(), "testcontainers")
        return
    home = Path(tempfile.mkdtemp(prefix="convkey-test-"))
    os.chmod(home, 0o755)
    cluster = EmbeddedCluster(home, port=5433, fsync=False, dbname="postgres")
    cluster.start()
    try:
        yield Server(cluster.url("postgres"), "initdb", cluster)
    finally:
        cluster.destroy()


@pytest.fixture(scope="session")
def template_dsn(pg_server):
    """A database migrated once with the real migrate code; tests clone it."""
    dsn = pg_server.create_database(TEMPLATE)
    migrate(dsn)
    return dsn


@pytest.fixture
def fresh_db(pg_server):
    """Factory: an empty (unmigrated) database, dropped after the test."""
    names: list[str] = []

    def make() -> str:
        name = f"convkey_empty_{os.getpid()}_{next(_counter)}"
        names.append(name)
        return pg_server.create_database(name)

    yield make
    for name in names:
        pg_server.drop_database(name)


@pytest.fixture(scope="session")
def proxy_cluster(pg_server, template_dsn):
    """A PL/Proxy proxy with 4 partitions on 2 shards (the session's server and a second throwaway
    cluster), as templates; ``proxy_cluster.create()`` clones them for one test. Skips without the
    plproxy and dblink extensions (Debian: postgresql-15-plproxy)."""
    from proxy_harness import ProxyCluster, plproxy_available

    if not plproxy_available(pg_server.admin_dsn):
        pytest.skip("the plproxy extension is not installed (apt-get install postgresql-15-plproxy)")
    proxy = ProxyCluster.start(pg_server, TEMPLATE)
    try:
        yield proxy
    finally:
        proxy.close()


@pytest.fixture
def db_dsn(pg_server, template_dsn, request):
    """DSN of a fresh clone of the migrated template, dropped after the test. With
    CONVKEY_TEST_PROXY=1: a fresh proxy database in front of two fresh shard clones."""
    if PROXY_MODE:
        proxy = request.getfixturevalue("proxy_cluster")
        dsn, dbs = proxy.create(shared_proxy=True)
        yield dsn
        proxy.drop(dbs)
        return
    name = f"convkey_test_{os.getpid()}_{next(_counter)}"
    dsn = pg_server.create_database(name, template=TEMPLATE)
    yield dsn
    pg_server.drop_database(name)


@pytest.fixture(scope="session")
def ro_conn(pg_server, template_dsn):
    """One connection to a session-wide clone, for tests of pure functions that write nothing."""
    name = f"convkey_ro_{os.getpid()}"
    dsn = pg_server.create_database(name, template=TEMPLATE)
    with psycopg.connect(dsn, autocommit=True) as conn:
        yield conn
    pg_server.drop_database(name)


@pytest.fixture
def db_conn(db_dsn):
    """An autocommit psycopg connection to a fresh migrated database."""
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        yield conn


def table_checksums(conn: psycopg.Connection) -> dict[str, str]:
    """md5 of every convkey table's full contents (and the sequences' positions): equal before and
    after a call means the call wrote nothing. (Proxy mode: the shards' tables and sequences.)"""
    if PROXY_MODE:
        from proxy_harness import proxy_table_checksums

        return proxy_table_checksums(conn)
    sums: dict[str, str] = {}
    tables = conn.execute(
        "SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'convkey' AND c.relkind IN ('r', 'p', 'S') ORDER BY 1"
    ).fetchall()
    for name, kind in tables:
        if kind == "S":
            sql = f'SELECT last_value::text || is_called::text FROM convkey."{name}"'
        else:
            sql = f'SELECT coalesce(md5(string_agg(t::text, \',\' ORDER BY t::text)), \'\') FROM convkey."{name}" t'
        sums[name] = conn.execute(sql).fetchone()[0]
    return sums


def reliability_scale(default: int, large: int) -> int:
    """The size a reliability test runs at: default under make test, large under make reliability
    (CONVKEY_RELIABILITY_SCALE=large), or an explicit number from CONVKEY_RELIABILITY_SCALE."""
    value = os.environ.get("CONVKEY_RELIABILITY_SCALE", "")
    if value == "large":
        return large
    return int(value) if value.isdigit() else default


# Hypothesis profiles of the reference-model test (tests/test_model.py). Registered here, at import
# of this conftest, because pytest's --hypothesis-profile=NAME loads the profile when pytest
# configures itself, before any test module is imported; CONVKEY_HYPOTHESIS_PROFILE=NAME picks one
# for that test alone. "long" is a long random search (CONVKEY_MODEL_EXAMPLES examples).
settings.register_profile(
    "convkey-model-ci", max_examples=reliability_scale(300, 3000), stateful_step_count=30, deadline=None,
    derandomize=True, database=None, print_blob=True, suppress_health_check=list(HealthCheck))
settings.register_profile(
    "long", max_examples=int(os.environ.get("CONVKEY_MODEL_EXAMPLES", "20000")), stateful_step_count=50,
    deadline=None, derandomize=False, print_blob=True, suppress_health_check=list(HealthCheck))


@pytest.fixture
def reliability_record(request):
    """Call record(**figures) to report what a reliability test did (examples, events, faults,
    bad_inputs, retries, violations, ...). With CONVKEY_RELIABILITY_DIR set, the figures are written
    to <dir>/<test name>.json for the RELIABILITY.md report."""
    import json

    def record(**figures) -> None:
        folder = os.environ.get("CONVKEY_RELIABILITY_DIR")
        if not folder:
            return
        Path(folder).mkdir(parents=True, exist_ok=True)
        name = request.node.nodeid.replace("/", "_").replace("::", "__")
        (Path(folder) / f"{name}.json").write_text(json.dumps({"test": request.node.nodeid, **figures}, default=str))

    return record


def read_vectors(name: str) -> list[list[str]]:
    """Rows of a CSV vector file in tests/data (lines starting with # are comments)."""
    import csv

    with open(DATA / name, newline="", encoding="utf-8") as fh:
        lines = [line for line in fh if line.strip() and not line.lstrip().startswith("#")]
    return [row for row in csv.reader(lines)]
