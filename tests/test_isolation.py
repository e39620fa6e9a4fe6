"""Roles and tenant isolation (sql/0006_create_roles.sql, functions/post-apply-90_grants.sql).

* convkey_app executes the public API and nothing else: every table, sequence and view is denied
  (42501), every internal ``_`` function is denied (42501), the API works, and the API functions
  run as their owner with a pinned search_path.
* One business's ids and identifiers never reach another's data: every public function is called
  with business A and business B's conversation ids, merge ids, leads and identifiers; the calls
  by id fail with P0002 (or 22023), the calls by identifier give A its own new rows, and B's rows
  are unchanged.
* convkey_readonly reads the two views, one business at a time (SET convkey.business_id), sees
  nothing without the setting, reads no table column the views do not need, writes nothing and
  executes no write function.
Login roles are created per test session (roles are cluster-wide) and dropped at the end; the
tests connect as them, or fall back to SET ROLE when the server does not trust local logins.
"""

from __future__ import annotations

import os
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from convkey.migrate import migrate, migration_dirs

pytestmark = pytest.mark.skipif(os.environ.get("CONVKEY_TEST_PROXY") == "1",
                                reason="roles and row security of one database, not of a proxy")

A, B = 101, 202
PHONE = "972547654321"
JID = PHONE + "@s.whatsapp.net"
LID = "61928374650192"
PUBLIC = """
SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = 'convkey' AND p.proname !~ '^_' AND p.prokind = 'f' AND p.prorettype <> 'trigger'::regtype
 ORDER BY 1
"""
ROUTINES = """
SELECT p.oid::regprocedure::text, p.proname, p.prokind, p.prorettype = 'trigger'::regtype,
       coalesce(array(SELECT format_type(t, NULL) FROM unnest(p.proargtypes::oid[]) t), '{}')
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = 'convkey' ORDER BY 1
"""
TABLES = """
SELECT c.relname, c.relkind, (SELECT a.attname FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum = 1)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'convkey' AND c.relkind IN ('r', 'p', 'v', 'S') ORDER BY 1
"""
VIEWS = ("conversation_thread", "dedup_health")
# the one internal function the roles may execute: display_name's constant helper, which the planner
# inlines into the caller's query (display_name stays SECURITY INVOKER for that)
INLINED_HELPERS = {"convkey._blank_chars()"}
PURE = {"convkey.canonical_key(bigint,bigint,text,text,text)", "convkey.parse_wa_id(text)",
        "convkey.display_name(text,text,text,text,text,text)"}


# --- roles and connections ------------------------------------------------------------------------
class Login:
    """A login role that is a member of one of the package's roles, and how to connect as it."""

    def __init__(self, pg_server, member_of: str):
        self.name = f"convkey_test_{member_of.removeprefix('convkey_')}_{os.getpid()}"
        self.member_of = member_of
        with pg_server.admin() as conn:
            conn.execute(f'DROP ROLE IF EXISTS "{self.name}"')
            conn.execute(f'CREATE ROLE "{self.name}" LOGIN')
            conn.execute(f'GRANT {member_of} TO "{self.name}"')
        self.pg_server = pg_server

    def connect(self, dsn: str, **kwargs) -> psycopg.Connection:
        params = {**conninfo_to_dict(dsn), "user": self.name}
        params.pop("password", None)
        try:
            conn = psycopg.connect(make_conninfo(**params), autocommit=True, connect_timeout=5, **kwargs)
        except psycopg.OperationalError:
            # the server wants a password: the superuser connection becomes the role instead
            conn = psycopg.connect(dsn, autocommit=True, **kwargs)
            conn.execute(f'SET ROLE "{self.name}"')
        assert conn.execute("SELECT current_user").fetchone()[0] == self.name
        return conn

    def drop(self) -> None:
        with self.pg_server.admin() as conn:
            conn.execute(f'DROP ROLE IF EXISTS "{self.name}"')


@pytest.fixture(scope="module")
def logins(pg_server, template_dsn):
    app, readonly = Login(pg_server, "convkey_app"), Login(pg_server, "convkey_readonly")
    yield app, readonly
    app.drop()
    readonly.drop()


@pytest.fixture
def app(logins, db_dsn):
    with logins[0].connect(db_dsn) as conn:
        yield conn


@pytest.fixture
def readonly(logins, db_dsn):
    with logins[1].connect(db_dsn) as conn:
        yield conn


def sqlstate_of(conn: psycopg.Connection, sql: str, params=None) -> str | None:
    """The SQLSTATE a statement fails with, or None when it succeeds."""
    try:
        cur = conn.execute(sql, params)
        if cur.description is not None:
            cur.fetchall()
    except psycopg.Error as exc:
        return exc.sqlstate
    return None


def call_sql(signature: str, types: list[str]) -> str:
    name = signature.split("(")[0]
    return f"SELECT {name}(" + ", ".join(f"NULL::{t}" for t in types) + ")"


# --- two businesses, built through the API by the application role ------------------------------------
def build_business(conn: psycopg.Connection, b: int) -> dict[str, int]:
    """The same people write to both businesses: a phone with a lead, a LID linked to a second phone,
    two conversations merged, a lead merge remembered, a closed and a read session."""
    one = lambda sql, *p: conn.execute(sql, p).fetchone()[0]  # noqa: E731
    ids = {}
    ids["conv"] = one("SELECT conversation_id FROM convkey.record_message(%s, %s, 'in', %s, 'hi')", b, JID, f"wamid.{b}.1")
    one("SELECT message_id FROM convkey.record_message(%s, %s, 'out', %s, 'hello')", b, JID, f"wamid.{b}.2")
    conn.execute("SELECT convkey.set_push_name(%s, %s, 'Dana')", (b, ids["conv"]))
    conn.execute("SELECT convkey.assign_lead(%s, %s, 500, 'Dana Levi')", (b, ids["conv"]))
    ids["lid_conv"] = one("SELECT conversation_id FROM convkey.record_message(%s, %s, 'in', %s, 'from a LID')",
                          b, LID + "@lid", f"wamid.{b}.3")
    conn.execute("SELECT convkey.link_identity(%s, %s, '972547654300', 'lid-mapping')", (b, LID + "@lid"))
    ids["p"] = one("SELECT convkey.update_session_activity(%s, '972547654310@s.whatsapp.net')", b)
    ids["d"] = one("SELECT convkey.update_session_activity(%s, '972547654311@s.whatsapp.net')", b)
    conn.execute("SELECT convkey.merge_conversations(%s, %s, %s)", (b, ids["p"], ids["d"]))
    ids["spare"] = one("SELECT convkey.update_session_activity(%s, '972547654312@s.whatsapp.net')", b)
    ids["spare2"] = one("SELECT convkey.update_session_activity(%s, '972547654313@s.whatsapp.net')", b)
    conn.execute("SELECT convkey.merge_leads(%s, 600, 601)", (b,))
    conn.execute("SELECT convkey.close_session(%s, %s, 'done')", (b, ids["lid_conv"]))
    conn.execute("SELECT convkey.mark_read(%s, %s)", (b, ids["conv"]))
    return ids


def merge_id(admin: psycopg.Connection, b: int, duplicate: int) -> int:
    return admin.execute("SELECT id FROM convkey.conversation_merge WHERE business_id = %s AND duplicate_id = %s",
                         (b, duplicate)).fetchone()[0]


def business_checksums(admin: psycopg.Connection, b: int) -> dict[str, str]:
    """md5 of one business's rows in every convkey table with a business_id."""
    sums = {}
    for (name,) in admin.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'convkey' AND c.relkind = 'r' AND EXISTS (SELECT 1 FROM pg_attribute a "
            "WHERE a.attrelid = c.oid AND a.attname = 'business_id' AND NOT a.attisdropped) ORDER BY 1").fetchall():
        sums[name] = admin.execute(
            f"SELECT coalesce(md5(string_agg(t::text, ',' ORDER BY t::text)), '') FROM convkey.\"{name}\" t "
            "WHERE business_id = %s", (b,)).fetchone()[0]
    return sums


@pytest.fixture
def two_businesses(app, db_conn):
    ids = {A: build_business(app, A), B: build_business(app, B)}
    for b in (A, B):
        ids[b]["merge"] = merge_id(db_conn, b, ids[b]["d"])
    return ids


# --- convkey_app ----------------------------------------------------------------------------------------
def test_api_functions_run_as_owner_with_pinned_search_path(db_conn):
    rows = db_conn.execute(
        "SELECT p.oid::regprocedure::text, p.prosecdef, p.proconfig FROM pg_proc p "
        "JOIN pg_namespace n ON n.oid = p.pronamespace WHERE p.oid::regprocedure::text = ANY (%s)",
        ([r[0] for r in db_conn.execute(PUBLIC)],)).fetchall()
    assert rows
    for signature, secdef, config in rows:
        if signature == "convkey.display_name(text,text,text,text,text,text)":
            assert not secdef and config is None, "display_name must stay inlinable (no SECURITY DEFINER, no SET)"
        else:
            assert secdef and config == ["search_path=pg_catalog, pg_temp"], signature


def test_public_executes_nothing_and_app_executes_only_the_api(db_conn):
    public = {r[0] for r in db_conn.execute(PUBLIC)}
    for signature, _name, _kind, _trigger, _types in db_conn.execute(ROUTINES).fetchall():
        granted_public = db_conn.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_proc p, aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a "
            "WHERE p.oid = %s::regprocedure AND a.grantee = 0)", (signature,)).fetchone()[0]
        assert not granted_public, f"PUBLIC may execute {signature}"
        app_may = db_conn.execute("SELECT has_function_privilege('convkey_app', %s, 'EXECUTE')", (signature,)).fetchone()[0]
        assert app_may == (signature in public or signature in INLINED_HELPERS), signature
        ro_may = db_conn.execute("SELECT has_function_privilege('convkey_readonly', %s, 'EXECUTE')",
                                 (signature,)).fetchone()[0]
        assert ro_may == (signature in INLINED_HELPERS or signature.startswith("convkey.display_name(")), signature


def test_app_cannot_touch_any_table_sequence_or_view(app, db_conn):
    denied = []
    for name, kind, first in db_conn.execute(TABLES).fetchall():
        rel = f'convkey."{name}"'
        if kind == "S":
            statements = [f"SELECT nextval('{rel}')", f"SELECT last_value FROM {rel}", f"SELECT setval('{rel}', 1)"]
        else:
            statements = [f"SELECT * FROM {rel}", f"SELECT count(*) FROM {rel}"]
            if kind != "v":
                statements += [f"INSERT INTO {rel} DEFAULT VALUES", f"UPDATE {rel} SET {first} = {first}",
                               f"DELETE FROM {rel}", f"TRUNCATE {rel}"]
        for sql in statements:
            state = sqlstate_of(app, sql)
            if state != "42501":
                denied.append(f"{sql}: {state or 'allowed'}")
    assert not denied, "convkey_app must only call the API:\n" + "\n".join(denied)


def test_app_cannot_call_internal_functions(app, db_conn):
    allowed = []
    checked = 0
    for signature, name, kind, trigger, types in db_conn.execute(ROUTINES).fetchall():
        if not name.startswith("_") or signature in INLINED_HELPERS or trigger:
            continue
        sql = call_sql(signature, types).replace("SELECT ", "CALL ", 1) if kind == "p" else call_sql(signature, types)
        state = sqlstate_of(app, sql)
        checked += 1
        if state != "42501":
            allowed.append(f"{signature}: {state or 'allowed'}")
    assert checked >= 20
    assert not allowed, "\n".join(allowed)


def test_the_api_works_for_the_app_role(app, two_businesses):
    ids = two_businesses[A]
    one = lambda sql, *p: app.execute(sql, p).fetchone()  # noqa: E731
    assert one("SELECT * FROM convkey.parse_wa_id(%s)", JID)[0] == "pn"
    assert one("SELECT convkey.canonical_key(%s, p_phone_e164 => %s)", A, "+" + PHONE)[0] == f"phone:{A}:+{PHONE}"
    assert one("SELECT convkey.display_name(NULL, 'Dana', NULL, NULL, NULL)")[0] == "Dana"
    assert one("SELECT conversation_id FROM convkey.get_or_create_conversation(%s, %s)", A, JID)[0] == ids["conv"]
    assert one("SELECT convkey.resolve_conversation_id(%s, %s)", A, ids["d"])[0] == ids["p"]
    assert one("SELECT convkey.unmerge(%s, %s)", A, ids["merge"])[0] == ids["d"]
    assert ids["spare"] in [r[0] for r in app.execute("SELECT convkey.idle_sessions(%s, '0')", (A,))]


# --- tenant isolation through the API ---------------------------------------------------------------------
def test_no_call_with_one_business_reaches_another(app, db_conn, two_businesses):
    a, b = two_businesses[A], two_businesses[B]
    before_b = business_checksums(db_conn, B)
    exercised: set[str] = set()
    problems: list[str] = []

    def expect(signature: str, sql: str, params: tuple, states: tuple[str, ...]) -> None:
        exercised.add(signature)
        state = sqlstate_of(app, sql, params)
        if state not in states:
            problems.append(f"{sql} {params}: {state or 'succeeded'}, expected {states}")

    def a_rows(signature: str, sql: str, params: tuple):
        exercised.add(signature)
        try:
            return app.execute(sql, params).fetchall()
        except psycopg.Error as exc:
            problems.append(f"{sql} {params}: {exc.sqlstate} {exc}")
            return []

    b_convs = [b["conv"], b["lid_conv"], b["p"], b["d"], b["spare"]]
    for conv in b_convs:
        expect("convkey.resolve_conversation_id(bigint,bigint)", "SELECT convkey.resolve_conversation_id(%s, %s)",
               (A, conv), ("P0002",))
        expect("convkey.close_session(bigint,bigint,text)", "SELECT convkey.close_session(%s, %s, 'x')", (A, conv),
               ("P0002",))
        expect("convkey.set_push_name(bigint,bigint,text)", "SELECT convkey.set_push_name(%s, %s, 'x')", (A, conv),
               ("P0002",))
        expect("convkey.set_push_name(bigint,bigint,text)", "SELECT convkey.set_push_name(%s, %s, NULL)", (A, conv),
               ("P0002",))
        expect("convkey.mark_read(bigint,bigint)", "SELECT convkey.mark_read(%s, %s)", (A, conv), ("P0002",))
        expect("convkey.assign_lead(bigint,bigint,bigint,text)", "SELECT convkey.assign_lead(%s, %s, 777)", (A, conv),
               ("P0002",))
        expect("convkey.assign_lead(bigint,bigint,bigint,text)", "SELECT convkey.assign_lead(%s, %s, 500)", (A, conv),
               ("P0002",))
        for own in (a["spare"], a["conv"]):
            expect("convkey.merge_conversations(bigint,bigint,bigint,text)",
                   "SELECT convkey.merge_conversations(%s, %s, %s)", (A, own, conv), ("P0002",))
            expect("convkey.merge_conversations(bigint,bigint,bigint,text)",
                   "SELECT convkey.merge_conversations(%s, %s, %s)", (A, conv, own), ("P0002",))
    expect("convkey.merge_conversations(bigint,bigint,bigint,text)", "SELECT convkey.merge_conversations(%s, %s, %s)",
           (A, b["spare"], b["spare2"]), ("P0002",))
    expect("convkey.unmerge(bigint,bigint)", "SELECT convkey.unmerge(%s, %s)", (A, b["merge"]), ("P0002",))
    assert b["merge"] != a["merge"]

    # by identifier: A's own rows, never B's
    idle = a_rows("convkey.idle_sessions(bigint,interval)", "SELECT convkey.idle_sessions(%s, '0')", (A,))
    if {r[0] for r in idle} & set(b_convs + [b["spare2"]]):
        problems.append(f"idle_sessions({A}) listed conversations of business {B}")
    for wa in (JID, LID + "@lid", "+972547654300", "972547654310@s.whatsapp.net"):
        rows = a_rows("convkey.get_or_create_conversation(bigint,text,text,bigint,text)",
                      "SELECT conversation_id FROM convkey.get_or_create_conversation(%s, %s)", (A, wa))
        rows += a_rows("convkey.update_session_activity(bigint,text,text,text,bigint,text,timestamp with time zone)",
                       "SELECT convkey.update_session_activity(%s, %s)", (A, wa))
        rows += a_rows("convkey.record_message(bigint,text,text,text,text,text,bigint,text,timestamp with time zone,text)",
                       "SELECT conversation_id FROM convkey.record_message(%s, %s, 'in', %s, 'again')",
                       (A, wa, f"wamid.{B}.1"))
        for (conv,) in rows:
            owner = db_conn.execute("SELECT business_id FROM convkey.whatsapp_conversation WHERE id = %s",
                                    (conv,)).fetchone()[0]
            if owner != A:
                problems.append(f"a call for business {A} with {wa} returned conversation {conv} of business {owner}")
    retried = a_rows("convkey.record_message(bigint,text,text,text,text,text,bigint,text,timestamp with time zone,text)",
                     "SELECT message_id, inserted FROM convkey.record_message(%s, %s, 'in', %s, 'hi')",
                     (A, JID, f"wamid.{B}.2"))
    b_message = db_conn.execute("SELECT id FROM convkey.whatsapp_message WHERE business_id = %s "
                                "AND provider_message_id = %s", (B, f"wamid.{B}.2")).fetchone()[0]
    if not retried or retried[0] == (b_message, False):
        problems.append(f"business {B}'s message id was taken as a retry in business {A}: {retried}")
    a_rows("convkey.link_identity(bigint,text,text,text)", "SELECT convkey.link_identity(%s, %s, %s, 'manual')",
           (A, LID + "@lid", "+972547654300"))
    a_rows("convkey.link_identity(bigint,text,text,text)", "SELECT convkey.link_identity(%s, %s, %s)",
           (A, "972547654399@s.whatsapp.net", "US.58213740965120348871"))
    a_rows("convkey.merge_leads(bigint,bigint,bigint)", "SELECT convkey.merge_leads(%s, 600, 601)", (A,))
    a_rows("convkey.merge_leads(bigint,bigint,bigint)", "SELECT convkey.merge_leads(%s, 601, 602)", (A,))
    a_rows("convkey.assign_lead(bigint,bigint,bigint,text)", "SELECT convkey.assign_lead(%s, %s, 601)",
           (A, a["spare"]))
    # pure functions read no table: they cannot reach any business
    a_rows("convkey.canonical_key(bigint,bigint,text,text,text)", "SELECT convkey.canonical_key(%s, 500)", (A,))
    a_rows("convkey.parse_wa_id(text)", "SELECT * FROM convkey.parse_wa_id(%s)", (JID,))
    a_rows("convkey.display_name(text,text,text,text,text,text)",
           "SELECT convkey.display_name(NULL, NULL, NULL, NULL, %s)", (JID,))

    assert not problems, "\n".join(problems)
    assert business_checksums(db_conn, B) == before_b, f"business {B}'s rows changed"
    new_in_a = db_conn.execute("SELECT count(*) FROM convkey.identity WHERE business_id = %s AND kind = 'bsuid'",
                               (A,)).fetchone()[0]
    assert new_in_a == 1, "the identifiers named with business A became A's own rows"
    public = {r[0] for r in db_conn.execute(PUBLIC)}
    assert exercised == public, f"not tried across businesses: {sorted(public - exercised)}"


# --- convkey_readonly -------------------------------------------------------------------------------------
def view_rows(conn: psycopg.Connection, view: str, where: str = "", params=()) -> list[tuple]:
    return conn.execute(f"SELECT * FROM convkey.{view} {where} ORDER BY business_id, 1, 2", params).fetchall()


def test_readonly_sees_one_business_through_the_views(readonly, db_conn, two_businesses):
    for view in VIEWS:
        assert view_rows(readonly, view) == [], f"{view} without convkey.business_id must show nothing"
    for b in (A, B):
        readonly.execute("SELECT set_config('convkey.business_id', %s, false)", (str(b),))
        for view in VIEWS:
            seen = view_rows(readonly, view)
            assert seen, f"{view} shows nothing for business {b}"
            assert seen == view_rows(db_conn, view, "WHERE business_id = %s", (b,)), view
            assert {r[1] if view == "conversation_thread" else r[0] for r in seen} == {b}
    readonly.execute("SET convkey.business_id = ''")
    assert all(view_rows(readonly, v) == [] for v in VIEWS)
    readonly.execute("RESET convkey.business_id")
    assert all(view_rows(readonly, v) == [] for v in VIEWS)
    # a business the session did not name stays invisible even when asked for
    readonly.execute("SET convkey.business_id = %s" % A)
    assert view_rows(readonly, "conversation_thread", "WHERE business_id = %s", (B,)) == []


def test_readonly_reads_no_table_beyond_the_views_and_writes_nothing(readonly, db_conn, two_businesses):
    readonly.execute(f"SET convkey.business_id = '{A}'")
    # the columns the views read are readable, for the session's business only
    rows = readonly.execute("SELECT DISTINCT business_id FROM convkey.whatsapp_conversation").fetchall()
    assert rows == [(A,)]
    assert readonly.execute("SELECT DISTINCT business_id FROM convkey.whatsapp_message").fetchall() == [(A,)]
    problems = []
    for sql in ["SELECT * FROM convkey.whatsapp_conversation", "SELECT summary FROM convkey.whatsapp_conversation",
                "SELECT value FROM convkey.identity", "SELECT wa_id FROM convkey.whatsapp_message",
                "SELECT moved_identities FROM convkey.conversation_merge", "SELECT * FROM convkey.backfill_row",
                "SELECT * FROM convkey.conversation_separation", "SELECT * FROM convkey.backfill_cursor",
                "SELECT value FROM convkey.identity_conflict", "SELECT nextval('convkey.pending_person_seq')",
                "UPDATE convkey.whatsapp_conversation SET push_name = 'x'", "DELETE FROM convkey.whatsapp_message",
                "INSERT INTO convkey.identity (business_id, kind, value, pending_person_id) VALUES (101, 'lead', '1', 1)",
                "TRUNCATE convkey.identity"]:
        state = sqlstate_of(readonly, sql)
        if state != "42501":
            problems.append(f"{sql}: {state or 'allowed'}")
    for signature, _name, kind, trigger, types in db_conn.execute(ROUTINES).fetchall():
        if trigger or signature in INLINED_HELPERS or signature.startswith("convkey.display_name("):
            continue
        sql = call_sql(signature, types).replace("SELECT ", "CALL ", 1) if kind == "p" else call_sql(signature, types)
        state = sqlstate_of(readonly, sql)
        if state != "42501":
            problems.append(f"{signature}: {state or 'allowed'}")
    assert not problems, "convkey_readonly may only read the views:\n" + "\n".join(problems)
    assert readonly.execute("SELECT convkey.display_name(NULL, 'Dana', NULL, NULL, NULL)").fetchone()[0] == "Dana"


# --- the schema keeps these properties --------------------------------------------------------------------
def test_every_business_table_has_row_security_and_a_policy(db_conn):
    rows = db_conn.execute(
        "SELECT c.relname, c.relrowsecurity, "
        "       array(SELECT r::regrole::text FROM pg_policy p, unnest(p.polroles) r WHERE p.polrelid = c.oid) "
        "  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        " WHERE n.nspname = 'convkey' AND c.relkind IN ('r', 'p') ORDER BY 1").fetchall()
    assert rows
    for name, rls, roles in rows:
        assert rls, f"convkey.{name}: row-level security is off"
        if name != "backfill_cursor":  # positions only: no policy, nobody but the owner sees it
            assert {"convkey_readonly", "convkey_app"} <= set(roles), f"convkey.{name}: policies for {roles}"
    options = db_conn.execute(
        "SELECT c.relname, c.reloptions FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'convkey' AND c.relkind = 'v' ORDER BY 1").fetchall()
    assert {name for name, _ in options} == set(VIEWS)
    assert all("security_invoker=true" in (opts or []) for _, opts in options), options


def test_migrate_grants_new_functions_and_keeps_grants(db_dsn, db_conn):
    """post-apply-90 runs on every migrate: a function created since then is revoked from PUBLIC,
    granted to convkey_app when public, kept from the roles when internal."""
    db_conn.execute("CREATE FUNCTION convkey.probe_new_api() RETURNS int LANGUAGE sql AS 'SELECT 1'")
    db_conn.execute("CREATE FUNCTION convkey._probe_new_internal() RETURNS int LANGUAGE sql AS 'SELECT 1'")
    migrate(db_dsn)
    privilege = "SELECT has_function_privilege(%s, %s, 'EXECUTE')"
    assert db_conn.execute(privilege, ("convkey_app", "convkey.probe_new_api()")).fetchone()[0]
    assert not db_conn.execute(privilege, ("convkey_app", "convkey._probe_new_internal()")).fetchone()[0]
    assert not db_conn.execute(privilege, ("convkey_readonly", "convkey.probe_new_api()")).fetchone()[0]
    public = db_conn.execute(
        "SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace, "
        "aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a WHERE n.nspname = 'convkey' AND a.grantee = 0"
    ).fetchall()
    assert public == []
    assert db_conn.execute(privilege, ("convkey_app", "convkey.record_message(bigint,text,text,text,text,text,"
                                       "bigint,text,timestamp with time zone,text)")).fetchone()[0]


def test_rollback_of_0006_revokes_and_keeps_the_roles(db_conn):
    sql_dir, _ = migration_dirs()
    db_conn.execute(Path(sql_dir, "0006_create_roles.rollback.sql").read_text())
    assert db_conn.execute("SELECT count(*) FROM pg_roles WHERE rolname IN ('convkey_app', 'convkey_readonly')"
                           ).fetchone()[0] == 2, "roles are cluster-wide: the rollback keeps them"
    assert db_conn.execute("SELECT count(*) FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid "
                           "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'convkey'").fetchone()[0] == 0
    assert db_conn.execute("SELECT bool_or(c.relrowsecurity) FROM pg_class c JOIN pg_namespace n "
                           "ON n.oid = c.relnamespace WHERE n.nspname = 'convkey' AND c.relkind = 'r'").fetchone()[0] is False
    for role in ("convkey_app", "convkey_readonly"):
        held = db_conn.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'convkey' AND (has_table_privilege(%s, c.oid, 'SELECT') "
            "OR has_any_column_privilege(%s, c.oid, 'SELECT')) AND c.relkind IN ('r', 'v')", (role, role)).fetchone()[0]
        assert held == 0, role
        assert not db_conn.execute("SELECT has_schema_privilege(%s, 'convkey', 'USAGE')", (role,)).fetchone()[0]
    assert db_conn.execute("SELECT has_function_privilege('public', 'convkey.record_message(bigint,text,text,text,text,"
                           "text,bigint,text,timestamp with time zone,text)', 'EXECUTE')").fetchone()[0]


def test_migration_tolerates_existing_roles(fresh_db):
    """The roles exist already (the template's migration made them): another database migrates fine."""
    dsn = fresh_db()
    report = migrate(dsn)
    assert "0006_create_roles" in report.applied
