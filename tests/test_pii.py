"""No full phone number or LID in what convkey logs or raises.

The policy: a phone or LID counts as printed in full when its whole digit string (a phone without
its '+', in any of the spellings WhatsApp uses for it) appears in the text, also once spaces,
dashes, dots and parentheses between digits are taken out (so '+972 50-123-4567' counts). Masked
values keep at most their last 4 digits (``convkey.phone.mask``, ``convkey._mask``).

- Logs: everything the runner writes to stderr (with ``-v`` every logger is at DEBUG: convkey's,
  yoyo's, psycopg's) in a demo run, an ingest with bad lines and a backfill with unresolvable rows.
- Output: the same commands' stdout. The one exception is the demo's inbox table ("A few threads"),
  whose phone column is the product's own output: it shows the thread's phone formatted for
  display, as a CRM inbox does. Everything else the demo prints (its figures, the naive-key
  example of remoteJid spellings) carries no full phone or LID.
- Errors: the messages, details and hints of the SQLSTATEs convkey's functions raise for bad
  identifiers, and of the runner's own exceptions.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import psycopg
import pytest

import convkey
from convkey.demo_events import generate as demo_stream
from convkey.jid import parse_wa_id

_SEPARATED = re.compile(r"(?<=\d)[\s().\-]+(?=\d)")
_JID_USER = re.compile(r"^\+?(\d{6,})(?:[._]\d+)?(?::\d+)?(?:@(?:s\.whatsapp\.net|c\.us|lid|hosted|hosted\.lid))?$")


def run_convkey(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "convkey", "-v", *args], capture_output=True, text=True,
                          timeout=timeout)


def full_digits_in(text: str, secrets: set[str]) -> list[str]:
    """The secrets found in ``text``, as written or with separators between digits removed."""
    joined = _SEPARATED.sub("", text)
    return sorted(s for s in secrets if s in text or s in joined)


def identifiers_in(obj) -> set[str]:
    """Digit strings of every phone and LID (JIDs, E.164) anywhere in a parsed JSON value."""
    found: set[str] = set()
    if isinstance(obj, dict):
        for v in obj.values():
            found |= identifiers_in(v)
    elif isinstance(obj, list):
        for v in obj:
            found |= identifiers_in(v)
    elif isinstance(obj, str):
        m = _JID_USER.match(obj.strip())
        if m and ("@" in obj or obj.startswith("+")):
            found.add(m.group(1))
    return found


def stored_identifiers(conn: psycopg.Connection, business_id: int | None = None) -> set[str]:
    """Every phone and LID the database holds: identity values and the digits of the raw ids."""
    b = {"b": business_id}
    found = {v.lstrip("+") for (v,) in conn.execute(
        "SELECT value FROM convkey.identity WHERE kind IN ('phone', 'lid') AND (%(b)s::bigint IS NULL "
        "OR business_id = %(b)s)", b)}
    for (raw,) in conn.execute(
            "SELECT customer_wa_id FROM convkey.whatsapp_conversation WHERE customer_wa_id IS NOT NULL "
            "AND (%(b)s::bigint IS NULL OR business_id = %(b)s) UNION "
            "SELECT wa_id FROM convkey.whatsapp_message WHERE wa_id IS NOT NULL "
            "AND (%(b)s::bigint IS NULL OR business_id = %(b)s) UNION "
            "SELECT phone_e164 FROM convkey.whatsapp_conversation WHERE phone_e164 IS NOT NULL "
            "AND (%(b)s::bigint IS NULL OR business_id = %(b)s)", b):
        found |= identifiers_in(raw)
    return found


# --- the demo ---------------------------------------------------------------------------------------
def test_demo_run_logs_and_prints_no_full_phone_or_lid(db_dsn):
    stream = demo_stream(40, 3)
    secrets: set[str] = set()
    for p in stream.people:
        secrets |= {p.e164.lstrip("+"), *p.spellings} | ({p.lid} if p.lid else set())
    for line in stream.lines:
        secrets |= identifiers_in(json.loads(line))
    run = run_convkey("demo", "--people", "40", "--seed", "3", "--dsn", db_dsn)
    assert run.returncode == 0, run.stderr[-2000:]
    with psycopg.connect(db_dsn) as conn:
        business = int(re.search(r"business (\d+)", run.stdout).group(1))
        stored = stored_identifiers(conn, business)
    assert stored and stored <= secrets, stored - secrets  # the generator's list misses nothing stored
    assert len(secrets) > 60

    # the log: with -v, DEBUG lines of every logger (migrations, pool, convkey) and the progress bar
    assert " DEBUG " in run.stderr and " INFO " in run.stderr
    assert full_digits_in(run.stderr, secrets) == []

    # the output: nothing in full outside the inbox table, whose phone column is product output
    head, table = run.stdout.split("A few threads (convkey.conversation_thread):")
    assert full_digits_in(head, secrets) == []
    example = head[head.index("the naive key shows"):]
    assert "@lid" in example or "@s.whatsapp.net" in example  # the spellings are shown, masked
    assert re.search(r"\*{4,}\d{4}[:@._]", example), example
    rows = table.strip().splitlines()[1:]
    assert rows and all(re.search(r"\+\d{1,3} [\d -]+", row) for row in rows), rows  # formatted for display
    assert not re.search(r"\d{9,}", table)  # never a bare digit string (a LID, an unformatted phone)
    lids = {p.lid for p in stream.people if p.lid}
    assert full_digits_in(table, lids) == []


# --- ingest with bad lines ----------------------------------------------------------------------------
BAD_LINES = [
    # invalid JSON that holds a phone
    '{"key": {"remoteJid": "972541230001@s.whatsapp.net", "id": "b1"',
    # servers, users and LIDs the grammar refuses
    '{"key": {"remoteJid": "972541230002@example.org", "fromMe": false, "id": "b2"}, "message": {}}',
    '{"key": {"remoteJid": "97254123000x3@s.whatsapp.net", "fromMe": false, "id": "b3"}, "message": {}}',
    '{"key": {"remoteJid": "8330000000000a4@lid", "fromMe": false, "id": "b4"}, "message": {}}',
    '{"key": {"remoteJid": "9991234567890@s.whatsapp.net", "fromMe": false, "id": "b5"}, "message": {}}',
    # refused by the database: two phones for one call, a link of an identity to itself, a group
    '{"type": "message", "wa_id": "972541230007@s.whatsapp.net", "phone": "+972541230077", "direction": "in", '
    '"id": "b7"}',
    '{"type": "link", "wa_id": "972541230008@s.whatsapp.net", "other": "+972541230008"}',
    '{"type": "message", "wa_id": "120363041234567809@g.us", "direction": "in", "id": "b9"}',
    '{"type": "assign_lead", "wa_id": "83300000000010@lid:x", "lead_id": 7}',
    # refused by the runner: human phones it cannot read, a BSUID that is not one
    '{"type": "message", "phone": "050-1234-56789012", "direction": "in", "id": "b11"}',
    '{"type": "message", "wa_id": "+972 54-123-0012 ext 5", "direction": "in", "id": "b12"}',
    '{"type": "message", "wa_id": "US.83300000000013x", "direction": "in", "id": "b13"}',
    # good lines, so the log has the ordinary traffic too
    '{"type": "message", "wa_id": "83300000000014@lid", "alt_wa_id": "972541230014@s.whatsapp.net", '
    '"direction": "in", "id": "g14", "push_name": "Dana"}',
    '{"key": {"remoteJid": "83300000000006@lid", "remoteJidAlt": "83300000000066@lid", "fromMe": false, '
    '"id": "g16"}, "message": {}}',  # a LID as remoteJidAlt of a LID: not a link, the message is kept
    '{"type": "message", "wa_id": "972541230015:3@s.whatsapp.net", "direction": "out", "id": "g15"}',
]
BAD_SECRETS = {"972541230001", "972541230002", "97254123000", "8330000000000", "9991234567890", "83300000000006",
               "83300000000066", "972541230007", "972541230077", "972541230008", "120363041234567809",
               "83300000000010", "050123456789012", "972541230012", "83300000000013", "83300000000014",
               "972541230014", "972541230015"}


@pytest.mark.parametrize("workers", ["1", "3"])
def test_ingest_with_bad_lines_logs_no_full_phone_or_lid(db_dsn, tmp_path, workers):
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(BAD_LINES) + "\n", encoding="utf-8")
    run = run_convkey("ingest", str(path), "--dsn", db_dsn, "--workers", workers)
    assert run.returncode == 0, run.stderr
    bad = sorted(int(n) for n in re.findall(r"convkey ingest: line (\d+): ", run.stderr))
    assert bad == list(range(1, 13)), run.stderr
    assert full_digits_in(run.stdout + run.stderr, BAD_SECRETS) == [], run.stderr
    with psycopg.connect(db_dsn) as conn:
        stored = stored_identifiers(conn)
    assert {"83300000000014", "972541230014"} <= stored
    assert full_digits_in(run.stdout + run.stderr, stored) == []


# --- backfill with unresolvable rows ---------------------------------------------------------------
LEGACY = [  # (customer_wa_id, phone_e164): rows the backfill cannot resolve, and two it can
    ("972541230101@example.org", None),
    ("call me at 972541230102!!", None),
    (None, "+99912301"),
    ("972541230104@s.whatsapp.net", "+972541230114"),
    ("83300000000105@lid:x", None),
    ("120363041234567106@g.us", None),
    ("050-123-0107 ext 2", None),
    ("83300000000108@lid", "+972541230108"),
    ("972541230109:4@s.whatsapp.net", None),
]
LEGACY_SECRETS = {"972541230101", "972541230102", "99912301", "972541230104", "972541230114",
                  "83300000000105", "120363041234567106", "0501230107", "83300000000108", "972541230108",
                  "972541230109"}


def test_backfill_with_unresolvable_rows_logs_no_full_phone_or_lid(db_dsn):
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        for wa, phone in LEGACY:
            cid = conn.execute("INSERT INTO convkey.whatsapp_conversation (business_id, customer_wa_id, phone_e164) "
                               "VALUES (1, %s, %s) RETURNING id", (wa, phone)).fetchone()[0]
            conn.execute("INSERT INTO convkey.whatsapp_message (business_id, conversation_id, direction, "
                         "provider_message_id, wa_id) VALUES (1, %s, 'in', %s, %s)", (cid, f"legacy-{cid}", wa))
    runs = [run_convkey("backfill", "--dsn", db_dsn),                            # dry run, text report
            run_convkey("backfill", "--dsn", db_dsn, "--execute", "--json"),
            run_convkey("backfill", "--dsn", db_dsn, "--execute", "--batch-size", "2")]
    for run in runs:
        assert run.returncode == 1, run.stderr  # finished; unresolvable rows remain
        assert full_digits_in(run.stdout + run.stderr, LEGACY_SECRETS) == [], run.stdout + run.stderr
    report = json.loads(runs[1].stdout)
    assert report["unresolvable"] == 7
    assert all(u["reason"] for u in report["unresolvable_sample"])
    with psycopg.connect(db_dsn) as conn:
        # the reasons kept in the database for the DBA are masked as well
        reasons = [r for (r,) in conn.execute("SELECT reason FROM convkey.backfill_row WHERE reason IS NOT NULL")]
    assert len(reasons) == 7 and full_digits_in("\n".join(reasons), LEGACY_SECRETS) == [], reasons


# --- errors ---------------------------------------------------------------------------------------------
BAD_CALLS = [  # (SQL, params, the digits that must not come back)
    ("SELECT * FROM convkey.parse_wa_id(%s)", ("972541230201@example.org",), "972541230201"),
    ("SELECT * FROM convkey.record_message(1, %s, 'in', 'e2')", ("97254123020x@s.whatsapp.net",), "97254123020"),
    ("SELECT * FROM convkey.record_message(1, %s, 'in', 'e3')", ("8330000000020a3@lid",), "8330000000020"),
    ("SELECT * FROM convkey.get_or_create_conversation(1, %s, p_phone_e164 => %s)",
     ("972541230204@s.whatsapp.net", "+972541230214"), "972541230204|972541230214"),
    ("SELECT convkey.link_identity(1, %s, %s)", ("972541230205@s.whatsapp.net", "+972541230205"), "972541230205"),
    ("SELECT convkey.link_identity(1, %s, %s)", ("83300000000206@lid", "83300000000206:2@lid"), "83300000000206"),
    ("SELECT convkey.canonical_key(1, NULL, %s)", ("+9995412302077",), "9995412302077"),
    ("SELECT convkey.canonical_key(1, NULL, NULL, %s)", ("83300000000208x",), "83300000000208"),
    ("SELECT * FROM convkey.record_message(1, %s, 'in', 'e9')", ("120363041234567209@g.us",), "120363041234567209"),
    ("SELECT * FROM convkey.get_or_create_conversation(1, %s)", ("972541230210_x:1@s.whatsapp.net",), "972541230210"),
    ("SELECT * FROM convkey.update_session_activity(1, %s, p_phone_e164 => %s)",
     ("83300000000211@lid", "0541230211"), "83300000000211|0541230211"),
    ("SELECT * FROM convkey.record_message(1, %s, 'in', 'e12')", ("9" * 300 + "@s.whatsapp.net",), "9" * 300),
]


@pytest.mark.parametrize("sql,params,digits", BAD_CALLS, ids=[f"call{i}" for i in range(len(BAD_CALLS))])
def test_database_errors_for_bad_identifiers_mask_the_digits(db_conn, sql, params, digits):
    with pytest.raises(psycopg.Error) as exc:
        db_conn.execute(sql, params)
    e = exc.value
    assert e.sqlstate in ("22023", "22001", "22004"), (e.sqlstate, str(e))
    texts = [str(e), e.diag.message_primary or "", e.diag.message_detail or "", e.diag.message_hint or "",
             e.diag.context or ""]
    assert full_digits_in("\n".join(texts), set(digits.split("|"))) == [], texts


def test_the_guard_trigger_names_no_phone(db_conn):
    conv = db_conn.execute("SELECT conversation_id FROM convkey.get_or_create_conversation(1, "
                           "'972541230301@s.whatsapp.net')").fetchone()[0]
    with pytest.raises(psycopg.Error) as exc:
        db_conn.execute("UPDATE convkey.whatsapp_conversation SET phone_e164 = '+972541230302' WHERE id = %s", (conv,))
    assert exc.value.sqlstate == "22023"
    text = f"{exc.value}\n{exc.value.diag.message_detail}\n{exc.value.diag.message_hint}"
    assert full_digits_in(text, {"972541230301", "972541230302"}) == []


@pytest.mark.parametrize("call,digits", [
    (lambda c: c.record_message(1, "050-123-0401 ext 9", "in", "p1"), "0501230401"),
    (lambda c: c.record_message(1, "+999 54-123-0402", "in", "p2"), "999541230402"),
    (lambda c: c.record_message(1, "83300000000403@lid", "in", "p3", alt_wa_id="97254123040x@s.whatsapp.net"),
     "97254123040"),
    (lambda c: c.record_message(1, "972541230404@example.org", "in", "p4"), "972541230404"),
    (lambda c: c.link_identity(1, "972541230405@s.whatsapp.net", "+972541230405"), "972541230405"),
], ids=["human-phone", "impossible-length", "alt-jid", "server", "same-identity"])
def test_runner_exceptions_mask_the_digits(db_dsn, call, digits):
    with convkey.Client(db_dsn, max_size=1) as client:
        with pytest.raises(convkey.InvalidIdentifier) as exc:
            call(client)
    e = exc.value
    assert full_digits_in(f"{e}\n{e.hint or ''}\n{e!r}", {digits}) == []


def test_the_jid_grammar_masks_in_python_too():
    for raw in ("972541230501@example.org", "97254123050x@s.whatsapp.net", "8330000000050a@lid"):
        with pytest.raises(ValueError) as exc:
            parse_wa_id(raw)
        assert full_digits_in(str(exc.value), {re.match(r"\d+", raw).group()}) == []
