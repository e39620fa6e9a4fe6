"""The PL/Proxy side of the test harness: a proxy database with 4 partitions on 2 shards.

``ProxyCluster.start(server, template)`` makes, once per session:
  * shard A: a template on the session's server, cloned from the migrated template;
  * shard B: a template on a second throwaway cluster (when the session's server is a throwaway
    cluster itself; with a given DSN or a container, a second database of the same server);
  * the proxy: a template on the session's server, set up with the real ``convkey shards add``
    code (proxy migrated from proxy/, partitions 0 and 2 on A, 1 and 3 on B, id blocks 0 and 1),
    plus test-only INSTEAD OF triggers (below).
``create()`` clones all three for one test and points the clone's partitions at the clone shards.

The proxy's table views (convkey.whatsapp_conversation, ...) are read-only over PL/Proxy. The
suites also write rows directly (legacy inserts, a push_name, the refused direct updates), so in
test proxy databases each table view gets an INSTEAD OF trigger that sends the write, as SQL built
from the row, through dblink to the shard that owns the row's business. It exists in test
databases only: a trigger's dblink write commits on the shard at once, on its own.

``CONVKEY_TEST_PROXY=1`` makes conftest's ``db_dsn``/``db_conn`` hand out such proxy databases, so
the core and identity-graph suites run through the proxy unchanged (tests/test_proxy.py runs them
that way), and ``table_checksums`` then reads the shards through the proxy (``proxy_table_checksums``).
"""

from __future__ import annotations

import itertools
import os
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from convkey.embedded import EmbeddedCluster
from convkey.shards import add_shard

PROXY_ENV = "CONVKEY_TEST_PROXY"
PARTITIONS = 4
SECOND_CLUSTER_PORT = 5434
_counter = itertools.count()

# Test-only: route a direct write on a proxy table view to the shard of the row's business.
WRITE_TRIGGER_SQL = r"""
CREATE EXTENSION IF NOT EXISTS dblink;
CREATE SCHEMA IF NOT EXISTS convkey_test;

CREATE OR REPLACE FUNCTION convkey_test.tg_shard_write()
RETURNS trigger
LANGUAGE plpgsql
AS $$
DECLARE
    v_new      jsonb := CASE WHEN TG_OP <> 'DELETE' THEN to_jsonb(NEW) END;
    v_old      jsonb := CASE WHEN TG_OP <> 'INSERT' THEN to_jsonb(OLD) END;
    v_business bigint := coalesce(v_new ->> 'business_id', v_old ->> 'business_id')::bigint;
    v_connstr  text;
    v_cols     text[];
    v_key      text;
    v_sql      text;
BEGIN
    SELECT p.connstr INTO v_connstr FROM convkey._partitions() p
     WHERE p.partition = convkey._partition_of(v_business);
    SELECT string_agg(format('t.%I = o.%I', k, k), ' AND ') INTO v_key FROM unnest(TG_ARGV) k;
    IF TG_OP = 'INSERT' THEN
        SELECT array_agg(k ORDER BY k) INTO v_cols FROM jsonb_object_keys(jsonb_strip_nulls(v_new)) k;
        v_sql := format('INSERT INTO convkey.%I (%s) SELECT %s FROM jsonb_populate_record(NULL::convkey.%I, %L) o',
                        TG_TABLE_NAME, (SELECT string_agg(format('%I', c), ', ') FROM unnest(v_cols) c),
                        (SELECT string_agg(format('o.%I', c), ', ') FROM unnest(v_cols) c), TG_TABLE_NAME, v_new);
    ELSIF TG_OP = 'UPDATE' THEN
        IF convkey._partition_of((v_new ->> 'business_id')::bigint) <> convkey._partition_of(v_business) THEN
            RAISE EXCEPTION USING ERRCODE = 'feature_not_supported',
                MESSAGE = 'a row cannot move to a business of another partition through the proxy';
        END IF;
        SELECT array_agg(k ORDER BY k) INTO v_cols FROM jsonb_object_keys(v_new) k
         WHERE v_new -> k IS DISTINCT FROM v_old -> k;
        v_cols := coalesce(v_cols, ARRAY['business_id']);  -- a no-op update still writes, as on one database
        v_sql := format('UPDATE convkey.%I t SET %s FROM jsonb_populate_record(NULL::convkey.%I, %L) n, '
                        'jsonb_populate_record(NULL::convkey.%I, %L) o WHERE %s',
                        TG_TABLE_NAME, (SELECT string_agg(format('%I = n.%I', c, c), ', ') FROM unnest(v_cols) c),
                        TG_TABLE_NAME, v_new, TG_TABLE_NAME, v_old, v_key);
    ELSE
        v_sql := format('DELETE FROM convkey.%I t USING jsonb_populate_record(NULL::convkey.%I, %L) o WHERE %s',
                        TG_TABLE_NAME, TG_TABLE_NAME, v_old, v_key);
    END IF;
    PERFORM dblink_exec(v_connstr, v_sql);
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END;
$$;
"""

PRIMARY_KEYS_SQL = """
SELECT c.relname, array_agg(a.attname::text ORDER BY k.ord) AS cols
  FROM pg_constraint x
  JOIN pg_class c ON c.oid = x.conrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
  CROSS JOIN LATERAL unnest(x.conkey) WITH ORDINALITY AS k(attnum, ord)
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
 WHERE n.nspname = 'convkey' AND x.contype = 'p'
 GROUP BY c.relname ORDER BY 1
"""


def plproxy_available(admin_dsn: str) -> bool:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        names = {r[0] for r in conn.execute(
            "SELECT name FROM pg_available_extensions WHERE name IN ('plproxy', 'dblink')")}
    return names == {"plproxy", "dblink"}


@dataclass
class _Node:
    """A server that holds shards: ``server`` (conftest.Server) and how the proxy's server reaches it."""

    server: object
    local_dsn: Callable[[str], str]  # dbname -> connect string as the proxy's server reaches the database


class ProxyCluster:
    """Templates for shard A, shard B and the proxy; ``create()`` clones them for one test."""

    def __init__(self, main, other, cluster: EmbeddedCluster | None):
        self.main = main
        self.other = other
        self.cluster = cluster
        tag = os.getpid()
        self.shard_a_tpl = f"convkey_shard_a_tpl_{tag}"
        self.shard_b_tpl = f"convkey_shard_b_tpl_{tag}"
        self.proxy_tpl = f"convkey_proxy_tpl_{tag}"
        self._shared: tuple[str, str] | None = None

    # --- session set-up ------------------------------------------------------------------------
    @classmethod
    def start(cls, server, template: str) -> "ProxyCluster":
        cluster = None
        if server.kind == "initdb":
            home = Path(tempfile.mkdtemp(prefix="convkey-test-shard-"))
            os.chmod(home, 0o755)
            cluster = EmbeddedCluster(home, port=SECOND_CLUSTER_PORT, fsync=False, dbname="postgres")
            cluster.start()
            other = type(server)(cluster.url("postgres"), "initdb", cluster)
            main_node, other_node = _Node(server, server.dsn), _Node(other, other.dsn)
        else:
            local = _server_side_dsn(server)
            main_node = other_node = _Node(server, local)
        self = cls(main_node, other_node, cluster)
        try:
            self._build(template)
        except BaseException:
            self.close()
            raise
        return self

    def _build(self, template: str) -> None:
        self.main.server.create_database(self.shard_a_tpl, template=template)
        self.other.server.create_database(self.shard_b_tpl)  # add_shard migrates it
        proxy_admin = self.main.server.create_database(self.proxy_tpl)
        a, b = self.main.local_dsn(self.shard_a_tpl), self.other.local_dsn(self.shard_b_tpl)
        add_shard(proxy_admin, a, partitions_count=PARTITIONS)
        add_shard(proxy_admin, b)
        with psycopg.connect(self.main.server.dsn(self.shard_a_tpl), autocommit=True) as conn:
            keys = dict(conn.execute(PRIMARY_KEYS_SQL).fetchall())
        with psycopg.connect(proxy_admin, autocommit=True) as conn:
            conn.execute(WRITE_TRIGGER_SQL)
            for table, cols in keys.items():
                args = ", ".join(f"'{c}'" for c in cols)
                conn.execute(f'CREATE TRIGGER _900_test_shard_write INSTEAD OF INSERT OR UPDATE OR DELETE '
                             f'ON convkey."{table}" FOR EACH ROW EXECUTE FUNCTION convkey_test.tg_shard_write({args})')

    def close(self) -> None:
        names = [(self.main, self.proxy_tpl), (self.main, self.shard_a_tpl), (self.other, self.shard_b_tpl)]
        if self._shared is not None:
            names.insert(0, (self.main, self._shared[0]))
        for node, name in names:
            try:
                node.server.drop_database(name)
            except psycopg.Error:
                pass
        if self.cluster is not None:
            self.cluster.destroy()

    # --- one test ------------------------------------------------------------------------------
    def create(self, *, shared_proxy: bool = False) -> tuple[str, list[tuple[object, str]]]:
        """A proxy database whose two shards are fresh clones: (proxy DSN, databases to drop).

        ``shared_proxy``: reuse one proxy database for the session (it holds no data, only the
        partitions, re-pointed here at the new shards) instead of cloning one per test; the suites
        run in proxy mode this way, a CREATE DATABASE fewer per test."""
        n = f"{os.getpid()}_{next(_counter)}"
        a, b = f"convkey_shard_a_{n}", f"convkey_shard_b_{n}"
        with ThreadPoolExecutor(2) as pool:  # the two shards' clones side by side
            jobs = [pool.submit(self.main.server.create_database, a, self.shard_a_tpl),
                    pool.submit(self.other.server.create_database, b, self.shard_b_tpl)]
            if shared_proxy:
                if self._shared is None:
                    name = f"convkey_proxy_session_{os.getpid()}"
                    self._shared = (name, self.main.server.create_database(name, template=self.proxy_tpl))
                p, dsn = self._shared
            else:
                p = f"convkey_proxy_{n}"
                dsn = self.main.server.create_database(p, template=self.proxy_tpl)
            for job in jobs:
                job.result()
        a_local, b_local = self.main.local_dsn(a), self.other.local_dsn(b)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("SELECT convkey._set_partitions(%s::text[])",
                         ([a_local if i % 2 == 0 else b_local for i in range(PARTITIONS)],))
        dbs = [(self.main.server, a), (self.other.server, b)]
        return dsn, dbs if shared_proxy else [(self.main.server, p), *dbs]

    @staticmethod
    def shards(dbs: list[tuple[object, str]]) -> list[str]:
        """Admin DSNs of the two shard databases of ``create()``'s list: [A, B]."""
        return [server.dsn(name) for server, name in dbs[-2:]]

    @staticmethod
    def drop(dbs: list[tuple[object, str]]) -> None:
        # the proxy first (its backends hold connections to the shards); WITH (FORCE) ends those
        for server, name in dbs:
            server.drop_database(name)


def _server_side_dsn(server):
    """dbname -> a connect string for a database of ``server`` as the server itself reaches it
    (its unix socket and port: a container's published port means nothing inside it)."""
    params = conninfo_to_dict(server.admin_dsn)
    with server.admin() as conn:
        socket_dir = conn.execute("SHOW unix_socket_directories").fetchone()[0].split(",")[0].strip()
        port = conn.execute("SHOW port").fetchone()[0]
        user = conn.execute("SELECT current_user").fetchone()[0]

    def dsn(dbname: str) -> str:
        local = {"host": socket_dir, "port": port, "user": user, "dbname": dbname}
        if params.get("password"):
            local["password"] = params["password"]
        return make_conninfo(**local)

    return dsn


def proxy_table_checksums(conn: psycopg.Connection) -> dict[str, str]:
    """conftest.table_checksums for a proxy database: md5 of the full contents of every shard
    table (through the proxy's views of them, RUN ON ALL) and the positions of every shard's
    sequences, under the same names as on one database."""
    sums: dict[str, str] = {}
    views = conn.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'convkey' AND c.relkind = 'v' "
        "AND to_regprocedure('convkey._rows_' || c.relname || '()') IS NOT NULL ORDER BY 1").fetchall()
    for (name,) in views:
        sums[name] = conn.execute(
            f'SELECT coalesce(md5(string_agg(t::text, \',\' ORDER BY t::text)), \'\') FROM convkey."{name}" t'
        ).fetchone()[0]
    for name, positions in conn.execute(
            "SELECT sequence_name, string_agg(shard || '=' || coalesce(last_value::text, '-'), ',' ORDER BY shard) "
            "FROM convkey._shard_sequences() GROUP BY 1 ORDER BY 1"):
        sums[name] = positions
    return sums
