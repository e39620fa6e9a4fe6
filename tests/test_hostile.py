"""Hostile input against every public function of schema convkey.

Each public function is called as ``convkey_app`` (the role applications use) with every value of
``tests/data/hostile_inputs.json`` of its parameter's type in each of its parameters, NULL
included, the other parameters valid. Every call must either

* succeed with a correct result (checked per function: a weird but valid push name, body, summary
  or lead name is stored verbatim; a weird spelling of a known identifier finds that person; the
  grammar agrees with the runner's mirror, ``convkey.jid``), or
* fail with a 22xxx SQLSTATE, or P0002 for a well-formed id that does not exist, with a message
  (and a hint for 22023) that carries no run of 8 or more digits of the call's text arguments in
  any script (no phone number or LID) and no raw control or direction characters, and write
  nothing: ``table_checksums`` (tables and sequence positions) is unchanged, so a refused call
  does not even burn a sequence value.

No other SQLSTATE (no XX000, 42xxx, 23xxx, 40xxx, 57014: the connection has statement_timeout
5s), no lost connection. Values psycopg refuses to send (NUL, lone surrogates) must be refused by
the client and change nothing. Each call runs in a transaction that is rolled back afterwards, so
every call starts from the same data. The calls of one function run in one test that collects
every violation and prints them all.
"""

from __future__ import annotations

import json
import os
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any, Callable

import psycopg
import pytest
from conftest import DATA, table_checksums
from test_display import py_display_name

from convkey import jid
from convkey.errors import InvalidIdentifier, ValueTooLong

pytestmark = [
    pytest.mark.reliability,
    pytest.mark.skipif(os.environ.get("CONVKEY_TEST_PROXY") == "1",
                       reason="calls the package functions of one database, not through a proxy"),
]

PUBLIC_FUNCTIONS = """
SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = 'convkey' AND p.proname !~ '^_' AND p.prokind = 'f' AND p.prorettype <> 'trigger'::regtype
 ORDER BY 1
"""
INPUT_PARAMS = """
SELECT a.name, format_type(a.type, NULL)
  FROM pg_proc p,
       unnest(p.proargnames[1:p.pronargs], p.proargtypes::oid[]) WITH ORDINALITY AS a(name, type, n)
 WHERE p.oid = %s::regprocedure ORDER BY a.n
"""
P = "972547654321"
JID = P + "@s.whatsapp.net"
LID = "61928374650192"
AT = "2025-01-01T10:00:00+00:00"
ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
ASCII_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


# --- the corpus -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Bad:
    value: Any
    why: str
    client_refuses: bool = False

    def label(self) -> str:
        v = self.value
        shown = "NULL" if v is None else ascii(v if len(str(v)) <= 40 else str(v)[:40] + f"...({len(str(v))})")
        return f"{shown} [{self.why}]"


def load_corpus() -> dict[str, list[Bad]]:
    raw = json.loads((DATA / "hostile_inputs.json").read_text(encoding="utf-8"))
    corpus: dict[str, list[Bad]] = {}
    for kind in ("text", "bigint", "timestamptz", "interval"):
        items = []
        for entry in raw[kind]:
            if "repeat" in entry:
                value = entry["repeat"] * entry["times"] + entry.get("suffix", "")
            else:
                value = entry["value"]
            if kind != "text" and value is not None:
                value = str(value)  # sent as text: the server's cast judges it
            items.append(Bad(value, entry["why"], entry.get("client_refuses", False)))
        corpus[kind] = items
    return corpus


CORPUS = load_corpus()
TYPE_OF = {"text": "text", "bigint": "bigint", "timestamp with time zone": "timestamptz", "interval": "interval"}


def corpus_size() -> int:
    return sum(len(v) for v in CORPUS.values())


# --- the Python mirrors used as oracles -----------------------------------------------------------
def py_identity(raw: str) -> tuple[str, str] | None:
    """(kind, value) of a person identifier as convkey.jid reads it; None for groups and the like."""
    w = jid.parse_wa_id(raw)
    if w.kind == "pn":
        return ("phone", w.phone_e164)
    if w.kind == "lid":
        return ("lid", w.lid)
    if w.kind == "bsuid":
        return ("bsuid", w.jid_user)
    return None


def py_lid_value(raw: str) -> str:
    """convkey._lid_value: LID digits, or a LID JID."""
    text = raw.strip(" \t\r\n")
    if re.fullmatch(r"[0-9]{1,32}", text, re.ASCII):
        return text
    if re.search(r"@(hosted\.)?lid\Z", text, re.ASCII | re.IGNORECASE) and len(text) <= 256:
        return jid.parse_wa_id(text).lid
    raise InvalidIdentifier("not a LID")


def py_bsuid(raw: str) -> str:
    text = raw.strip(" \t\r\n").translate(ASCII_UPPER)
    if re.fullmatch(r"[A-Z]{2}(\.ENT)?\.[0-9]{1,64}", text, re.ASCII):
        return text
    raise InvalidIdentifier("not a BSUID")


def py_canonical_key(b, lead, phone, lid, bsuid) -> str:
    if b is None or int(b) <= 0 or (lead is not None and int(lead) <= 0):
        raise InvalidIdentifier("bad id")
    v_phone = jid.international_phone(phone) if phone is not None else None
    v_lid = py_lid_value(lid) if lid is not None else None
    v_bsuid = py_bsuid(bsuid) if bsuid is not None else None
    for kind, value in (("lead", lead), ("phone", v_phone), ("lid", v_lid), ("bsuid", v_bsuid)):
        if value is not None:
            return f"{kind}:{int(b)}:{int(value) if kind == 'lead' else value}"
    raise InvalidIdentifier("no identifier")


def py_error_class(fn: Callable[[], Any]) -> str | None:
    """The SQLSTATE the Python mirror stands for: None (accepted), 22001 or 22023."""
    try:
        fn()
    except ValueTooLong:
        return "22001"
    except InvalidIdentifier:
        return "22023"
    return None


# --- message checks ----------------------------------------------------------------------------------
def fold_digits(text: str) -> str:
    """Digits of any script (fullwidth, Arabic-Indic, superscript, ...) as ASCII; others as a blank."""
    out = []
    for ch in text:
        d = unicodedata.digit(ch, None)
        out.append(str(d) if d is not None else " ")
    return "".join(out)


def digit_leaks(inputs: list[str], texts: list[str]) -> list[str]:
    """Runs of 8+ digits of the inputs (any 8 in a row) that reappear in the texts."""
    folded = " | ".join(fold_digits(t) for t in texts if t)
    leaks = []
    for value in inputs:
        for run in re.findall(r"[0-9]{8,}", fold_digits(value)):
            if any(run[i:i + 8] in folded for i in range(len(run) - 7)):
                leaks.append(run[:12] + ("..." if len(run) > 12 else ""))
    return leaks


def raw_controls(texts: list[str]) -> list[str]:
    return sorted({f"U+{ord(ch):04X}" for t in texts if t for ch in t
                   if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Zl", "Zp")})


# --- the data every call starts from -------------------------------------------------------------
@dataclass
class World:
    b: int = 1
    ids: dict[str, int] = field(default_factory=dict)


def build_world(conn: psycopg.Connection) -> World:
    """Business 1: C1 (+972501234567, a message, a push name), C2 and C3 (to merge), C4 with C5
    merged into it (merge M, to undo); business 2 holds the same person."""
    w = World()

    def goc(b: int, wa: str) -> int:
        return conn.execute("SELECT conversation_id FROM convkey.get_or_create_conversation(%s, %s)", (b, wa)).fetchone()[0]

    w.ids["C1"] = goc(1, JID)
    conn.execute("SELECT convkey.record_message(1, %s, 'in', 'wamid.base.1', 'hello', p_sent_at => %s)",
                 (JID, "2024-12-31T10:00:00Z"))
    conn.execute("SELECT convkey.set_push_name(1, %s, 'Base Name')", (w.ids["C1"],))
    for name, digits in (("C2", "972547654322"), ("C3", "972547654323"), ("C4", "972547654324"), ("C5", "972547654325")):
        w.ids[name] = goc(1, digits + "@s.whatsapp.net")
    conn.execute("SELECT convkey.merge_conversations(1, %s, %s)", (w.ids["C4"], w.ids["C5"]))
    w.ids["M"] = conn.execute("SELECT id FROM convkey.conversation_merge WHERE business_id = 1 AND duplicate_id = %s",
                              (w.ids["C5"],)).fetchone()[0]
    w.ids["B2"] = goc(2, JID)
    return w


# --- per-function specs: the valid arguments, and what a success must look like -----------------------
class Ctx:
    def __init__(self, conn, args: dict, rows: list, world: World):
        self.conn, self.args, self.rows, self.world = conn, args, rows, world

    def one(self, sql: str, params=()) -> Any:
        row = self.conn.execute(sql, params).fetchone()
        return None if row is None else (row[0] if len(row) == 1 else row)

    def conv(self, conv_id: int, columns: str = "*"):
        return self.conn.execute(
            f"SELECT {columns} FROM convkey.whatsapp_conversation WHERE business_id = %s AND id = %s",
            (int(self.args["p_business_id"]), conv_id)).fetchone()

    def owner(self, kind: str, value: str):
        return self.conn.execute(
            "SELECT conversation_id, pending_person_id FROM convkey.identity WHERE business_id = %s AND kind = %s "
            "AND value = %s", (int(self.args["p_business_id"]), kind, value)).fetchone()


def call_identities(args: dict) -> list[tuple[str, str]]:
    ids = []
    if args.get("p_lead_id") is not None:
        ids.append(("lead", str(int(args["p_lead_id"]))))
    if args.get("p_customer_wa_id") is not None:
        ident = py_identity(args["p_customer_wa_id"])
        if ident is None:
            raise AssertionError("SQL accepted a non-person identifier the runner refuses")
        ids.append(ident)
    if args.get("p_phone_e164") is not None:
        ids.append(("phone", jid.international_phone(args["p_phone_e164"])))
    return ids


def check_resolved(ctx: Ctx, conv_id: int) -> list[str]:
    """The conversation is live, owns every identity the call named, and its key is one it owns."""
    problems = []
    row = ctx.conv(conv_id, "merged_into_id, canonical_key, customer_wa_id")
    if row is None:
        return [f"conversation {conv_id} not in business {ctx.args['p_business_id']}"]
    merged, key, wa = row
    if merged is not None:
        problems.append("returned a tombstone")
    try:
        expected = call_identities(ctx.args)
    except (InvalidIdentifier, AssertionError) as exc:
        return [f"SQL accepted what the runner's grammar refuses: {exc}"]
    for kind, value in expected:
        owner = ctx.owner(kind, value)
        if owner is None or owner[0] != conv_id:
            problems.append(f"identity {kind} {value!r} not owned by {conv_id} (owner {owner})")
    kind, _business, value = (key or "::").split(":", 2)
    owner = ctx.owner(kind, value) if key else None
    if owner is None or owner[0] != conv_id:
        problems.append(f"key {key!r} does not come from an identity the conversation owns")
    if ctx.args.get("p_customer_wa_id") is not None and wa != ctx.args["p_customer_wa_id"]:
        problems.append(f"customer_wa_id stored as {wa!r}, not verbatim")
    return problems


def v_canonical_key(ctx: Ctx) -> list[str]:
    a = ctx.args
    try:
        expected = py_canonical_key(a["p_business_id"], a["p_lead_id"], a["p_phone_e164"], a["p_lid"], a["p_bsuid"])
    except InvalidIdentifier as exc:
        return [f"SQL accepted what the runner refuses ({exc}): {ctx.rows[0][0]!r}"]
    return [] if ctx.rows == [(expected,)] else [f"got {ctx.rows}, runner says {expected!r}"]


def v_parse_wa_id(ctx: Ctx) -> list[str]:
    try:
        expected = tuple(jid.parse_wa_id(ctx.args["p_raw"]))
    except InvalidIdentifier as exc:
        return [f"SQL accepted what the runner refuses ({exc}): {ctx.rows}"]
    return [] if ctx.rows == [expected] else [f"got {ctx.rows}, runner says {expected}"]


def v_get_or_create(ctx: Ctx) -> list[str]:
    if len(ctx.rows) != 1:
        return [f"{len(ctx.rows)} rows"]
    conv_id, key, _created = ctx.rows[0]
    problems = check_resolved(ctx, conv_id)
    if ctx.conv(conv_id, "canonical_key")[0] != key:
        problems.append("returned key differs from the stored key")
    return problems


def v_update_session_activity(ctx: Ctx) -> list[str]:
    (conv_id,), = ctx.rows
    problems = check_resolved(ctx, conv_id)
    if not ctx.one("SELECT last_message_at >= %s::timestamptz FROM convkey.whatsapp_conversation "
                   "WHERE business_id = %s AND id = %s", (ctx.args["p_at"], int(ctx.args["p_business_id"]), conv_id)):
        problems.append("last_message_at is before p_at")
    return problems


def v_record_message(ctx: Ctx) -> list[str]:
    a = ctx.args
    (msg_id, conv_id, inserted), = ctx.rows
    problems = check_resolved(ctx, conv_id)
    row = ctx.conn.execute(
        "SELECT conversation_id, direction, provider, provider_message_id, body, source, wa_id, sent_at = %s::timestamptz "
        "FROM convkey.whatsapp_message WHERE business_id = %s AND id = %s",
        (a["p_sent_at"], int(a["p_business_id"]), msg_id)).fetchone()
    direction = {"in": "in", "inbound": "in", "out": "out", "outbound": "out"}.get(a["p_direction"].translate(ASCII_LOWER))
    if direction is None:
        return [f"accepted the direction {a['p_direction']!r}"]
    source = a["p_source"] if a["p_source"] is not None else ("customer" if direction == "in" else None)
    expected = (conv_id, direction, a["p_provider"], a["p_provider_message_id"], a["p_body"], source,
                a["p_customer_wa_id"], True)
    if not inserted:
        problems.append("a new provider message id was not inserted")
    if row != expected:
        problems.append(f"stored {row!r:.300}, expected {expected!r:.300}")
    return problems


def v_resolve_conversation_id(ctx: Ctx) -> list[str]:
    (conv_id,), = ctx.rows
    row = ctx.conv(conv_id, "merged_into_id")
    return [] if row is not None and row[0] is None else [f"{conv_id} is not a live conversation of the business"]


def v_close_session(ctx: Ctx) -> list[str]:
    a = ctx.args
    conv_id = ctx.one("SELECT convkey.resolve_conversation_id(%s, %s)", (int(a["p_business_id"]), int(a["p_conversation_id"])))
    is_open, summary = ctx.conv(conv_id, "is_open, summary")
    problems = ["still open"] if is_open else []
    if a["p_summary"] is not None and summary != a["p_summary"]:
        problems.append("summary not stored verbatim")
    return problems


def v_idle_sessions(ctx: Ctx) -> list[str]:
    got = [r[0] for r in ctx.rows]
    live_open = {r[0] for r in ctx.conn.execute(
        "SELECT id FROM convkey.whatsapp_conversation WHERE business_id = %s AND is_open AND merged_into_id IS NULL",
        (int(ctx.args["p_business_id"]),))}
    return [] if got == sorted(got) and set(got) <= live_open else [f"{got} are not open live conversations in order"]


def v_set_push_name(ctx: Ctx) -> list[str]:
    a = ctx.args
    stored = ctx.conv(int(a["p_conversation_id"]), "push_name")[0]
    name = a["p_push_name"]
    expected = "Base Name" if name is None or name.strip(" ") == "" else name
    return [] if stored == expected else [f"push_name {stored!r:.80}, expected {expected!r:.80}"]


def v_merge_conversations(ctx: Ctx) -> list[str]:
    a = ctx.args
    (survivor,), = ctx.rows
    primary, duplicate = int(a["p_primary_id"]), int(a["p_duplicate_id"])
    merged_into = ctx.conv(duplicate, "merged_into_id")[0]
    reason = ctx.one("SELECT reason FROM convkey.conversation_merge WHERE business_id = %s AND duplicate_id = %s "
                     "ORDER BY id DESC LIMIT 1", (int(a["p_business_id"]), duplicate))
    ok = survivor == primary and merged_into == primary and reason == a["p_reason"]
    return [] if ok else [f"survivor {survivor}, merged_into {merged_into}, reason {reason!r}"]


def v_assign_lead(ctx: Ctx) -> list[str]:
    a = ctx.args
    (survivor,), = ctx.rows
    lead_id, lead_name, merged = ctx.conv(survivor, "lead_id, lead_name, merged_into_id")
    problems = [] if lead_id == int(a["p_lead_id"]) and merged is None else [f"lead {lead_id}, merged {merged}"]
    if a["p_lead_name"] is not None and lead_name != a["p_lead_name"]:
        problems.append("lead_name not stored verbatim")
    return problems


def both_joined(ctx: Ctx, survivor, idents: list[tuple[str, str]]) -> list[str]:
    owners = [ctx.owner(k, v) for k, v in idents]
    if survivor is None:
        persons = {o[1] for o in owners if o is not None}
        ok = all(o is not None and o[0] is None for o in owners) and len(persons) == 1 and None not in persons
    else:
        ok = all(o is not None and o[0] == survivor for o in owners)
    return [] if ok else [f"returned {survivor}, owners {owners}"]


def v_merge_leads(ctx: Ctx) -> list[str]:
    a = ctx.args
    (survivor,), = ctx.rows
    return both_joined(ctx, survivor, [("lead", str(int(a["p_from_lead_id"]))), ("lead", str(int(a["p_into_lead_id"])))])


def v_link_identity(ctx: Ctx) -> list[str]:
    a = ctx.args
    (survivor,), = ctx.rows
    try:
        idents = [py_identity(a["p_wa_id"]), py_identity(a["p_other"])]
    except InvalidIdentifier as exc:
        return [f"SQL accepted what the runner refuses: {exc}"]
    if None in idents:
        return ["SQL linked a non-person identifier"]
    return both_joined(ctx, survivor, idents)


def v_unmerge(ctx: Ctx) -> list[str]:
    a = ctx.args
    (restored,), = ctx.rows
    undone = ctx.one("SELECT undone_at IS NOT NULL FROM convkey.conversation_merge WHERE business_id = %s AND id = %s",
                     (int(a["p_business_id"]), int(a["p_merge_id"])))
    live = ctx.conv(restored, "merged_into_id")
    return [] if undone and live is not None and live[0] is None else [f"restored {restored}, undone {undone}"]


def v_display_name(ctx: Ctx) -> list[str]:
    a = ctx.args
    expected = py_display_name(a["p_lead_name"], a["p_push_name"], a["p_name"], a["p_peer_name"], a["p_phone"],
                               a["p_fallback"])
    return [] if ctx.rows == [(expected,)] else [f"got {ctx.rows[0][0]!r:.80}, the model says {expected!r:.80}"]


def v_mark_read(ctx: Ctx) -> list[str]:
    a = ctx.args
    conv_id = ctx.one("SELECT convkey.resolve_conversation_id(%s, %s)", (int(a["p_business_id"]), int(a["p_conversation_id"])))
    return [] if ctx.conv(conv_id, "last_read_at")[0] is not None else ["last_read_at not set"]


@dataclass
class Spec:
    baseline: Callable[[World], dict]
    validate: Callable[[Ctx], list[str]]
    # the runner's mirror of the same rule: its verdict must match a refusal's SQLSTATE
    mirror: Callable[[dict], str | None] | None = None


SPECS: dict[str, Spec] = {
    "convkey.canonical_key(bigint,bigint,text,text,text)": Spec(
        lambda w: {"p_business_id": 1, "p_lead_id": None, "p_phone_e164": "+" + P, "p_lid": None, "p_bsuid": None},
        v_canonical_key,
        lambda a: py_error_class(lambda: py_canonical_key(a["p_business_id"], a["p_lead_id"], a["p_phone_e164"],
                                                          a["p_lid"], a["p_bsuid"]))),
    "convkey.parse_wa_id(text)": Spec(
        lambda w: {"p_raw": JID}, v_parse_wa_id, lambda a: py_error_class(lambda: jid.parse_wa_id(a["p_raw"]))),
    "convkey.get_or_create_conversation(bigint,text,text,bigint,text)": Spec(
        lambda w: {"p_business_id": 1, "p_customer_wa_id": JID, "p_provider": "baileys", "p_lead_id": None,
                   "p_phone_e164": None},
        v_get_or_create),
    "convkey.update_session_activity(bigint,text,text,text,bigint,text,timestamp with time zone)": Spec(
        lambda w: {"p_business_id": 1, "p_customer_wa_id": JID, "p_direction": "in", "p_provider": "baileys",
                   "p_lead_id": None, "p_phone_e164": None, "p_at": AT},
        v_update_session_activity),
    "convkey.record_message(bigint,text,text,text,text,text,bigint,text,timestamp with time zone,text)": Spec(
        lambda w: {"p_business_id": 1, "p_customer_wa_id": JID, "p_direction": "in",
                   "p_provider_message_id": "wamid.hostile", "p_body": "hi", "p_provider": "baileys",
                   "p_lead_id": None, "p_phone_e164": None, "p_sent_at": AT, "p_source": None},
        v_record_message),
    "convkey.resolve_conversation_id(bigint,bigint)": Spec(
        lambda w: {"p_business_id": 1, "p_conversation_id": w.ids["C1"]}, v_resolve_conversation_id),
    "convkey.close_session(bigint,bigint,text)": Spec(
        lambda w: {"p_business_id": 1, "p_conversation_id": w.ids["C1"], "p_summary": "summary"}, v_close_session),
    "convkey.idle_sessions(bigint,interval)": Spec(
        lambda w: {"p_business_id": 1, "p_idle": "5 minutes"}, v_idle_sessions),
    "convkey.set_push_name(bigint,bigint,text)": Spec(
        lambda w: {"p_business_id": 1, "p_conversation_id": w.ids["C1"], "p_push_name": "Dana"}, v_set_push_name),
    "convkey.merge_conversations(bigint,bigint,bigint,text)": Spec(
        lambda w: {"p_business_id": 1, "p_primary_id": w.ids["C2"], "p_duplicate_id": w.ids["C3"],
                   "p_reason": "manual"},
        v_merge_conversations),
    "convkey.assign_lead(bigint,bigint,bigint,text)": Spec(
        lambda w: {"p_business_id": 1, "p_conversation_id": w.ids["C1"], "p_lead_id": 77, "p_lead_name": "Dana Levi"},
        v_assign_lead),
    "convkey.merge_leads(bigint,bigint,bigint)": Spec(
        lambda w: {"p_business_id": 1, "p_from_lead_id": 11, "p_into_lead_id": 12}, v_merge_leads),
    "convkey.link_identity(bigint,text,text,text)": Spec(
        lambda w: {"p_business_id": 1, "p_wa_id": LID + "@lid", "p_other": JID, "p_source": "message"},
        v_link_identity),
    "convkey.unmerge(bigint,bigint)": Spec(
        lambda w: {"p_business_id": 1, "p_merge_id": w.ids["M"]}, v_unmerge),
    "convkey.display_name(text,text,text,text,text,text)": Spec(
        lambda w: {"p_lead_name": None, "p_push_name": "Dana", "p_name": None, "p_peer_name": None,
                   "p_phone": "+" + P, "p_fallback": "nobody"},
        v_display_name),
    "convkey.mark_read(bigint,bigint)": Spec(
        lambda w: {"p_business_id": 1, "p_conversation_id": w.ids["C1"]}, v_mark_read),
}


# --- running the corpus --------------------------------------------------------------------------------
class Checksums:
    """conftest.table_checksums in one statement (the same md5s and sequence positions), so that each
    of the thousands of calls costs one round trip to check; checked against table_checksums first."""

    def __init__(self, conn: psycopg.Connection):
        tables = conn.execute(
            "SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'convkey' AND c.relkind IN ('r', 'p', 'S') ORDER BY 1").fetchall()
        parts = []
        for name, kind in tables:
            if kind == "S":
                expr = f'(SELECT last_value::text || is_called::text FROM convkey."{name}")'
            else:
                expr = (f"(SELECT coalesce(md5(string_agg(t::text, ',' ORDER BY t::text)), '') "
                        f'FROM convkey."{name}" t)')
            parts.append(f"'{name}', {expr}")
        self.sql = "SELECT jsonb_build_object(" + ", ".join(parts) + ")"
        assert self(conn) == table_checksums(conn)
        conn.rollback()

    def __call__(self, conn: psycopg.Connection) -> dict[str, str]:
        return conn.execute(self.sql).fetchone()[0]


def allowed_failure(sqlstate: str, param_type: str | None, bad: Bad) -> bool:
    if sqlstate.startswith("22"):
        return True
    # P0002: a well-formed id (or a well-formed business) that names nothing
    return (sqlstate == "P0002" and param_type == "other" and isinstance(bad.value, str)
            and bad.value.strip().isdigit())


def run_function(conn: psycopg.Connection, signature: str, world: World) -> tuple[int, list[str]]:
    spec = SPECS[signature]
    params = conn.execute(INPUT_PARAMS, (signature,)).fetchall()
    conn.rollback()
    name = signature.split("(")[0]
    sql = f"SELECT * FROM {name}(" + ", ".join(f"{p} => %({p})s::{t}" for p, t in params) + ")"
    base = spec.baseline(world)
    assert set(base) == {p for p, _ in params}, f"{signature}: baseline arguments {sorted(base)}"
    calls, violations = 0, []
    checksums = Checksums(conn)
    state = checksums(conn)
    conn.rollback()
    text_params = {p for p, t in params if t == "text"}
    # the valid baseline call first (it must succeed and pass its check), then the corpus
    plan = [(None, None)] + [(p, bad) for p, t in params for bad in CORPUS[TYPE_OF[t]]]
    for param, bad in plan:
        args = dict(base)
        if param is not None:
            args[param] = bad.value
            calls += 1
        where = f"{name}({param}={bad.label()})" if param else f"{name}(baseline)"
        problems, state = one_call(conn, checksums, sql, spec, args, world, text_params, param, bad, state)
        violations += [f"{where}: {p}" for p in problems]
    return calls, violations


def one_call(conn, checksums: Checksums, sql, spec: Spec, args: dict, world: World, text_params: set[str], param: str | None,
             bad: Bad | None, state):
    # bigint ids may be repeated in messages ("conversation 42 does not exist"); identifiers may not
    text_args = [v for k, v in args.items() if k in text_params and isinstance(v, str)]
    param_type = None if param is None else ("text" if param in text_params else "other")
    cur = conn.cursor()
    cur.execute("SET LOCAL ROLE convkey_app")
    try:
        cur.execute(sql, {k: (str(v) if isinstance(v, int) else v) for k, v in args.items()})
        rows = cur.fetchall()
    except (psycopg.Error, UnicodeEncodeError) as exc:
        if conn.closed or conn.broken:
            pytest.fail(f"the connection broke: {exc}")
        if isinstance(exc, psycopg.Error) and exc.sqlstate is not None:
            return refused(conn, checksums, exc, spec, args, param_type, bad, state, text_args)
        conn.rollback()
        problems = [] if bad is not None and bad.client_refuses else [f"refused by the client: {exc}"]
        written, state = wrote(conn, checksums, state)
        return problems + written, state
    if bad is not None and bad.client_refuses:
        conn.rollback()
        state = checksums(conn)
        conn.rollback()
        return ["the client sent a value it must refuse"], state
    cur.execute("RESET ROLE")
    try:
        problems = spec.validate(Ctx(conn, args, rows, world))
    except Exception as exc:  # a check that cannot even run is a finding too
        problems = [f"result check failed: {type(exc).__name__}: {exc}"]
    conn.rollback()
    state = checksums(conn)
    conn.rollback()
    return problems, state


def wrote(conn, checksums: Checksums, state) -> tuple[list[str], dict]:
    """(problems, the state now): a refused call must leave every table and sequence as it was."""
    after = checksums(conn)
    conn.rollback()
    changed = sorted(k for k in after if after[k] != state.get(k))
    return ([f"a refused call wrote to {', '.join(changed)}"] if changed else []), after


def refused(conn, checksums: Checksums, exc: psycopg.Error, spec: Spec, args, param_type, bad, state, text_args):
    conn.rollback()
    problems = []
    diag = exc.diag
    sqlstate = exc.sqlstate or "?"
    if bad is None:
        problems.append(f"the valid baseline call failed: {sqlstate} {diag.message_primary}")
    elif not allowed_failure(sqlstate, param_type, bad):
        problems.append(f"SQLSTATE {sqlstate} ({type(exc).__name__}): {diag.message_primary}")
    texts = [diag.message_primary or "", diag.message_detail or "", diag.message_hint or ""]
    if not (diag.message_primary or "").strip():
        problems.append(f"{sqlstate} with an empty message")
    if sqlstate == "22023" and not (diag.message_hint or "").strip():
        problems.append(f"22023 without a hint: {diag.message_primary}")
    leaks = digit_leaks(text_args, texts)
    if leaks:
        problems.append(f"the message repeats input digits {leaks}: {diag.message_primary!r:.200}")
    controls = raw_controls(texts)
    if controls:
        problems.append(f"the message carries raw control/format characters {controls}")
    if spec.mirror is not None and param_type == "text" and sqlstate in ("22023", "22001"):
        verdict = spec.mirror(args)
        if verdict != sqlstate:
            problems.append(f"SQL says {sqlstate}, the runner's mirror says {verdict or 'valid'}")
    written, state = wrote(conn, checksums, state)
    return problems + written, state


# --- the tests -------------------------------------------------------------------------------------------
@pytest.fixture
def hostile_conn(db_dsn):
    """A superuser connection (not autocommit) with the data every call starts from; calls run as convkey_app."""
    with psycopg.connect(db_dsn, autocommit=True) as setup:
        world = build_world(setup)
    with psycopg.connect(db_dsn) as conn:
        conn.execute("SET statement_timeout = '5s'")
        conn.commit()
        yield conn, world


def test_the_corpus_is_big_and_varied():
    assert len(CORPUS["text"]) >= 200, len(CORPUS["text"])
    assert corpus_size() >= 200
    assert all(any(b.value is None for b in items) for items in CORPUS.values()), "NULL for every type"
    assert sum(b.client_refuses for b in CORPUS["text"]) >= 2
    assert max(len(b.value or "") for b in CORPUS["text"]) >= 10240


def test_every_public_function_is_covered(db_conn):
    public = [r[0] for r in db_conn.execute(PUBLIC_FUNCTIONS)]
    assert sorted(SPECS) == public, (
        "tests/test_hostile.py must cover every public convkey function: "
        f"missing {sorted(set(public) - set(SPECS))}, gone {sorted(set(SPECS) - set(public))}")
    for signature in public:
        types = {t for _, t in db_conn.execute(INPUT_PARAMS, (signature,))}
        assert types <= set(TYPE_OF), f"{signature}: no hostile inputs for {types - set(TYPE_OF)}"


@pytest.mark.parametrize("signature", sorted(SPECS), ids=lambda s: s.split("(")[0].removeprefix("convkey."))
def test_hostile_inputs(hostile_conn, signature, reliability_record):
    conn, world = hostile_conn
    calls, violations = run_function(conn, signature, world)
    reliability_record(bad_inputs=calls, violations=len(violations), corpus_inputs=corpus_size(), function=signature)
    assert not violations, f"{len(violations)} of {calls} calls misbehaved:\n" + "\n".join(violations[:200])


def test_the_checks_really_report(hostile_conn):
    """Guard against a vacuous pass: a refusal that burns a sequence value, an XX000, and a 22023
    without a hint that repeats the input are all reported; a client-side refusal is not."""
    conn, world = hostile_conn
    conn.execute("""
        CREATE FUNCTION convkey.probe_hostile(p_raw text, p_mode text) RETURNS text
        LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
        BEGIN
            IF p_mode = 'burn' THEN
                PERFORM nextval('convkey.pending_person_seq');
                RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value', MESSAGE = 'refused', HINT = 'a hint';
            ELSIF p_mode = 'internal' THEN
                RAISE EXCEPTION USING ERRCODE = 'internal_error', MESSAGE = 'oops';
            ELSIF p_mode = 'echo' THEN
                RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value', MESSAGE = 'bad value ' || p_raw;
            END IF;
            RETURN p_raw;
        END $$;
        GRANT EXECUTE ON FUNCTION convkey.probe_hostile(text, text) TO convkey_app;
    """)
    conn.commit()
    checksums = Checksums(conn)
    state = checksums(conn)
    conn.rollback()
    spec = Spec(lambda w: {}, lambda ctx: [] if ctx.rows == [(ctx.args["p_raw"],)] else ["wrong result"])
    sql = "SELECT * FROM convkey.probe_hostile(p_raw => %(p_raw)s::text, p_mode => %(p_mode)s::text)"

    def run(raw: str, mode: str, client_refuses: bool = False) -> list[str]:
        nonlocal state
        problems, state = one_call(conn, checksums, sql, spec, {"p_raw": raw, "p_mode": mode}, world, {"p_raw"},
                                   "p_raw", Bad(raw, "probe", client_refuses), state)
        return problems

    assert run("fine", "ok") == []
    assert any("wrote to pending_person_seq" in p for p in run("x", "burn"))
    assert any("SQLSTATE XX000" in p for p in run("x", "internal"))
    echoed = run("\u202e" + P + "@s.whatsapp.net", "echo")
    assert any("without a hint" in p for p in echoed), echoed
    assert any("repeats input digits" in p for p in echoed), echoed
    assert any("control/format characters ['U+202E']" in p for p in echoed), echoed
    assert run("a\x00b", "ok", client_refuses=True) == []
    assert any("refused by the client" in p for p in run("a\x00b", "ok"))
