"""Scaling out by business through PL/Proxy: the proxy's API is the shards' API, every call runs on
the shard of its business, reports fan out to every shard, `convkey shards` and `migrate --shards`
manage the cluster, and the core and identity-graph suites pass through the proxy unchanged.

The cluster: a proxy with 4 partitions on 2 shards, shard A on the session's server (partitions 0
and 2) and shard B on a second throwaway cluster (1 and 3); see tests/proxy_harness.py.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from conftest import read_vectors
from convkey import shards
from convkey.cli import main
from convkey.demo import run_demo
from convkey.migrate import migrate
from proxy_harness import PARTITIONS, PROXY_ENV, proxy_table_checksums
from test_demo import _figure, _stable

ROOT = Path(__file__).resolve().parents[1]

API_SQL = """
SELECT p.oid::regprocedure::text AS signature, pg_get_function_arguments(p.oid) AS arguments,
       pg_get_function_result(p.oid) AS result
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = 'convkey' AND p.proname !~ '^_' AND p.prokind = 'f'
   AND p.prorettype <> 'trigger'::regtype
 ORDER BY 1
"""
# the proxy's own public functions: the RUN ON ALL functions behind its two reporting views
PROXY_ONLY = {"convkey.conversation_thread()", "convkey.dedup_health()"}

COLUMNS_SQL = """
SELECT a.attname::text, format_type(a.atttypid, a.atttypmod)
  FROM pg_attribute a WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped
 ORDER BY a.attnum
"""
RELATIONS_SQL = """
SELECT c.relname::text, c.relkind::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'convkey' AND c.relkind IN ('r', 'p', 'v') ORDER BY 1
"""
BUSINESS_TABLES_SQL = """
SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'business_id'
 WHERE n.nspname = 'convkey' AND c.relkind IN ('r', 'p') ORDER BY 1
"""


PROXY_MIGRATIONS = sorted(p.stem for p in shards.proxy_dirs()[0].glob("*.sql") if not p.name.endswith(".rollback.sql"))


@pytest.fixture
def proxy(proxy_cluster):
    """(proxy DSN, [shard A admin DSN, shard B admin DSN]) of a fresh proxy over fresh shards."""
    dsn, dbs = proxy_cluster.create()
    yield dsn, proxy_cluster.shards(dbs)
    proxy_cluster.drop(dbs)


def _api(dsn: str) -> dict[str, tuple[str, str]]:
    with psycopg.connect(dsn) as conn:
        return {sig: (args, result) for sig, args, result in conn.execute(API_SQL)}


def api_differences(shard_dsn: str, proxy_dsn: str) -> list[str]:
    """Every public shard function the proxy lacks or declares otherwise, and every public proxy
    function the shards do not have (other than the reporting views' functions)."""
    shard, proxy = _api(shard_dsn), _api(proxy_dsn)
    out = [f"proxy lacks {sig}" for sig in shard if sig not in proxy]
    out += [f"{sig}: shard {shard[sig]} != proxy {proxy[sig]}"
            for sig in shard if sig in proxy and shard[sig] != proxy[sig]]
    out += [f"proxy has {sig}, the shards do not" for sig in proxy if sig not in shard and sig not in PROXY_ONLY]
    return out


def row_type_differences(shard_dsn: str, proxy_dsn: str) -> list[str]:
    """Every shard table or view without a proxy view of that name, and every column that differs
    between a shard relation and the proxy's row type for it (convkey.<name>_row)."""
    out = []
    with psycopg.connect(shard_dsn) as s, psycopg.connect(proxy_dsn) as p:
        proxy_views = {name for name, kind in p.execute(RELATIONS_SQL) if kind == "v"}
        for name, _ in s.execute(RELATIONS_SQL).fetchall():
            if name not in proxy_views:
                out.append(f"the proxy has no view convkey.{name}")
                continue
            want = s.execute(COLUMNS_SQL, (f"convkey.{name}",)).fetchall()
            row_type = p.execute("SELECT typrelid::regclass::text FROM pg_type WHERE oid = to_regtype(%s)",
                                 (f"convkey.{name}_row",)).fetchone()
            got = p.execute(COLUMNS_SQL, (row_type[0],)).fetchall() if row_type else []
            view = p.execute(COLUMNS_SQL, (f"convkey.{name}",)).fetchall()
            if got != want or view != want:
                out.append(f"convkey.{name}: shard {want} != proxy row type {got} / view {view}")
    return out


# --- the API and the row types are the shards' -------------------------------------------------
def test_proxy_has_every_public_function_with_the_same_signature(proxy_cluster, template_dsn):
    proxy_tpl = proxy_cluster.main.server.dsn(proxy_cluster.proxy_tpl)
    assert api_differences(template_dsn, proxy_tpl) == []
    shard = _api(template_dsn)
    assert len(shard) >= 16 and "convkey.record_message(bigint,text,text,text,text,text,bigint,text," \
        "timestamp with time zone,text)" in shard
    # the catalog query the issue names lists the same functions
    with psycopg.connect(template_dsn) as conn:
        issue = {r[0] for r in conn.execute(
            "SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname = 'convkey' AND p.proname !~ '^_' AND p.prokind = 'f' "
            "AND p.prorettype <> 'trigger'::regtype")}
    assert issue == set(shard)


def test_the_comparison_fails_when_the_shard_api_grows_or_a_signature_differs(proxy, db_dsn):
    proxy_dsn, _ = proxy
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        conn.execute("CREATE FUNCTION convkey.forget_business(p_business_id bigint) RETURNS void "
                     "LANGUAGE sql AS 'SELECT NULL'")
    assert api_differences(db_dsn, proxy_dsn) == ["proxy lacks convkey.forget_business(bigint)"]
    with psycopg.connect(proxy_dsn, autocommit=True) as conn:
        conn.execute("CREATE OR REPLACE FUNCTION convkey.idle_sessions(p_business_id bigint, "
                     "p_idle interval DEFAULT '10 minutes') RETURNS SETOF bigint LANGUAGE plproxy AS "
                     "$$ CLUSTER 'convkey'; RUN ON convkey._business_hash(p_business_id); $$")
    differences = api_differences(db_dsn, proxy_dsn)
    assert any(d.startswith("convkey.idle_sessions(bigint,interval): shard") for d in differences), differences


def test_row_types_and_views_match_the_shard_tables_and_views(proxy_cluster, template_dsn):
    proxy_tpl = proxy_cluster.main.server.dsn(proxy_cluster.proxy_tpl)
    assert row_type_differences(template_dsn, proxy_tpl) == []


def test_the_row_type_check_fails_when_a_shard_table_gains_a_column(proxy, db_dsn):
    proxy_dsn, _ = proxy
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        conn.execute("ALTER TABLE convkey.identity ADD COLUMN confidence real")
    assert [d.split(":")[0] for d in row_type_differences(db_dsn, proxy_dsn)] == ["convkey.identity"]


# --- the hash ---------------------------------------------------------------------------------
def test_business_hash_is_fixed_in_sql_and_python(proxy):
    proxy_dsn, _ = proxy
    vectors = [tuple(int(x) for x in row) for row in read_vectors("partition_vectors.csv")]
    assert len(vectors) >= 10
    with psycopg.connect(proxy_dsn) as conn:
        for business, hashed, p4, p16 in vectors:
            assert shards.business_hash(business) == hashed, business
            assert (shards.partition_of(business, 4), shards.partition_of(business, 16)) == (p4, p16)
            assert conn.execute("SELECT convkey._business_hash(%s)", (business,)).fetchone()[0] == hashed
            assert conn.execute("SELECT convkey._partition_of(%s)", (business,)).fetchone()[0] == p4
        # NULL routes like 0 (the shard then refuses it with 22023)
        assert conn.execute("SELECT convkey._business_hash(NULL)").fetchone()[0] == shards.business_hash(0)
    with pytest.raises(Exception):
        shards.partition_of(1, 3)


# --- routing ----------------------------------------------------------------------------------
def _populate(conn, businesses):
    """A few conversations, a merge, a conflict, a separation and pending identities per business."""
    for b in businesses:
        conn.execute("SELECT * FROM convkey.record_message(%s, '82399031480511@lid', 'in', 'm1')", (b,))
        conn.execute("SELECT * FROM convkey.record_message(%s, '972501234567@s.whatsapp.net', 'out', 'm2')", (b,))
        merged = conn.execute("SELECT convkey.link_identity(%s, '82399031480511@lid', '+972501234567')",
                              (b,)).fetchone()[0]
        merge_id = conn.execute("SELECT max(id) FROM convkey.conversation_merge WHERE business_id = %s",
                                (b,)).fetchone()[0]
        conn.execute("SELECT convkey.unmerge(%s, %s)", (b, merge_id))
        conn.execute("SELECT * FROM convkey.get_or_create_conversation(%s, '972509999999@s.whatsapp.net', "
                     "p_lead_id => 7)", (b,))
        conn.execute("SELECT * FROM convkey.get_or_create_conversation(%s, '972509999999@s.whatsapp.net', "
                     "p_lead_id => 8)", (b,))
        conn.execute("SELECT convkey.link_identity(%s, '82399031489999@lid', '+972508888888', 'history')", (b,))
        assert merged is not None


def test_each_business_lives_on_exactly_one_shard(proxy):
    proxy_dsn, (shard_a, shard_b) = proxy
    businesses = list(range(1, 25))
    with psycopg.connect(proxy_dsn, autocommit=True) as conn:
        _populate(conn, businesses)
    held: dict[str, dict[str, set[int]]] = {}
    for name, dsn in (("A", shard_a), ("B", shard_b)):
        with psycopg.connect(dsn) as conn:
            tables = [r[0] for r in conn.execute(BUSINESS_TABLES_SQL)]
            held[name] = {t: {r[0] for r in conn.execute(f'SELECT DISTINCT business_id FROM convkey."{t}"')}
                          for t in tables}
    for table in held["A"]:
        assert not held["A"][table] & held["B"][table], table
    for table in ("whatsapp_conversation", "whatsapp_message", "identity", "identity_conflict",
                  "conversation_merge", "conversation_separation"):
        assert held["A"][table] | held["B"][table] == set(businesses), table
    # partitions 0 and 2 are on A, 1 and 3 on B
    expected_a = {b for b in businesses if shards.partition_of(b, PARTITIONS) % 2 == 0}
    assert held["A"]["whatsapp_conversation"] == expected_a and 0 < len(expected_a) < len(businesses)
    # ids never collide between shards: each shard has its own block
    with psycopg.connect(shard_b) as conn:
        assert conn.execute("SELECT min(id) FROM convkey.whatsapp_conversation").fetchone()[0] > shards.ID_BLOCK
    with psycopg.connect(shard_a) as conn:
        assert conn.execute("SELECT max(id) FROM convkey.whatsapp_conversation").fetchone()[0] <= shards.ID_BLOCK
    # the proxy's views show every row once
    with psycopg.connect(proxy_dsn) as conn:
        through = conn.execute("SELECT count(*), count(DISTINCT id) FROM convkey.whatsapp_conversation").fetchone()
    direct = 0
    for dsn in (shard_a, shard_b):
        with psycopg.connect(dsn) as conn:
            direct += conn.execute("SELECT count(*) FROM convkey.whatsapp_conversation").fetchone()[0]
    assert through == (direct, direct)


def test_errors_keep_their_sqlstate_and_functions_without_business_run_anywhere(proxy):
    proxy_dsn, _ = proxy
    with psycopg.connect(proxy_dsn, autocommit=True) as conn:
        for sql, state in [("SELECT * FROM convkey.get_or_create_conversation(2, '1@g.us')", "22023"),
                           ("SELECT * FROM convkey.get_or_create_conversation(NULL, '972501234567')", "22023"),
                           ("SELECT convkey.close_session(1, 424242)", "P0002"),
                           ("SELECT convkey.unmerge(2, 424242)", "P0002"),
                           (f"SELECT * FROM convkey.record_message(1, '{'9' * 300}', 'in', 'm')", "22001")]:
            with pytest.raises(psycopg.Error) as exc:
                conn.execute(sql)
            assert exc.value.sqlstate == state, sql
        assert conn.execute("SELECT kind, phone_e164 FROM convkey.parse_wa_id('972501234567:3@s.whatsapp.net')"
                            ).fetchone() == ("pn", "+972501234567")
        assert conn.execute("SELECT convkey.display_name(NULL, 'Dana', NULL, NULL, NULL)").fetchone()[0] == "Dana"
        assert conn.execute("SELECT convkey.canonical_key(2, p_phone_e164 => '+972501234567')").fetchone()[0] \
            == "phone:2:+972501234567"


# --- reports fan out ----------------------------------------------------------------------------
def test_dedup_health_and_convkey_stats_through_the_proxy(proxy, capsys):
    proxy_dsn, shard_dsns = proxy
    with psycopg.connect(proxy_dsn, autocommit=True) as conn:
        _populate(conn, range(1, 9))
    assert main(["stats", "--json", "--dsn", proxy_dsn]) == 0
    through = json.loads(capsys.readouterr().out)
    direct = []
    for dsn in shard_dsns:
        assert main(["stats", "--json", "--dsn", dsn]) == 0
        direct += json.loads(capsys.readouterr().out)
    assert sorted(through, key=lambda r: r["business_id"]) == sorted(direct, key=lambda r: r["business_id"])
    assert [r["business_id"] for r in through] == list(range(1, 9))
    assert all(r["merges_total"] == 1 and r["unmerges"] == 1 and r["duplicate_keys"] == 0 for r in through)
    assert main(["stats", "--business-id", "2", "--dsn", proxy_dsn]) == 0
    assert "live_conversations" in capsys.readouterr().out
    # the table views serve the runbook queries of the README unchanged
    with psycopg.connect(proxy_dsn) as conn:
        conn.execute("SET search_path = convkey")
        rows = conn.execute(
            "SELECT business_id, count(*) AS conversations, count(DISTINCT canonical_key) AS distinct_keys "
            "FROM whatsapp_conversation WHERE merged_into_id IS NULL GROUP BY 1 ORDER BY 1").fetchall()
    assert [(r[0], r[1]) for r in rows] == [(b, r["live_conversations"]) for b, r in
                                            zip(range(1, 9), sorted(through, key=lambda r: r["business_id"]))]


def test_demo_through_the_proxy_prints_the_same_figures_as_one_database(proxy, db_dsn):
    proxy_dsn, _ = proxy
    outputs = []
    for dsn in (proxy_dsn, db_dsn):
        out = io.StringIO()
        assert run_demo(dsn, people=40, seed=3, out=out) == 0
        outputs.append(out.getvalue())
    through, single = outputs
    assert _figure(through, "convkey") == _figure(through, "people") == 40
    assert _stable(through) == _stable(single)
    assert f"schema {PROXY_MIGRATIONS[-1]}" in through.splitlines()[0]


def test_table_checksums_see_the_shards_through_the_proxy(proxy):
    proxy_dsn, (shard_a, _) = proxy
    with psycopg.connect(proxy_dsn, autocommit=True) as conn:
        empty = proxy_table_checksums(conn)
        assert {"whatsapp_conversation", "identity", "whatsapp_conversation_id_seq", "pending_person_seq"} <= set(empty)
        conn.execute("SELECT * FROM convkey.get_or_create_conversation(2, '972501234567')")
        after = proxy_table_checksums(conn)
    assert after["whatsapp_conversation"] != empty["whatsapp_conversation"]
    assert after["whatsapp_conversation_id_seq"] != empty["whatsapp_conversation_id_seq"]
    with psycopg.connect(shard_a, autocommit=True) as conn:  # business 2 is on B: a change on A shows too
        conn.execute("SELECT nextval('convkey.pending_person_seq')")
    with psycopg.connect(proxy_dsn) as conn:
        assert proxy_table_checksums(conn)["pending_person_seq"] != after["pending_person_seq"]


# --- migrate: the proxy is recognised; --shards migrates everything; the CLI --------------------
def test_migrate_recognises_a_proxy_and_rolls_it_back(proxy):
    proxy_dsn, _ = proxy
    report = migrate(proxy_dsn)
    assert report.applied == [] and report.schema_version == PROXY_MIGRATIONS[-1]
    assert "convkey.record_message(bigint,text,text,text,text,text,bigint,text,timestamp with time zone,text)" \
        in report.functions
    with psycopg.connect(proxy_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                            "WHERE n.nspname = 'convkey' AND c.relkind = 'r'").fetchone()[0] == 0
    listed = migrate(proxy_dsn, list_only=True).status
    assert listed == [(mid, True) for mid in PROXY_MIGRATIONS]
    assert PROXY_MIGRATIONS[:3] == ["0001_create_proxy_schema", "0002_create_proxy_row_types", "0003_create_proxy_roles"]
    assert migrate(proxy_dsn, rollback_all=True).rolled_back == PROXY_MIGRATIONS[::-1]
    with psycopg.connect(proxy_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname = 'convkey'").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM pg_foreign_server").fetchone()[0] == 0


def _catalog(dsn: str) -> list:
    with psycopg.connect(dsn) as conn:
        funcs = conn.execute("SELECT p.oid::regprocedure::text, md5(pg_get_functiondef(p.oid)) FROM pg_proc p "
                             "JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'convkey' "
                             "AND p.prokind IN ('f', 'p') ORDER BY 1").fetchall()
        applied = conn.execute("SELECT migration_id FROM _yoyo_migration ORDER BY 1").fetchall()
        seqs = conn.execute("SELECT sequencename::text, min_value, max_value FROM pg_sequences "
                            "WHERE schemaname = 'convkey' ORDER BY 1").fetchall()
    return [funcs, applied, seqs]


def test_shards_add_list_and_migrate_shards(proxy_cluster, capsys):
    main_server, other_server = proxy_cluster.main.server, proxy_cluster.other.server
    tag = f"{os.getpid()}_cli"
    names = [(main_server, f"convkey_cli_proxy_{tag}"), (main_server, f"convkey_cli_a_{tag}"),
             (other_server, f"convkey_cli_b_{tag}")]
    try:
        proxy_dsn = names[0][0].create_database(names[0][1])
        for server, name in names[1:]:
            server.create_database(name)
        a = proxy_cluster.main.local_dsn(names[1][1])
        b = proxy_cluster.other.local_dsn(names[2][1])
        assert main(["shards", "add", a, "--partitions", "4", "--dsn", proxy_dsn]) == 0
        assert "created the cluster with shard" in capsys.readouterr().out
        assert main(["shards", "add", b, "--dsn", proxy_dsn]) == 0
        out = capsys.readouterr().out
        assert "id block 1, partitions 1,3" in out and "moved 2 empty partition(s) to it: 1,3" in out
        assert main(["shards", "list", "--json", "--dsn", proxy_dsn]) == 0
        listed = json.loads(capsys.readouterr().out)
        assert listed["partitions"] == 4
        assert [(s["partitions"], s["id_block"]) for s in listed["shards"]] == [([0, 2], 0), ([1, 3], 1)]
        assert main(["shards", "list", "--dsn", proxy_dsn]) == 0
        assert "ids 1000000000001..2000000000000" in capsys.readouterr().out
        # refused: the same shard again, a count that is not a power of two
        assert main(["shards", "add", a, "--dsn", proxy_dsn]) == 2
        assert main(["shards", "add", b, "--partitions", "3", "--dsn", proxy_dsn]) == 2
        capsys.readouterr()
        # migrate --shards: every shard and the proxy; again: nothing changes
        dsns = [proxy_dsn, main_server.dsn(names[1][1]), other_server.dsn(names[2][1])]
        before = [_catalog(d) for d in dsns]
        assert main(["migrate", "--shards", "--dsn", proxy_dsn]) == 0
        out = capsys.readouterr().out
        assert out.count("0 migration(s) applied") == 3 and out.count("shard ") == 2 and "proxy: " in out
        assert [_catalog(d) for d in dsns] == before
        assert main(["migrate", "--shards", "--dsn", proxy_dsn]) == 0
        assert [_catalog(d) for d in dsns] == before
        # the API works through the CLI-made cluster, on the right shard
        with psycopg.connect(proxy_dsn, autocommit=True) as conn:
            cid = conn.execute("SELECT conversation_id FROM convkey.get_or_create_conversation(2, '972501234567')"
                               ).fetchone()[0]
        assert cid == shards.ID_BLOCK + 1  # business 2 is in partition 1, on shard B (block 1)
        # migrate --shards on a database that is not a proxy
        assert main(["migrate", "--shards", "--dsn", dsns[1]]) == 2
    finally:
        for server, name in names:
            server.drop_database(name)


def test_shards_add_keeps_partitions_that_hold_data_where_they_are(proxy_cluster, capsys):
    main_server, other_server = proxy_cluster.main.server, proxy_cluster.other.server
    tag = f"{os.getpid()}_keep"
    names = [(main_server, f"convkey_keep_proxy_{tag}"), (main_server, f"convkey_keep_a_{tag}"),
             (other_server, f"convkey_keep_b_{tag}")]
    try:
        proxy_dsn = main_server.create_database(names[0][1])
        for server, name in names[1:]:
            server.create_database(name)
        a = proxy_cluster.main.local_dsn(names[1][1])
        b = proxy_cluster.other.local_dsn(names[2][1])
        assert main(["shards", "add", a, "--partitions", "4", "--dsn", proxy_dsn]) == 0
        with psycopg.connect(proxy_dsn, autocommit=True) as conn:  # business 2: partition 1, still on A
            cid = conn.execute("SELECT conversation_id FROM convkey.get_or_create_conversation(2, '972501234567')"
                               ).fetchone()[0]
        capsys.readouterr()
        assert main(["shards", "add", b, "--dsn", proxy_dsn]) == 0
        out = capsys.readouterr().out
        assert "moved 1 empty partition(s) to it: 3" in out and "kept partition 1 where it is" in out
        with psycopg.connect(proxy_dsn, autocommit=True) as conn:
            assert [r[0] for r in conn.execute("SELECT connstr FROM convkey._partitions()")] == [a, a, a, b]
            assert conn.execute("SELECT conversation_id FROM convkey.get_or_create_conversation(2, '972501234567')"
                                ).fetchone()[0] == cid
    finally:
        for server, name in names:
            server.drop_database(name)


MOVE_TABLES = ["whatsapp_conversation", "identity", "identity_conflict", "conversation_merge",
               "conversation_separation", "whatsapp_message", "backfill_row"]


def test_moving_a_partition_as_the_readme_says(proxy):
    """README "Scaling out by business": copy the partition's rows, point the partition at the
    new shard (ALTER SERVER), migrate --shards, delete the rows from the old shard."""
    proxy_dsn, (shard_a, shard_b) = proxy
    with psycopg.connect(proxy_dsn, autocommit=True) as conn:
        _populate(conn, [1, 6])  # both in partition 0 (shard A)
        before = proxy_table_checksums(conn)
        partitions = [r[0] for r in conn.execute("SELECT connstr FROM convkey._partitions()")]
    assert shards.partition_of(1, 4) == shards.partition_of(6, 4) == 0
    where = "('x' || substr(md5(business_id::text), 1, 8))::bit(32)::integer & 3 = 0"
    with psycopg.connect(shard_a, autocommit=True) as old, psycopg.connect(shard_b, autocommit=True) as new:
        with new.transaction():
            for table in MOVE_TABLES:
                with old.cursor().copy(f"COPY (SELECT * FROM convkey.{table} WHERE {where}) TO STDOUT") as src, \
                        new.cursor().copy(f"COPY convkey.{table} FROM STDIN") as dst:
                    for chunk in src:
                        dst.write(chunk)
    with psycopg.connect(proxy_dsn, autocommit=True) as conn:
        conn.execute(f"ALTER SERVER convkey OPTIONS (SET p0 '{partitions[1]}')")
    assert main(["migrate", "--shards", "--dsn", proxy_dsn]) == 0
    with psycopg.connect(shard_a, autocommit=True) as old, old.transaction():
        for table in reversed(MOVE_TABLES):
            old.execute(f"DELETE FROM convkey.{table} WHERE {where}")
    with psycopg.connect(proxy_dsn, autocommit=True) as conn:
        after = proxy_table_checksums(conn)
        tables = [t for t in before if not t.endswith("_seq")]
        assert {t: after[t] for t in tables} == {t: before[t] for t in tables}
        # the moved businesses carry on, on shard B: old rows found, new ids from B's block
        old_cid = conn.execute("SELECT conversation_id FROM convkey.record_message(1, '972501234567', 'in', 'm9')"
                               ).fetchone()[0]
        assert old_cid < shards.ID_BLOCK
        new_cid = conn.execute("SELECT conversation_id FROM convkey.get_or_create_conversation(6, '972507777777')"
                               ).fetchone()[0]
        assert new_cid > shards.ID_BLOCK
    with psycopg.connect(shard_a) as old:
        assert old.execute("SELECT count(*) FROM convkey.whatsapp_conversation").fetchone()[0] == 0


# --- the unchanged suites through the proxy -------------------------------------------------------
@pytest.mark.slow
def test_core_and_identity_graph_suites_pass_through_the_proxy(proxy_cluster):
    """tests/test_core.py and tests/test_identity_graph.py, unchanged, with CONVKEY_TEST_PROXY=1:
    every db_conn/db_dsn is a proxy database in front of two fresh shards (tests/proxy_harness.py)."""
    env = {**os.environ, PROXY_ENV: "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/test_core.py", "tests/test_identity_graph.py", "-q",
         "-p", "no:cacheprovider", "-x", "--no-header"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    tail = proc.stdout[-4000:] + proc.stderr[-2000:]
    assert proc.returncode == 0, tail
    passed = re.search(r"(\d+) passed", proc.stdout)
    assert passed and int(passed.group(1)) >= 60, tail
    assert not re.search(r"\d+ (skipped|failed|error)", proc.stdout), tail


# --- the proxy's sources follow the house rules, and ship in the wheel ---------------------------
def test_proxy_sources_follow_the_house_rules():
    from test_lint import (DEPENDS, FUNCTION_FILE_NAME, MIGRATION_NAME, raise_without_errcode, scrub, squawk,
                           uncommented_routines)

    sql_dir, functions_dir = shards.proxy_dirs()
    assert sorted(p.name for p in sql_dir.parent.iterdir()) == ["functions", "sql"]
    bad = [p.name for p in sql_dir.iterdir() if not MIGRATION_NAME.fullmatch(p.name)]
    bad += [p.name for p in functions_dir.iterdir() if not FUNCTION_FILE_NAME.fullmatch(p.name)]
    assert bad == []
    forward = sorted(p for p in sql_dir.glob("*.sql") if not p.name.endswith(".rollback.sql"))
    previous = None
    for path in forward:
        text = path.read_text()
        assert text.startswith("-- Why:"), path.name
        assert [d for m in DEPENDS.finditer(text) for d in m.group(1).split()] == ([previous] if previous else [])
        assert (sql_dir / f"{path.stem}.rollback.sql").exists(), path.name
        previous = path.stem
    # migration ids differ from the shards' (yoyo keys applied migrations by id)
    shard_sql = shards.proxy_dirs()[0].parents[1] / "sql"
    assert not {p.stem for p in forward} & {p.stem for p in shard_sql.glob("*.sql")}
    sources = [*sql_dir.glob("*.sql"), *functions_dir.glob("*.sql")]
    assert [p.name for p in sources if raise_without_errcode(p.read_text())] == []
    assert [(p.name, n) for p in sources for n in uncommented_routines(p.read_text())] == []
    assert [p.name for p in functions_dir.glob("*.sql")
            if re.search(r"\bCREATE\s+(FUNCTION|PROCEDURE|VIEW)\b", scrub(p.read_text()), re.I)] == []
    assert squawk(*forward) == []


def test_the_wheel_carries_the_proxy_migrations():
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["hatch"]["build"]["targets"]
    assert config["wheel"]["force-include"]["proxy"] == "convkey/_migrations/proxy"
    assert "proxy" in config["sdist"]["include"]
    assert shards.proxy_dirs() == (ROOT / "proxy" / "sql", ROOT / "proxy" / "functions")


def test_plpgsql_check_finds_nothing_in_the_proxy(proxy):
    proxy_dsn, _ = proxy
    with psycopg.connect(proxy_dsn, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'plpgsql_check'").fetchone():
            pytest.skip("plpgsql_check is not installed")
        conn.execute("CREATE EXTENSION plpgsql_check")
        rows = conn.execute(
            "SELECT p.oid::regprocedure::text, r.message FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "CROSS JOIN LATERAL plpgsql_check_function_tb(p.oid, fatal_errors => false) r "
            "WHERE n.nspname = 'convkey' AND p.prolang = (SELECT oid FROM pg_language WHERE lanname = 'plpgsql') "
            "AND r.level = 'error'").fetchall()
        checked = conn.execute("SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
                               "WHERE n.nspname = 'convkey' AND p.prolang = "
                               "(SELECT oid FROM pg_language WHERE lanname = 'plpgsql')").fetchone()[0]
    assert checked >= 2 and rows == []


def test_the_proxy_keeps_applications_to_the_api_and_readers_to_one_business(proxy, pg_server):
    """The proxy reaches the shards as their admin, so its own grants are the gate: convkey_app
    calls the API and nothing else, convkey_readonly reads the two views for one business, a
    login with neither role calls nothing."""
    from test_isolation import Login

    proxy_dsn, _ = proxy
    app, reader, nobody = (Login(pg_server, role) for role in ("convkey_app", "convkey_readonly", "pg_monitor"))
    try:
        with app.connect(proxy_dsn) as conn:
            for business, (wa, pmid) in enumerate((("972501234567@s.whatsapp.net", "p1"),
                                                   ("972501234568@s.whatsapp.net", "p2")), start=1):
                row = conn.execute("SELECT inserted FROM convkey.record_message(%s, %s, 'in', %s, 'hi')",
                                   (business, wa, pmid)).fetchone()
                assert row == (True,)
            assert conn.execute("SELECT kind FROM convkey.parse_wa_id('82399031480511@lid')").fetchone() == ("lid",)
            for stmt in ("SELECT * FROM convkey.whatsapp_conversation", "SELECT * FROM convkey._rows_whatsapp_message()",
                         "SELECT * FROM convkey.conversation_thread", "SELECT * FROM convkey.dedup_health()",
                         "SELECT convkey._set_partitions(ARRAY['dbname=x'])", "SELECT * FROM convkey._partitions()"):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute(stmt)
        with reader.connect(proxy_dsn) as conn:
            for view in ("conversation_thread", "dedup_health"):
                assert conn.execute(f"SELECT count(*) FROM convkey.{view}").fetchone() == (0,), view
            conn.execute("SET convkey.business_id = '2'")
            for view in ("conversation_thread", "dedup_health"):
                assert [r[0] for r in conn.execute(f"SELECT business_id FROM convkey.{view}")] == [2], view
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("SELECT * FROM convkey.record_message(2, '972501234568@s.whatsapp.net', 'in', 'p3')")
        with nobody.connect(proxy_dsn) as conn:
            for stmt in ("SELECT * FROM convkey.record_message(1, '972501234567@s.whatsapp.net', 'in', 'p4')",
                         "SELECT * FROM convkey.dedup_health"):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute(stmt)
        with psycopg.connect(proxy_dsn) as conn:  # the admin still sees every business
            assert sorted(r[0] for r in conn.execute("SELECT business_id FROM convkey.dedup_health")) == [1, 2]
            assert conn.execute("SELECT count(*) FROM convkey.whatsapp_message").fetchone() == (2,)
    finally:
        for login in (app, reader, nobody):
            login.drop()
