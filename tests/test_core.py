"""get-or-create, the two merge rules, activity, record_message, sessions and the update guard."""

import datetime as dt

import psycopg
import pytest

from conftest import table_checksums

B = 1
PHONE = "+972501234567"
PHONE_JID = "972501234567@s.whatsapp.net"
PHONE2 = "+972509999999"
PHONE2_JID = "972509999999@s.whatsapp.net"
LID = "82399031480511@lid"
T0 = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.timezone.utc)


def goc(conn, wa_id, lead=None, phone=None, business=B):
    return conn.execute(
        "SELECT conversation_id, canonical_key, created FROM convkey.get_or_create_conversation(%s, %s, "
        "p_lead_id => %s, p_phone_e164 => %s)", (business, wa_id, lead, phone)).fetchone()


def msg(conn, wa_id, pmid, direction="in", at=T0, lead=None, phone=None, body="hi", business=B):
    return conn.execute(
        "SELECT message_id, conversation_id, inserted FROM convkey.record_message(%s, %s, %s, %s, %s, "
        "p_lead_id => %s, p_phone_e164 => %s, p_sent_at => %s)",
        (business, wa_id, direction, pmid, body, lead, phone, at)).fetchone()


def conv(conn, cid):
    return conn.execute(
        "SELECT canonical_key, lead_id, phone_e164, merged_into_id, is_open, last_message_at, "
        "last_customer_message_at, session_started_at, summary_created FROM convkey.whatsapp_conversation "
        "WHERE business_id = %s AND id = %s", (B, cid)).fetchone()


def live_count(conn, business=B):
    return conn.execute("SELECT count(*) FROM convkey.whatsapp_conversation WHERE business_id = %s "
                        "AND merged_into_id IS NULL", (business,)).fetchone()[0]


def identities(conn, cid):
    return set(conn.execute("SELECT kind, value FROM convkey.identity WHERE business_id = %s AND "
                            "conversation_id = %s", (B, cid)).fetchall())


def sqlstate_of(conn, sql, params=()):
    with pytest.raises(psycopg.Error) as exc:
        conn.execute(sql, params)
    return exc.value.sqlstate


# --- get-or-create ----------------------------------------------------------------------------
def test_creates_once_and_finds_every_phone_form(db_conn):
    cid, key, created = goc(db_conn, PHONE_JID)
    assert (key, created) == ("phone:1:+972501234567", True)
    for form in ("972501234567:12@s.whatsapp.net", "972501234567@c.us", "972501234567.0:3@s.whatsapp.net",
                 "+972501234567", "972501234567", " 972501234567@S.WHATSAPP.NET "):
        assert goc(db_conn, form) == (cid, key, False), form
    assert goc(db_conn, None, phone=PHONE) == (cid, key, False)
    assert live_count(db_conn) == 1


def test_customer_wa_id_is_last_seen(db_conn):
    cid, _, _ = goc(db_conn, PHONE_JID)
    goc(db_conn, "972501234567:7@s.whatsapp.net")
    assert db_conn.execute("SELECT customer_wa_id FROM convkey.whatsapp_conversation WHERE id = %s",
                           (cid,)).fetchone()[0] == "972501234567:7@s.whatsapp.net"


def test_businesses_are_separate(db_conn):
    a = goc(db_conn, PHONE_JID, business=1)
    b = goc(db_conn, PHONE_JID, business=2)
    assert a[0] != b[0] and b[1] == "phone:2:+972501234567" and b[2]


def test_lead_rekeys_the_same_row(db_conn):
    cid, _, _ = goc(db_conn, PHONE_JID)
    assert goc(db_conn, PHONE_JID, lead=123) == (cid, "lead:1:123", False)
    assert conv(db_conn, cid)[:3] == ("lead:1:123", 123, PHONE)
    assert goc(db_conn, None, lead=123) == (cid, "lead:1:123", False)
    assert live_count(db_conn) == 1


def test_lid_then_phone_merge_into_most_recent(db_conn):
    a = msg(db_conn, LID, "m1", at=T0)[1]
    b = msg(db_conn, PHONE_JID, "m2", at=T0 + dt.timedelta(minutes=1))[1]
    assert a != b
    mid, survivor, inserted = msg(db_conn, LID, "m3", phone=PHONE, at=T0 + dt.timedelta(minutes=2))
    assert survivor == b and inserted
    assert conv(db_conn, a)[0] is None and conv(db_conn, a)[3] == b
    assert conv(db_conn, b)[0] == "phone:1:+972501234567"
    assert identities(db_conn, b) == {("phone", PHONE), ("lid", "82399031480511")}
    rows = db_conn.execute("SELECT provider_message_id FROM convkey.whatsapp_message WHERE conversation_id = %s "
                           "ORDER BY sent_at", (b,)).fetchall()
    assert [r[0] for r in rows] == ["m1", "m2", "m3"]
    audit = db_conn.execute("SELECT primary_id, duplicate_id, reason, moved_message_ids, moved_identities "
                            "FROM convkey.conversation_merge").fetchall()
    assert len(audit) == 1
    assert audit[0][:3] == (b, a, "auto") and len(audit[0][3]) == 1
    assert audit[0][4] == [{"kind": "lid", "value": "82399031480511"}]
    # the tombstone resolves to the survivor
    assert db_conn.execute("SELECT convkey.resolve_conversation_id(1, %s)", (a,)).fetchone()[0] == b


def test_merge_primary_tie_goes_to_lowest_id(db_conn):
    a = goc(db_conn, LID)[0]
    b = goc(db_conn, PHONE_JID)[0]
    assert goc(db_conn, LID, phone=PHONE)[0] == min(a, b)


def test_merge_unions_fields(db_conn):
    a = msg(db_conn, LID, "m1", at=T0 + dt.timedelta(hours=2))[1]
    db_conn.execute("UPDATE convkey.whatsapp_conversation SET push_name = 'Dana' WHERE id = %s", (a,))
    b = msg(db_conn, PHONE_JID, "m2", direction="out", at=T0)[1]
    db_conn.execute("SELECT convkey.close_session(1, %s)", (b,))
    survivor = goc(db_conn, LID, phone=PHONE)[0]
    assert survivor == a  # the most recent
    row = db_conn.execute("SELECT push_name, phone_e164, canonical_key, is_open, last_message_at, "
                          "last_customer_message_at FROM convkey.whatsapp_conversation WHERE id = %s",
                          (a,)).fetchone()
    assert row == ("Dana", PHONE, "phone:1:+972501234567", True, T0 + dt.timedelta(hours=2),
                   T0 + dt.timedelta(hours=2))


# --- rule (a): different leads never merge ----------------------------------------------------
def test_lead_call_with_another_leads_phone_gets_its_own_conversation(db_conn):
    a = goc(db_conn, PHONE_JID, lead=1)[0]
    b, key, created = goc(db_conn, PHONE_JID, lead=2)
    assert b != a and key == "lead:1:2" and created
    assert ("phone", PHONE) in identities(db_conn, a)  # the phone stays where it is
    assert ("phone", PHONE) not in identities(db_conn, b)
    goc(db_conn, PHONE_JID, lead=2)
    row = db_conn.execute("SELECT kind, value, owner_conversation_id, other_conversation_id, rule, seen_count "
                          "FROM convkey.identity_conflict").fetchall()
    assert row == [("phone", PHONE, a, b, "different_lead", 2)]
    assert live_count(db_conn) == 2


def test_call_without_lead_goes_to_strongest_identity_owner(db_conn):
    a = goc(db_conn, PHONE_JID, lead=1)[0]
    b = goc(db_conn, LID, lead=2)[0]
    cid, key, created = goc(db_conn, LID, phone=PHONE)
    assert (cid, key, created) == (a, "lead:1:1", False)
    assert ("lid", "82399031480511") in identities(db_conn, b)
    assert live_count(db_conn) == 2


# --- rule (b): two phones never merge through a LID -------------------------------------------
def test_lid_moves_to_the_newest_phone(db_conn):
    a = msg(db_conn, LID, "m1", phone=PHONE)[1]
    b = msg(db_conn, PHONE2_JID, "m2")[1]
    assert a != b
    mid, cid, _ = msg(db_conn, LID, "m3", phone=PHONE2)
    assert cid == b
    assert identities(db_conn, a) == {("phone", PHONE)}
    assert identities(db_conn, b) == {("phone", PHONE2), ("lid", "82399031480511")}
    # past messages stay where they were
    assert db_conn.execute("SELECT conversation_id FROM convkey.whatsapp_message WHERE provider_message_id = 'm1'"
                           ).fetchone()[0] == a
    assert conv(db_conn, a)[3] is None and conv(db_conn, b)[3] is None  # no merge
    assert db_conn.execute("SELECT rule, other_conversation_id, owner_conversation_id FROM convkey.identity_conflict"
                           ).fetchall() == [("moved_to_other_phone", a, b)]
    # a later LID-only message follows the LID to its new person
    assert msg(db_conn, LID, "m4")[1] == b


# --- bad input: 22xxx and nothing written -----------------------------------------------------
@pytest.mark.parametrize("wa_id,lead,phone,state", [
    ("120363000000000000@g.us", None, None, "22023"),
    ("status@broadcast", None, None, "22023"),
    ("123@broadcast", None, None, "22023"),
    ("x123@newsletter", None, None, "22023"),
    ("1@bot", None, None, "22023"),
    ("190997547974788@s.whatsapp.net", None, None, "22023"),
    ("972501234567@example.org", None, None, "22023"),
    ("", None, None, "22023"),
    (None, None, None, "22023"),
    ("0501234567", None, None, "22023"),
    (PHONE_JID, None, PHONE2, "22023"),
    (PHONE_JID, 0, None, "22023"),
    (None, None, "050-123-4567", "22023"),
    ("9" * 250 + "@s.whatsapp.net", None, None, "22001"),
])
def test_get_or_create_refuses_bad_input(db_conn, wa_id, lead, phone, state):
    before = table_checksums(db_conn)
    assert sqlstate_of(db_conn, "SELECT * FROM convkey.get_or_create_conversation(1, %s, 'baileys', %s, %s)",
                       (wa_id, lead, phone)) == state
    assert table_checksums(db_conn) == before


@pytest.mark.parametrize("business", [None, 0, -3])
def test_bad_business_id(db_conn, business):
    assert sqlstate_of(db_conn, "SELECT * FROM convkey.get_or_create_conversation(%s::bigint, %s)",
                       (business, PHONE_JID)) == "22023"


@pytest.mark.parametrize("field,value,state", [
    ("pmid", "x" * 257, "22001"), ("pmid", None, "22023"), ("pmid", "  ", "22023"),
    ("body", "é" * 40000, "22001"), ("direction", "sideways", "22023"), ("direction", None, "22023"),
    ("source", "robot", "22023"), ("provider", "", "22023"), ("provider", "p" * 65, "22023"),
    ("provider", "bai leys", "22023"), ("sent_at", None, "22023"), ("sent_at", "infinity", "22023"),
])
def test_record_message_refuses_bad_input(db_conn, field, value, state):
    args = {"pmid": "m1", "body": "hi", "direction": "in", "source": None, "provider": "baileys",
            "sent_at": T0}
    args[field] = value
    before = table_checksums(db_conn)
    assert sqlstate_of(db_conn, "SELECT * FROM convkey.record_message(1, %s, %(direction)s, %(pmid)s, %(body)s, "
                       "%(provider)s, p_sent_at => %(sent_at)s::timestamptz, p_source => %(source)s)".replace(
                           "%s", "%(wa)s"), {**args, "wa": PHONE_JID}) == state
    assert table_checksums(db_conn) == before


# --- activity ---------------------------------------------------------------------------------
def test_activity_is_monotonic_and_reopens_only_on_newer(db_conn):
    q = "SELECT convkey.update_session_activity(1, %s, %s, p_at => %s)"
    cid = db_conn.execute(q, (PHONE_JID, "in", T0)).fetchone()[0]
    assert conv(db_conn, cid)[5:7] == (T0, T0)
    db_conn.execute(q, (PHONE_JID, "outbound", T0 + dt.timedelta(minutes=5)))
    assert conv(db_conn, cid)[5:7] == (T0 + dt.timedelta(minutes=5), T0)
    db_conn.execute(q, (PHONE_JID, "inbound", T0 - dt.timedelta(minutes=5)))  # late delivery
    assert conv(db_conn, cid)[5:7] == (T0 + dt.timedelta(minutes=5), T0)
    db_conn.execute("SELECT convkey.close_session(1, %s, 'done')", (cid,))
    assert conv(db_conn, cid)[4] is False and conv(db_conn, cid)[8] is True
    db_conn.execute(q, (PHONE_JID, "in", T0 + dt.timedelta(minutes=1)))  # older than last_message_at
    assert conv(db_conn, cid)[4] is False
    later = T0 + dt.timedelta(minutes=9)
    db_conn.execute(q, (PHONE_JID, "out", later))
    assert conv(db_conn, cid)[4:] == (True, later, T0 + dt.timedelta(minutes=1), later, False)
    assert sqlstate_of(db_conn, q, (PHONE_JID, "sideways", T0)) == "22023"


def test_record_message_retry_changes_nothing(db_conn):
    first = msg(db_conn, PHONE_JID, "m1", at=T0)
    before = table_checksums(db_conn)
    again = msg(db_conn, "972501234567:3@s.whatsapp.net", "m1", at=T0 + dt.timedelta(hours=1))
    assert again == (first[0], first[1], False)
    assert table_checksums(db_conn) == before


def test_late_message_is_stored_but_does_not_rewind(db_conn):
    msg(db_conn, PHONE_JID, "m2", at=T0)
    cid = msg(db_conn, PHONE_JID, "m1", at=T0 - dt.timedelta(hours=1))[1]
    assert conv(db_conn, cid)[5:7] == (T0, T0)
    rows = db_conn.execute("SELECT provider_message_id, source, direction FROM convkey.whatsapp_message "
                           "WHERE conversation_id = %s ORDER BY sent_at", (cid,)).fetchall()
    assert rows == [("m1", "customer", "in"), ("m2", "customer", "in")]


def test_provider_and_label_of_64_characters_are_accepted(db_conn):
    """The length limits are checked apart from the patterns (unbounded repetitions are cheaper):
    64 characters pass, 65 fail (test_record_message_refuses_bad_input, test_label_of_65...)."""
    assert db_conn.execute("SELECT inserted FROM convkey.record_message(1, %s, 'in', 'm1', p_provider => %s)",
                           (PHONE_JID, "p" * 64)).fetchone()[0]
    lid = "82399031480511@lid"
    assert db_conn.execute("SELECT convkey.link_identity(1, %s, %s, %s) IS NOT NULL",
                           (lid, PHONE_JID, "a" * 64)).fetchone()[0]


def test_label_of_65_characters_is_refused(db_conn):
    before = table_checksums(db_conn)
    assert sqlstate_of(db_conn, "SELECT convkey.link_identity(1, %s, %s, %s)",
                       ("82399031480511@lid", PHONE_JID, "a" * 65)) == "22023"
    assert table_checksums(db_conn) == before


def test_same_provider_id_other_provider_is_another_message(db_conn):
    a = db_conn.execute("SELECT inserted FROM convkey.record_message(1, %s, 'in', 'm1', p_provider => 'cloud')",
                        (PHONE_JID,)).fetchone()[0]
    b = msg(db_conn, PHONE_JID, "m1")[2]
    assert a and b


def test_close_and_idle_sessions(db_conn):
    old = T0 - dt.timedelta(days=1)
    a = msg(db_conn, PHONE_JID, "m1", at=old)[1]
    b = msg(db_conn, LID, "m2", at=dt.datetime.now(dt.timezone.utc))[1]
    idle = [r[0] for r in db_conn.execute("SELECT * FROM convkey.idle_sessions(1, '5 minutes')")]
    assert idle == [a]
    db_conn.execute("SELECT convkey.close_session(1, %s, 'summary text')", (a,))
    assert db_conn.execute("SELECT summary FROM convkey.whatsapp_conversation WHERE id = %s", (a,)).fetchone()[0] \
        == "summary text"
    assert [r[0] for r in db_conn.execute("SELECT * FROM convkey.idle_sessions(1)")] == []
    assert sqlstate_of(db_conn, "SELECT * FROM convkey.idle_sessions(1, '-1 minute')") == "22023"
    assert sqlstate_of(db_conn, "SELECT convkey.close_session(2, %s)", (b,)) == "P0002"
    assert sqlstate_of(db_conn, "SELECT convkey.close_session(1, 999999)") == "P0002"
    assert sqlstate_of(db_conn, "SELECT convkey.close_session(1, NULL)") == "22023"


# --- direct writes ----------------------------------------------------------------------------
def test_direct_update_of_lead_or_phone_is_refused(db_conn):
    cid = goc(db_conn, PHONE_JID)[0]
    before = table_checksums(db_conn)
    for sql in ("UPDATE convkey.whatsapp_conversation SET lead_id = 5 WHERE id = %s",
                "UPDATE convkey.whatsapp_conversation SET phone_e164 = '+972509999999' WHERE id = %s",
                "UPDATE convkey.whatsapp_conversation SET canonical_key = 'phone:1:+1' WHERE id = %s",
                "UPDATE convkey.whatsapp_conversation SET canonical_key = NULL WHERE id = %s"):
        assert sqlstate_of(db_conn, sql, (cid,)) == "22023"
    assert table_checksums(db_conn) == before
    # other columns are the application's
    db_conn.execute("UPDATE convkey.whatsapp_conversation SET push_name = 'Dana' WHERE id = %s", (cid,))


def test_a_key_becomes_null_only_on_a_row_that_owns_no_identity(db_conn):
    """The guard lets a row without a key (a legacy row, a side of an unmerge left with nothing)
    keep any legacy lead and phone, and a key go NULL, only while the row owns no identity."""
    cid = goc(db_conn, PHONE_JID)[0]
    db_conn.execute("INSERT INTO convkey.whatsapp_conversation (business_id, customer_wa_id) VALUES (1, %s)",
                    (PHONE_JID,))
    legacy = db_conn.execute("SELECT id FROM convkey.whatsapp_conversation WHERE canonical_key IS NULL").fetchone()[0]
    before = table_checksums(db_conn)
    for sql in ("UPDATE convkey.whatsapp_conversation SET canonical_key = NULL, phone_e164 = NULL WHERE id = %s",
                "UPDATE convkey.whatsapp_conversation SET canonical_key = NULL, lead_id = 5 WHERE id = %s"):
        assert sqlstate_of(db_conn, sql, (cid,)) == "22023"
    assert table_checksums(db_conn) == before
    db_conn.execute("UPDATE convkey.whatsapp_conversation SET phone_e164 = '+972501234567', lead_id = 5 "
                    "WHERE id = %s", (legacy,))
    # a row without a key that owns an identity (only a hand-made state) is refused too
    db_conn.execute("UPDATE convkey.identity SET conversation_id = %s", (legacy,))
    assert sqlstate_of(db_conn, "UPDATE convkey.whatsapp_conversation SET lead_id = 6 WHERE id = %s",
                       (legacy,)) == "22023"
    db_conn.execute("UPDATE convkey.identity SET conversation_id = %s", (cid,))
    # and once the keyed row owns nothing, its key may go: it is an unresolved row then
    db_conn.execute("DELETE FROM convkey.identity")
    db_conn.execute("UPDATE convkey.whatsapp_conversation SET canonical_key = NULL WHERE id = %s", (cid,))
    assert conv(db_conn, cid)[:3] == (None, None, "+972501234567")


def test_legacy_rows_insert_freely_and_stay_unresolved(db_conn):
    for _ in range(2):
        db_conn.execute("INSERT INTO convkey.whatsapp_conversation (business_id, customer_wa_id) VALUES (1, %s)",
                        (PHONE_JID,))
    db_conn.execute("UPDATE convkey.whatsapp_conversation SET lead_id = 9 WHERE canonical_key IS NULL")
    rows = db_conn.execute("SELECT canonical_key, lead_id FROM convkey.whatsapp_conversation").fetchall()
    assert rows == [(None, 9), (None, 9)]
    assert db_conn.execute("SELECT count(*) FROM convkey.identity").fetchone()[0] == 0
    # legacy directions are stored as in/out
    cid = db_conn.execute("SELECT min(id) FROM convkey.whatsapp_conversation").fetchone()[0]
    db_conn.execute("INSERT INTO convkey.whatsapp_message (business_id, conversation_id, direction) "
                    "VALUES (1, %s, 'INBOUND'), (1, %s, 'outbound')", (cid, cid))
    assert [r[0] for r in db_conn.execute("SELECT direction FROM convkey.whatsapp_message ORDER BY id")] == ["in", "out"]
    assert sqlstate_of(db_conn, "INSERT INTO convkey.whatsapp_message (business_id, conversation_id, direction) "
                       "VALUES (1, %s, 'up')", (cid,)) == "22023"


def test_lid_paired_with_a_new_phone_moves_to_that_phone(db_conn):
    a = msg(db_conn, LID, "m1", phone=PHONE)[1]
    b = msg(db_conn, LID, "m2", phone=PHONE2)[1]
    assert b != a
    assert identities(db_conn, a) == {("phone", PHONE)}
    assert identities(db_conn, b) == {("phone", PHONE2), ("lid", "82399031480511")}
    assert conv(db_conn, b)[0] == "phone:1:+972509999999"
