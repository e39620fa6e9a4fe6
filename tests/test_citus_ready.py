"""Citus-ready: the schema can be distributed by business_id and no function reaches past one business.

* Catalog: every primary key, unique constraint or index and foreign key in schema convkey
  includes business_id (a foreign key maps business_id onto business_id), and every table has the
  column, except the tables of ``NOT_DISTRIBUTED`` (each with its reason).
* Static: every statement of a function in functions/*.sql that reads or writes a business table
  names business_id.
* Dynamic: the API, run as a role under row-level security that raises on any row of another
  business than the one the call works for (functions switched to SECURITY INVOKER in a throwaway
  clone so that the policies apply), for two businesses holding the same identifiers.
* README: the create_distributed_table / create_distributed_function calls a Citus user runs,
  generated from the catalog, are all listed in README "Scaling out by business", and nothing else.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import psycopg
import pytest

from convkey.migrate import migration_dirs

ROOT = Path(__file__).resolve().parents[1]
_, FUNCTIONS_DIR = migration_dirs()

# Tables that belong to no one business, and why (they are not distributed by business_id).
NOT_DISTRIBUTED = {
    "backfill_cursor": "the position of each backfill run; business_id 0 is a run over every business, "
                       "so a row is not one business's: a small reference table",
}
ANCHOR = "whatsapp_conversation"  # the table every distributed table and function is colocated with

CONSTRAINTS_SQL = """
SELECT c.relname::text AS table_name, x.conname::text AS name, x.contype::text AS kind,
       (SELECT array_agg(a.attname::text ORDER BY k.ord) FROM unnest(x.conkey) WITH ORDINALITY k(attnum, ord)
          JOIN pg_attribute a ON a.attrelid = x.conrelid AND a.attnum = k.attnum) AS cols,
       (SELECT array_agg(a.attname::text ORDER BY k.ord) FROM unnest(x.confkey) WITH ORDINALITY k(attnum, ord)
          JOIN pg_attribute a ON a.attrelid = x.confrelid AND a.attnum = k.attnum) AS ref_cols,
       x.confrelid::regclass::text AS ref_table
  FROM pg_constraint x
  JOIN pg_class c ON c.oid = x.conrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'convkey' AND x.contype IN ('p', 'u', 'f')
 ORDER BY 1, 2
"""
UNIQUE_INDEXES_SQL = """
SELECT t.relname::text, i.relname::text,
       (SELECT array_agg(a.attname::text) FROM unnest(x.indkey) k(attnum)
          JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum) AS cols
  FROM pg_index x
  JOIN pg_class i ON i.oid = x.indexrelid
  JOIN pg_class t ON t.oid = x.indrelid
  JOIN pg_namespace n ON n.oid = t.relnamespace
 WHERE n.nspname = 'convkey' AND x.indisunique
 ORDER BY 1, 2
"""
TABLES_SQL = """
SELECT c.relname::text, EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'business_id'
                                 AND NOT a.attisdropped) AS has_business
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'convkey' AND c.relkind IN ('r', 'p')
 ORDER BY 1
"""
API_SQL = """
SELECT p.proname::text, p.oid::regprocedure::text, coalesce(p.proargnames[1], '') AS first_arg
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = 'convkey' AND p.proname !~ '^_' AND p.prokind = 'f'
   AND p.prorettype <> 'trigger'::regtype
 ORDER BY 2
"""


# --- catalog -------------------------------------------------------------------------------------
def key_problems(conn) -> list[str]:
    """Keys, unique indexes and foreign keys of business tables that leave business_id out."""
    tables = dict(conn.execute(TABLES_SQL).fetchall())
    assert set(NOT_DISTRIBUTED) <= set(tables), "an allow-listed table no longer exists"
    problems = [f"{t}: no business_id column" for t, has in tables.items() if not has and t not in NOT_DISTRIBUTED]
    for table, name, kind, cols, ref_cols, ref_table in conn.execute(CONSTRAINTS_SQL):
        if table in NOT_DISTRIBUTED:
            continue
        if "business_id" not in cols:
            problems.append(f"{table}.{name}: {cols} lacks business_id")
        elif kind == "f" and ref_cols[cols.index("business_id")] != "business_id":
            problems.append(f"{table}.{name}: business_id references {ref_table}.{ref_cols[cols.index('business_id')]}")
        if kind == "f" and ref_table.removeprefix("convkey.") in NOT_DISTRIBUTED:
            problems.append(f"{table}.{name}: references the undistributed {ref_table}")
    for table, index, cols in conn.execute(UNIQUE_INDEXES_SQL):
        if table not in NOT_DISTRIBUTED and "business_id" not in (cols or []):
            problems.append(f"{table}: unique index {index} on {cols} lacks business_id")
    return problems


def test_every_key_and_foreign_key_includes_business_id(ro_conn):
    assert key_problems(ro_conn) == []


def test_the_catalog_check_fails_on_a_key_without_business_id(db_conn):
    db_conn.execute("CREATE TABLE convkey.note (id bigint PRIMARY KEY, business_id bigint NOT NULL, body text)")
    db_conn.execute("CREATE UNIQUE INDEX ix_message_global ON convkey.whatsapp_message (provider_message_id)")
    db_conn.execute("ALTER TABLE convkey.identity_conflict ADD CONSTRAINT fk_odd FOREIGN KEY (business_id, "
                    "other_conversation_id) REFERENCES convkey.whatsapp_conversation (id, business_id)")
    problems = key_problems(db_conn)
    assert [p.split(":")[0] for p in problems] == [
        "identity_conflict.fk_odd", "note.note_pkey", "note", "whatsapp_message"], problems


# --- static: every table access in a function names business_id -----------------------------------
_BODY = re.compile(r"CREATE OR REPLACE (?:FUNCTION|PROCEDURE)\s+(convkey\.\w+).*?\bAS\s+\$(\w*)\$(.*?)\$\2\$",
                   re.DOTALL | re.IGNORECASE)
_ACCESS = re.compile(r"\b(?:FROM|JOIN|UPDATE|INTO|TABLE|USING)\s+(?:ONLY\s+)?convkey\.(\w+)\b", re.IGNORECASE)


def _statements(body: str) -> list[str]:
    """The statements of a function body: comments dropped, split at semicolons outside quotes."""
    body = re.sub(r"--[^\n]*", "", body)
    out, cur, quoted = [], [], False
    for ch in body:
        if ch == "'":
            quoted = not quoted
        if ch == ";" and not quoted:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur))
    return [s.strip() for s in out if s.strip()]


def cross_business_statements(sql_text: str, business_tables: set[str]) -> list[str]:
    """Statements of the functions in ``sql_text`` that touch a business table without naming
    business_id (the heuristic: the table access and `business_id` in the same statement)."""
    found = []
    for name, _, body in _BODY.findall(sql_text):
        for stmt in _statements(body):
            tables = {t for t in _ACCESS.findall(stmt) if t in business_tables}
            if tables and not re.search(r"\bbusiness_id\b", stmt):
                found.append(f"{name}: {' '.join(stmt.split())[:160]}")
    return found


def _business_tables(conn) -> set[str]:
    return {t for t, has in conn.execute(TABLES_SQL) if has and t not in NOT_DISTRIBUTED}


def test_every_function_statement_on_a_business_table_names_business_id(ro_conn):
    tables = _business_tables(ro_conn)
    assert {"whatsapp_conversation", "whatsapp_message", "identity"} <= tables
    files = sorted(FUNCTIONS_DIR.glob("post-apply-*.sql"))
    checked = sum(len(_BODY.findall(f.read_text(encoding="utf-8"))) for f in files)
    assert checked >= 40
    found = [f"{f.name}: {s}" for f in files for s in cross_business_statements(f.read_text(encoding="utf-8"), tables)]
    assert found == []


def test_the_static_check_flags_a_statement_without_business_id():
    leaky = """
CREATE OR REPLACE FUNCTION convkey.count_everyone(p_business_id bigint) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE v bigint;
BEGIN
    SELECT count(*) INTO v FROM convkey.whatsapp_conversation c WHERE c.merged_into_id IS NULL;  -- business_id?
    UPDATE convkey.identity SET source = 'x' WHERE business_id = p_business_id;
    RETURN v;
END $$;"""
    found = cross_business_statements(leaky, {"whatsapp_conversation", "identity"})
    assert len(found) == 1 and "FROM convkey.whatsapp_conversation" in found[0]


# --- dynamic: row-level security that raises on another business's row ------------------------------
PROBE_SETUP = """
CREATE SCHEMA convkey_probe;
CREATE FUNCTION convkey_probe.same_business(p_business_id bigint) RETURNS boolean
LANGUAGE plpgsql STABLE COST 10000 AS $$
BEGIN
    IF p_business_id IS DISTINCT FROM nullif(current_setting('convkey_probe.business', true), '')::bigint THEN
        RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege',
            MESSAGE = format('row of business %s touched while working for business %s', p_business_id,
                             current_setting('convkey_probe.business', true));
    END IF;
    RETURN true;
END $$;
"""


@pytest.fixture
def probe(db_conn):
    """db_conn as a role under row-level security that raises on a row of another business than
    the session setting convkey_probe.business; every convkey function runs as its caller here."""
    role = f"convkey_probe_{os.getpid()}"
    conn = db_conn
    conn.execute(f'DROP ROLE IF EXISTS "{role}"')
    conn.execute(f'CREATE ROLE "{role}" NOLOGIN NOSUPERUSER NOBYPASSRLS')
    try:
        conn.execute(PROBE_SETUP)
        for (fn,) in conn.execute("SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON "
                                  "n.oid = p.pronamespace WHERE n.nspname = 'convkey' AND p.prosecdef").fetchall():
            conn.execute(f"ALTER FUNCTION {fn} SECURITY INVOKER")
        conn.execute(f'GRANT USAGE ON SCHEMA convkey, convkey_probe TO "{role}"')
        conn.execute(f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA convkey TO "{role}"')
        conn.execute(f'GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA convkey TO "{role}"')
        conn.execute(f'GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA convkey, convkey_probe TO "{role}"')
        for table in sorted(_business_tables(conn)):
            conn.execute(f"ALTER TABLE convkey.{table} ENABLE ROW LEVEL SECURITY")
            conn.execute(f'CREATE POLICY probe_any ON convkey.{table} FOR ALL TO "{role}" '
                         "USING (true) WITH CHECK (true)")
            conn.execute(f'CREATE POLICY probe_one_business ON convkey.{table} AS RESTRICTIVE FOR ALL TO "{role}" '
                         "USING (convkey_probe.same_business(business_id)) "
                         "WITH CHECK (convkey_probe.same_business(business_id))")
        conn.execute(f'SET ROLE "{role}"')
        yield conn
    finally:
        conn.execute("RESET ROLE")
        conn.execute(f'DROP OWNED BY "{role}"')
        conn.execute(f'DROP ROLE "{role}"')


class Calls:
    """Calls the API for one business at a time (``%(b)s`` in the SQL), with the probe's setting,
    and records which public functions ran."""

    def __init__(self, conn):
        self.conn = conn
        self.called: set[str] = set()

    def __call__(self, business: int, sql: str, **params):
        self.called.update(re.findall(r"convkey\.([a-z]\w*)\(", sql))
        self.conn.execute("SELECT set_config('convkey_probe.business', %s, false)", (str(business),))
        row = self.conn.execute(sql, {"b": business, **params}).fetchone()
        return row[0] if row else None


def _scenario(call: Calls, b: int) -> None:
    """Every public API function for one business, with the identifiers every business uses."""
    ids = {"lid": "82399031480511@lid", "jid": "972501234567@s.whatsapp.net", "phone": "+972501234567"}
    a = call(b, "SELECT conversation_id FROM convkey.record_message(%(b)s, %(lid)s, 'in', 'm1')", **ids)
    c = call(b, "SELECT conversation_id FROM convkey.get_or_create_conversation(%(b)s, %(jid)s)", **ids)
    call(b, "SELECT convkey.update_session_activity(%(b)s, %(jid)s, 'out')", **ids)
    merged = call(b, "SELECT convkey.link_identity(%(b)s, %(lid)s, %(phone)s)", **ids)
    merge_id = call(b, "SELECT max(m.id) FROM convkey.conversation_merge m WHERE m.business_id = %(b)s")
    call(b, "SELECT convkey.unmerge(%(b)s, %(m)s)", m=merge_id)
    call(b, "SELECT convkey.merge_conversations(%(b)s, %(p)s, %(d)s, 'manual')", p=max(a, c), d=min(a, c))
    call(b, "SELECT convkey.resolve_conversation_id(%(b)s, %(c)s)", c=min(a, c))
    call(b, "SELECT convkey.assign_lead(%(b)s, %(c)s, 7, 'Dana')", c=merged)
    other = call(b, "SELECT conversation_id FROM convkey.get_or_create_conversation(%(b)s, '972509999999', "
                    "p_lead_id => 8)")
    call(b, "SELECT convkey.merge_leads(%(b)s, 8, 7)")
    call(b, "SELECT convkey.set_push_name(%(b)s, %(c)s, 'Dana L')", c=other)
    call(b, "SELECT convkey.mark_read(%(b)s, %(c)s)", c=other)
    call(b, "SELECT convkey.close_session(%(b)s, %(c)s, 'done')", c=other)
    call(b, "SELECT count(*) FROM convkey.idle_sessions(%(b)s, '1 second')")
    call(b, "SELECT convkey.canonical_key(%(b)s, p_phone_e164 => %(phone)s)", **ids)
    call(b, "SELECT kind FROM convkey.parse_wa_id(%(lid)s)", **ids)  # no business: reads no table
    call(b, "SELECT convkey.display_name(NULL, 'Dana', NULL, NULL, %(phone)s)", **ids)


def test_the_api_touches_one_business_per_call(probe):
    call = Calls(probe)
    for b in (1, 2):  # interleaved: both businesses hold the same identifiers
        _scenario(call, b)
    _scenario(call, 3)
    public = {name for name, _, _ in probe.execute(API_SQL)}
    assert public <= call.called, f"the scenario does not call {sorted(public - call.called)}"
    probe.execute("RESET ROLE")
    counts = probe.execute("SELECT business_id, count(*) FROM convkey.whatsapp_conversation GROUP BY 1 ORDER BY 1"
                           ).fetchall()
    assert [b for b, _ in counts] == [1, 2, 3]


def test_the_probe_catches_a_function_that_reads_or_writes_another_business(probe):
    call = Calls(probe)
    _scenario(call, 1)
    _scenario(call, 2)
    for sql in ("SELECT count(*) FROM convkey.whatsapp_conversation WHERE merged_into_id IS NULL",
                "UPDATE convkey.whatsapp_conversation SET push_name = 'x' WHERE merged_into_id IS NULL RETURNING id"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as exc:
            call(1, sql)
        assert "touched while working for business 1" in str(exc.value)
    # the same statements scoped to the business pass
    assert call(1, "SELECT count(*) FROM convkey.whatsapp_conversation WHERE business_id = %(b)s") > 0


# --- the README lists what a Citus user runs ---------------------------------------------------------
def citus_calls(conn) -> list[str]:
    """create_distributed_table for every business table (foreign keys' targets first), colocated
    with whatsapp_conversation; create_reference_table for the NOT_DISTRIBUTED tables;
    create_distributed_function for every public function, by p_business_id when it has one."""
    tables = [t for t, _ in conn.execute(TABLES_SQL)]
    deps = {t: set() for t in tables}
    for table, _, kind, _, _, ref_table in conn.execute(CONSTRAINTS_SQL):
        ref = (ref_table or "").removeprefix("convkey.")
        if kind == "f" and ref != table:
            deps[table].add(ref)
    ordered: list[str] = []
    while len(ordered) < len(tables):
        ready = sorted((t for t in tables if t not in ordered and deps[t] <= set(ordered)),
                       key=lambda t: (t != ANCHOR, t))
        ordered.append(ready[0])
    lines = []
    for t in ordered:
        if t in NOT_DISTRIBUTED:
            lines.append(f"SELECT create_reference_table('convkey.{t}');")
        elif t == ANCHOR:
            lines.append(f"SELECT create_distributed_table('convkey.{t}', 'business_id');")
        else:
            lines.append(f"SELECT create_distributed_table('convkey.{t}', 'business_id', "
                         f"colocate_with => 'convkey.{ANCHOR}');")
    for _, sig, first in conn.execute(API_SQL):
        if first == "p_business_id":
            lines.append(f"SELECT create_distributed_function('{sig}', 'p_business_id', "
                         f"colocate_with => 'convkey.{ANCHOR}');")
        else:
            lines.append(f"SELECT create_distributed_function('{sig}');")
    return lines


def test_readme_lists_the_citus_calls_for_every_table_and_public_function(ro_conn):
    expected = citus_calls(ro_conn)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    listed = [line.strip() for line in readme.splitlines()
              if re.match(r"\s*SELECT create_(distributed_table|reference_table|distributed_function)\(", line)]
    missing = [line for line in expected if line not in listed]
    extra = [line for line in listed if line not in expected]
    assert (missing, extra) == ([], []), "README \"Scaling out by business\": update the Citus list:\n" + \
        "\n".join(expected)
    assert listed == expected  # in this order: foreign keys' targets first
