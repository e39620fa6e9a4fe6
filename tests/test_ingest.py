"""convkey ingest: Baileys and convkey-event replays, bad lines, idempotency, masking, workers,
aborts; and convkey.set_push_name, the SQL it calls for push names."""

import io
import json
import re

import psycopg
import pytest

import convkey
from conftest import DATA, table_checksums
from convkey.cli import main
from convkey.demo_events import generate
from convkey.ingest import Ingest, IngestAborted, _People, message_body, read_file, run_ingest

BAILEYS = DATA / "ingest_baileys.jsonl"
EVENTS = DATA / "ingest_events.jsonl"
B = 7  # the business the Baileys file is replayed into

# every phone and LID the two files use: none may be printed in full
RAW_DIGITS = ("972541112233", "191817161514", "972541234000", "181716151413", "972545556677", "972547778899",
              "551187654321", "5511987654321", "282828282828", "972542223344", "292929292929", "972543334455",
              "120363041234567890")


def _ingest(dsn: str, path, *args: str, capsys) -> tuple[int, str, str]:
    code = main(["ingest", str(path), "--dsn", dsn, *args])
    out, err = capsys.readouterr()
    return code, out, err


def _count(out: str, label: str, rest: str = r"\S+") -> str | None:
    """The figure after ``label`` in the text summary (or whether ``rest`` follows it)."""
    m = re.search(rf"^  {label}\s+({rest})$", out, re.MULTILINE)
    return m and m.group(1)


def _live(conn: psycopg.Connection, business: int) -> list[tuple]:
    return conn.execute(
        "SELECT canonical_key, phone_e164, lead_id, push_name, "
        "       (SELECT count(*) FROM convkey.whatsapp_message m WHERE m.business_id = c.business_id "
        "           AND m.conversation_id = c.id) "
        "  FROM convkey.whatsapp_conversation c WHERE business_id = %s AND merged_into_id IS NULL ORDER BY 1",
        (business,)).fetchall()


def _assert_masked(*texts: str) -> None:
    for text in texts:
        for raw in RAW_DIGITS:
            assert raw not in text, f"{raw} printed in full:\n{text}"


def test_baileys_file(db_dsn, db_conn, capsys):
    code, out, err = _ingest(db_dsn, BAILEYS, "--business-id", str(B), "--json", capsys=capsys)
    assert code == 0
    summary = json.loads(out)
    assert summary | {"seconds": 0} == {
        "lines_read": 14, "messages_inserted": 7, "duplicates": 1, "links_learned": 2, "leads_assigned": 0,
        "leads_merged": 0, "push_names_stored": 4, "skipped": {"group": 1, "protocol": 1, "status": 1},
        "bad_lines": 4, "bad_line_numbers": [9, 10, 11, 12], "seconds": 0, "aborted": False}
    # bad lines: invalid JSON, no key, a server the grammar refuses, a message id the database refuses
    assert re.search(r"line 9: invalid JSON", err)
    assert re.search(r"line 10: missing field key", err)
    assert re.search(r"line 11: .*unknown WhatsApp server: \*+2233@example\.org", err)
    assert re.search(r"line 12: 22001: ", err)
    assert "line 1:" not in err and "line 4:" not in err
    _assert_masked(out, err)

    assert _live(db_conn, B) == [
        # the LID-only thread got its phone from remoteJidAlt: one conversation, newest push name
        ("phone:7:+5511987654321", "+5511987654321", None, "João", 2),  # old and new Brazil spellings
        ("phone:7:+972541112233", "+972541112233", None, "Dana", 3),     # device suffix, @c.us, a retry
        ("phone:7:+972541234000", "+972541234000", None, "Noa L", 2),
    ]
    # the quoted reply's contextInfo.participant never became a customer; the group sender's pair
    # is remembered for when that person writes
    assert db_conn.execute("SELECT count(*) FROM convkey.identity WHERE business_id = %s AND value = %s",
                           (B, "+972547778899")).fetchone()[0] == 0
    pending = db_conn.execute(
        "SELECT kind, value FROM convkey.identity WHERE business_id = %s AND pending_person_id IS NOT NULL "
        "ORDER BY kind", (B,)).fetchall()
    assert pending == [("lid", "181716151413"), ("phone", "+972545556677")]
    bodies = db_conn.execute(
        "SELECT provider_message_id, direction, body, sent_at FROM convkey.whatsapp_message "
        "WHERE business_id = %s ORDER BY provider_message_id", (B,)).fetchall()
    assert [(m, d, b) for m, d, b, _ in bodies] == [
        ("IN-A1", "in", "hi"), ("IN-A2", "in", "as she said"), ("IN-B1", "in", "hello from a LID"),
        ("IN-B2", "in", "my phone is revealed"), ("IN-E1", "in", "olá"), ("OUT-A1", "out", "[imageMessage] our menu"),
        ("OUT-E1", "out", "Olá João!")]
    assert {m: int(t.timestamp()) for m, _, _, t in bodies}["OUT-A1"] == 1735725720  # a protobuf Long

    # re-running the file changes nothing: every message is a duplicate now
    before = table_checksums(db_conn)
    code, out, err = _ingest(db_dsn, BAILEYS, "--business-id", str(B), "--json", capsys=capsys)
    again = json.loads(out)
    assert code == 0 and (again["messages_inserted"], again["duplicates"], again["push_names_stored"]) == (0, 8, 0)
    assert again["bad_line_numbers"] == [9, 10, 11, 12]
    assert table_checksums(db_conn) == before


def test_convkey_events_file(db_dsn, db_conn, capsys):
    code, out, err = _ingest(db_dsn, EVENTS, "--format", "jsonl", capsys=capsys)
    assert code == 0
    assert [_count(out, label) for label in ("messages inserted", "links learned", "leads assigned",
                                             "leads merged", "push names stored")] == ["5", "2", "1", "1", "2"]
    assert _count(out, "bad lines", "6   lines 7, 9, 10, 11, 13, 14")
    assert re.search(r"line 7: P0002: ", err)          # an unknown conversation
    assert re.search(r"line 9: unknown event type", err)
    assert re.search(r"line 10: missing field id", err)
    assert re.search(r"line 11: 22023: ", err)         # a group is not a person: the database refuses
    assert re.search(r"line 13: .*NUL", err)           # psycopg refuses it before the server sees it
    assert re.search(r"line 14: field from_lead_id is out of range", err)
    _assert_masked(out, err)
    # a human phone, its LID and a lead (the CRM's duplicate lead merged into it): one conversation;
    # a LID revealed with its phone in the same message: another
    assert _live(db_conn, 1) == [
        ("lead:1:70", "+972542223344", 70, "Avi", 3),
        ("phone:1:+972543334455", "+972543334455", None, "Tamar", 1),
    ]
    assert _live(db_conn, 2) == [("phone:2:+972543334455", "+972543334455", None, None, 1)]
    sent = db_conn.execute("SELECT provider_message_id, sent_at FROM convkey.whatsapp_message WHERE business_id = 1 "
                           "AND provider_message_id IN ('e1', 'e3') ORDER BY 1").fetchall()
    assert [int(t.timestamp()) for _, t in sent] == [1735718400, 1735726200]  # +02:00 offset; no offset is UTC

    # re-running: no message, identity or merge changes. (assign_lead by wa_id goes through
    # get_or_create_conversation, which records the raw wa_id as the conversation's last seen one:
    # the survivor of merge_leads had none, so customer_wa_id is filled in once.)
    before, rows = table_checksums(db_conn), _live(db_conn, 1)
    code, out, _ = _ingest(db_dsn, EVENTS, "--json", capsys=capsys)
    assert code == 0 and json.loads(out)["messages_inserted"] == 0 and json.loads(out)["duplicates"] == 5
    after = table_checksums(db_conn)
    assert {k: v for k, v in after.items() if k != "whatsapp_conversation"} == \
        {k: v for k, v in before.items() if k != "whatsapp_conversation"}
    assert _live(db_conn, 1) == rows
    _ingest(db_dsn, EVENTS, "--json", capsys=capsys)
    assert table_checksums(db_conn) == after


def test_formats_refuse_the_other_kind_of_line(db_dsn, capsys):
    code, out, err = _ingest(db_dsn, EVENTS, "--format", "baileys", "--json", capsys=capsys)
    assert code == 0 and json.loads(out)["bad_lines"] == 14 and "a convkey event in a --format baileys file" in err
    code, out, err = _ingest(db_dsn, BAILEYS, "--format", "jsonl", "--json", capsys=capsys)
    assert json.loads(out)["bad_lines"] == 14 and "missing field type" in err


def test_workers_reach_the_same_conversations(db_dsn, db_conn, capsys):
    code, out, _ = _ingest(db_dsn, BAILEYS, "--business-id", str(B), "--workers", "3", "--json", capsys=capsys)
    summary = json.loads(out)
    assert code == 0 and (summary["messages_inserted"], summary["duplicates"], summary["bad_lines"]) == (7, 1, 4)
    assert [row[0] for row in _live(db_conn, B)] == [
        "phone:7:+5511987654321", "phone:7:+972541112233", "phone:7:+972541234000"]


def test_people_grouping_keeps_a_persons_events_on_one_worker():
    people = _People(4)
    lid, _ = people.place(("lid:1",))
    phone_key = next(k for k in (f"phone:+97250{i:07d}" for i in range(100)) if people.place((k,))[0] != lid)
    phone = people.place((phone_key,))[0]
    # the reveal joins the two groups: it goes to one of their workers after the other caught up
    target, wait = people.place(("lid:1", phone_key, "lead:7"))
    assert target == min(lid, phone) and wait == [max(lid, phone)]
    assert [people.place((k,)) for k in ("lid:1", phone_key, "lead:7")] == [(target, [])] * 3


def test_workers_keep_each_persons_order_on_the_demo_stream(db_dsn, db_conn):
    stream = generate(30, 11)  # LID-first people, leads, a person with two leads merged: order matters
    with convkey.Client(db_dsn, max_size=5) as client:
        summary = Ingest(client, business_id=5, workers=4).run(enumerate(stream.lines, 1))
    assert (summary.bad_lines, summary.messages_inserted) == (0, stream.counts["messages"])
    assert db_conn.execute("SELECT count(*) FROM convkey.whatsapp_conversation "
                           "WHERE business_id = 5 AND merged_into_id IS NULL").fetchone()[0] == 30


def test_json_array_file_and_text_summary(db_dsn, tmp_path, capsys):
    lines = [line for line in BAILEYS.read_text(encoding="utf-8").splitlines() if line != "{not json"]
    path = tmp_path / "array.json"
    path.write_text("[" + ",\n".join(lines) + "]", encoding="utf-8")
    items, total = read_file(str(path))
    assert total == 13
    code, out, err = _ingest(db_dsn, path, capsys=capsys)
    assert code == 0 and out.startswith("ingest: read 13 lines in ")
    assert _count(out, "messages inserted") == "7"
    assert _count(out, "skipped", "3   group 1, protocol 1, status 1")


def test_unreadable_file_exits_2(db_dsn, tmp_path, capsys):
    code, _, err = _ingest(db_dsn, tmp_path / "missing.jsonl", capsys=capsys)
    assert code == 2 and "cannot read" in err


def test_unreachable_database_exits_2(db_dsn, tmp_path):
    dsn = psycopg.conninfo.make_conninfo(db_dsn, dbname="convkey_no_such_database")
    err = io.StringIO()
    assert run_ingest(dsn, str(EVENTS), out=io.StringIO(), err=err) == 2
    assert err.getvalue().startswith("convkey ingest: cannot connect: OperationalError: ")


@pytest.mark.parametrize("workers", [1, 3])
def test_connection_lost_aborts_with_the_summary_so_far(db_dsn, pg_server, workers):
    lines = [json.dumps({"type": "message", "wa_id": "972541112233@s.whatsapp.net", "direction": "in", "id": f"m{i}"})
             for i in range(5)]
    err = io.StringIO()
    with convkey.Client(db_dsn, min_size=1, max_size=1) as client:
        ingest = Ingest(client)
        ingest.progress.stream = err
        first = ingest.run(enumerate(lines[:2], 1))
        assert first.messages_inserted == 2
        with pg_server.admin() as admin:  # the server drops the pool's connection
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                          (psycopg.conninfo.conninfo_to_dict(db_dsn)["dbname"],))
        with pytest.raises(IngestAborted) as exc:
            Ingest(client, workers=workers).run(enumerate(lines[2:], 3))
    assert str(exc.value).startswith("line 3: ") and exc.value.summary.aborted
    assert exc.value.summary.messages_inserted == 0 and 1 <= exc.value.summary.lines_read <= 3


def test_run_ingest_reports_an_abort_and_exits_2(fresh_db, tmp_path):
    # a database without the convkey schema: the first call fails with a SQLSTATE convkey does not raise
    path = tmp_path / "one.jsonl"
    path.write_text(EVENTS.read_text(encoding="utf-8").splitlines()[0] + "\n", encoding="utf-8")
    out, err = io.StringIO(), io.StringIO()
    assert run_ingest(fresh_db(), str(path), out=out, err=err) == 2
    assert 'stopped at line 1: InvalidSchemaName: schema "convkey" does not exist (' in err.getvalue()
    assert out.getvalue().startswith("ingest: aborted after 1 lines")


@pytest.mark.parametrize("message,body", [
    ({"conversation": "hi"}, "hi"),
    ({"extendedTextMessage": {"text": "t", "contextInfo": {"participant": "x"}}}, "t"),
    ({"messageContextInfo": {}, "imageMessage": {"caption": "look"}}, "[imageMessage] look"),
    ({"audioMessage": {"seconds": 3}}, "[audioMessage]"),
    ({"viewOnceMessageV2": {"message": {"imageMessage": {}}}}, "[imageMessage]"),
    ({"ephemeralMessage": {"message": {"extendedTextMessage": {"text": "e"}}}}, "e"),
    ({}, None), (None, None), ({"messageContextInfo": {}}, None),
])
def test_message_body(message, body):
    assert message_body(message)[0] == body


# --- convkey.set_push_name ----------------------------------------------------------------------
def _sqlstate(conn, sql, params) -> str:
    with pytest.raises(psycopg.Error) as exc:
        conn.execute(sql, params)
    return exc.value.sqlstate


def test_set_push_name(db_conn):
    conv = lambda wa: db_conn.execute(  # noqa: E731
        "SELECT conversation_id FROM convkey.get_or_create_conversation(1, %s)", (wa,)).fetchone()[0]
    name = lambda c: db_conn.execute(  # noqa: E731
        "SELECT push_name FROM convkey.whatsapp_conversation WHERE business_id = 1 AND id = %s", (c,)).fetchone()[0]
    a, b = conv("191817161514@lid"), conv("972541112233@s.whatsapp.net")
    db_conn.execute("SELECT convkey.set_push_name(1, %s, 'Dana')", (a,))
    assert name(a) == "Dana"
    before = table_checksums(db_conn)
    db_conn.execute("SELECT convkey.set_push_name(1, %s, 'Dana')", (a,))   # the same name writes nothing
    db_conn.execute("SELECT convkey.set_push_name(1, %s, NULL)", (a,))     # nor does no name
    db_conn.execute("SELECT convkey.set_push_name(1, %s, '  ')", (a,))     # nor a blank one
    assert table_checksums(db_conn) == before
    db_conn.execute("SELECT convkey.merge_conversations(1, %s, %s)", (b, a))
    db_conn.execute("SELECT convkey.set_push_name(1, %s, 'Dana L')", (a,))  # a merged-away id: the survivor
    assert name(b) == "Dana L"
    assert _sqlstate(db_conn, "SELECT convkey.set_push_name(1, %s, %s)", (b, "x" * 257)) == "22001"
    assert _sqlstate(db_conn, "SELECT convkey.set_push_name(1, 987654, 'x')", None) == "P0002"
    assert _sqlstate(db_conn, "SELECT convkey.set_push_name(2, %s, 'x')", (b,)) == "P0002"
    assert _sqlstate(db_conn, "SELECT convkey.set_push_name(1, NULL, 'x')", None) == "22023"
    assert _sqlstate(db_conn, "SELECT convkey.set_push_name(0, %s, 'x')", (b,)) == "22023"
