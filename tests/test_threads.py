"""convkey.conversation_thread (the inbox view) and convkey.mark_read."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from conftest import table_checksums
from test_core import LID, PHONE, PHONE2, PHONE2_JID, PHONE_JID, goc, msg, sqlstate_of
from test_identity_graph import LID2, assign, link

import convkey

COLUMNS = ["id", "business_id", "canonical_key", "display_name", "display_phone", "lead_id", "is_open",
           "last_message_at", "message_count", "unread_count", "last_message_preview", "last_message_direction"]
LIST = ("SELECT * FROM convkey.conversation_thread WHERE business_id = %s "
        "ORDER BY last_message_at DESC NULLS LAST LIMIT 50")


def threads(conn, business=1):
    cur = conn.execute(LIST, (business,))
    return [dict(zip([c.name for c in cur.description], row)) for row in cur.fetchall()]


def by_key(conn, business=1):
    return {t["canonical_key"]: t for t in threads(conn, business)}


def now(conn):
    return conn.execute("SELECT now()").fetchone()[0]


@pytest.fixture
def inbox(db_conn):
    """Four people in business 1 and one in business 2; returns the conversation ids and times."""
    base = now(db_conn) - dt.timedelta(hours=1)
    lid_conv = msg(db_conn, LID, "p1-1", at=base, body="hello from the LID")[1]
    phone_conv = msg(db_conn, PHONE_JID, "p1-2", direction="out", at=base + dt.timedelta(minutes=1),
                     body="bot reply")[1]
    survivor = link(db_conn, LID, PHONE_JID, "lid-mapping")
    tombstone = phone_conv if survivor == lid_conv else lid_conv
    assign(db_conn, survivor, 501, "אברהם אלפנדרי")
    db_conn.execute("UPDATE convkey.whatsapp_conversation SET push_name = 'Abraham' WHERE id = %s", (survivor,))
    msg(db_conn, PHONE_JID, "p1-3", at=base + dt.timedelta(minutes=2), body="x" * 100 + "y" * 200)
    lid_only = msg(db_conn, LID2, "p2-1", at=base + dt.timedelta(minutes=3), body="who am I")[1]
    pushed = msg(db_conn, PHONE2_JID, "p3-1", direction="out", at=base + dt.timedelta(minutes=4), body=None)[1]
    db_conn.execute("UPDATE convkey.whatsapp_conversation SET push_name = ' Abraham Contact ' WHERE id = %s",
                    (pushed,))
    silent = goc(db_conn, "972508888888@s.whatsapp.net")[0]
    other_business = msg(db_conn, PHONE_JID, "b2-1", at=base, business=2)[1]
    return {"survivor": survivor, "tombstone": tombstone, "lid_only": lid_only, "pushed": pushed, "silent": silent,
            "other_business": other_business, "base": base}


def test_columns_are_exactly_the_contract(db_conn):
    cur = db_conn.execute("SELECT * FROM convkey.conversation_thread LIMIT 0")
    assert [c.name for c in cur.description] == COLUMNS


def test_rows_after_a_scenario(db_conn, inbox):
    rows = threads(db_conn)
    assert [r["id"] for r in rows] == [inbox["pushed"], inbox["lid_only"], inbox["survivor"], inbox["silent"]]
    assert inbox["tombstone"] not in [r["id"] for r in rows]
    person = rows[2]
    assert person == {
        "id": inbox["survivor"], "business_id": 1, "canonical_key": "lead:1:501", "display_name": "אברהם אלפנדרי",
        "display_phone": PHONE, "lead_id": 501, "is_open": True,
        "last_message_at": inbox["base"] + dt.timedelta(minutes=2), "message_count": 3, "unread_count": 2,
        "last_message_preview": "x" * 100 + "y" * 20, "last_message_direction": "in",
    }
    lid_only = rows[1]
    assert lid_only["canonical_key"] == "lid:1:82399031489999"
    assert (lid_only["display_name"], lid_only["display_phone"]) == ("ללא שם", None)  # the LID never shows
    assert (lid_only["message_count"], lid_only["unread_count"], lid_only["last_message_preview"]) == (1, 1, "who am I")
    pushed = rows[0]
    assert (pushed["display_name"], pushed["display_phone"]) == ("Abraham Contact", PHONE2)
    assert (pushed["unread_count"], pushed["last_message_preview"], pushed["last_message_direction"]) == (0, None, "out")
    silent = rows[3]
    assert (silent["display_name"], silent["display_phone"], silent["last_message_at"]) == (
        "+972508888888", "+972508888888", None)
    assert (silent["message_count"], silent["unread_count"], silent["last_message_preview"],
            silent["last_message_direction"]) == (0, 0, None, None)
    assert [r["id"] for r in threads(db_conn, business=2)] == [inbox["other_business"]]


def test_display_name_falls_back_to_the_raw_phone_jid(db_conn):
    # an unresolved legacy row: no key, no phone, only the raw identifier it arrived with
    db_conn.execute("INSERT INTO convkey.whatsapp_conversation (business_id, customer_wa_id) "
                    "VALUES (1, '972525951893:7@s.whatsapp.net'), (1, '82399031480511@lid')")
    assert sorted((t["display_name"], t["display_phone"]) for t in threads(db_conn)) == [
        ("+972525951893", None), ("ללא שם", None)]


def test_unread_count_after_mark_read(db_conn, inbox):
    db_conn.execute("SELECT convkey.mark_read(1, %s)", (inbox["tombstone"],))  # follows the merge
    assert by_key(db_conn)["lead:1:501"]["unread_count"] == 0
    read_at = db_conn.execute("SELECT last_read_at FROM convkey.whatsapp_conversation WHERE id = %s",
                              (inbox["survivor"],)).fetchone()[0]
    assert read_at is not None
    later = read_at + dt.timedelta(minutes=1)
    msg(db_conn, PHONE_JID, "p1-4", at=later, body="are you there?")
    msg(db_conn, PHONE_JID, "p1-5", direction="out", at=later + dt.timedelta(seconds=1), body="yes")
    msg(db_conn, LID, "p1-6", at=read_at - dt.timedelta(minutes=5), body="late delivery of an old message")
    person = by_key(db_conn)["lead:1:501"]
    assert (person["message_count"], person["unread_count"]) == (6, 1)
    assert (person["last_message_preview"], person["last_message_direction"]) == ("yes", "out")
    assert by_key(db_conn)["lid:1:82399031489999"]["unread_count"] == 1  # other threads untouched


def test_unmerge_brings_both_threads_back(db_conn, inbox):
    merge_id = db_conn.execute("SELECT id FROM convkey.conversation_merge WHERE reason = 'auto'").fetchone()[0]
    db_conn.execute("SELECT convkey.unmerge(1, %s)", (merge_id,))
    ids = [r["id"] for r in threads(db_conn)]
    assert inbox["tombstone"] in ids and inbox["survivor"] in ids and len(ids) == 5


@pytest.mark.parametrize("business,conversation,state", [
    (0, "survivor", "22023"), (None, "survivor", "22023"), (-1, "survivor", "22023"),
    (1, None, "22023"), (1, 0, "22023"), (1, -5, "22023"),
    (1, 999999, "P0002"), (2, "survivor", "P0002"),
])
def test_mark_read_bad_input_writes_nothing(db_conn, inbox, business, conversation, state):
    cid = inbox[conversation] if isinstance(conversation, str) else conversation
    before = table_checksums(db_conn)
    assert sqlstate_of(db_conn, "SELECT convkey.mark_read(%s, %s)", (business, cid)) == state
    assert table_checksums(db_conn) == before


def test_client_lists_threads_and_marks_read(db_dsn, db_conn, inbox):
    with convkey.Client(db_dsn, max_size=1) as client:
        rows = client.conversation_threads(1, limit=2)
        assert [r["id"] for r in rows] == [inbox["pushed"], inbox["lid_only"]]
        client.mark_read(1, inbox["lid_only"])
        assert client.conversation_threads(1)[1]["unread_count"] == 0
        with pytest.raises(convkey.NotFound):
            client.mark_read(1, 999999)


def plan_nodes(plan: dict):
    yield plan
    for child in plan.get("Plans", []):
        yield from plan_nodes(child)


@pytest.mark.slow
def test_listing_a_business_is_index_driven_at_a_million_conversations(db_conn):
    # Bulk load as a DBA would: drop the secondary indexes, insert, rebuild them from their own
    # definitions (much faster than a million index insertions), then ANALYZE.
    with db_conn.transaction():
        defs = [r[0] for r in db_conn.execute(
            "SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i WHERE i.indrelid = 'convkey.whatsapp_conversation'"
            "::regclass AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)")]
        assert any("ix_whatsapp_conversation_recent" in d for d in defs)
        for name in [d.split()[2] for d in defs]:
            db_conn.execute(f"DROP INDEX convkey.{name}")
        db_conn.execute(
            "INSERT INTO convkey.whatsapp_conversation (business_id, canonical_key, phone_e164, last_message_at) "
            "SELECT b, 'phone:' || b || ':+9725' || lpad(i::text, 8, '0'), '+9725' || lpad(i::text, 8, '0'), "
            "       timestamptz '2026-01-01' + i * interval '1 second' "
            "  FROM generate_series(1, 100) b, generate_series(b, 1000000, 100) i")
        for d in defs:
            db_conn.execute(d)
    db_conn.execute("ANALYZE convkey.whatsapp_conversation")
    assert db_conn.execute("SELECT count(*) FROM convkey.whatsapp_conversation").fetchone()[0] == 1_000_000

    plan = db_conn.execute("EXPLAIN (FORMAT JSON) " + LIST, (7,)).fetchone()[0][0]["Plan"]
    nodes = list(plan_nodes(plan))
    shown = json.dumps(plan, indent=1)
    assert any(n["Node Type"] == "Index Scan" and n.get("Index Name") == "ix_whatsapp_conversation_recent"
               for n in nodes), shown
    assert not any(n["Node Type"] == "Seq Scan" and n["Relation Name"] == "whatsapp_conversation"
                   for n in nodes), shown
    # the order comes from the index: no sort above the conversations (the empty message table's
    # lateral subqueries may plan anything)
    assert not any(n["Node Type"] in ("Sort", "Incremental Sort")
                   and "whatsapp_conversation" in {m.get("Relation Name") for m in plan_nodes(n)}
                   for n in nodes), shown
    rows = threads(db_conn, business=7)
    assert len(rows) == 50 and rows[0]["last_message_at"] > rows[-1]["last_message_at"]
