"""Links, leads, merges with audit, unmerge with separations, and business isolation."""

import datetime as dt
import random
import threading

import psycopg
import pytest

from conftest import table_checksums
from test_core import LID, PHONE, PHONE2, PHONE2_JID, PHONE_JID, T0, goc, identities, live_count, msg, sqlstate_of

LID2 = "82399031489999@lid"
PHONE3 = "+972508888888"


def link(conn, a, b, source="message", business=1):
    return conn.execute("SELECT convkey.link_identity(%s, %s, %s, %s)", (business, a, b, source)).fetchone()[0]


def assign(conn, cid, lead, name=None, business=1):
    return conn.execute("SELECT convkey.assign_lead(%s, %s, %s, %s)", (business, cid, lead, name)).fetchone()[0]


def key_of(conn, cid):
    return conn.execute("SELECT canonical_key FROM convkey.whatsapp_conversation WHERE id = %s", (cid,)).fetchone()[0]


def messages_of(conn, cid):
    return [r[0] for r in conn.execute(
        "SELECT provider_message_id FROM convkey.whatsapp_message WHERE conversation_id = %s ORDER BY sent_at, id",
        (cid,))]


def test_lid_thread_joins_phone_thread_when_link_arrives(db_conn):
    a = msg(db_conn, LID, "m1", at=T0)[1]
    b = msg(db_conn, PHONE_JID, "m2", at=T0 + dt.timedelta(minutes=1), direction="out")[1]
    msg(db_conn, LID, "m3", at=T0 + dt.timedelta(minutes=2))
    survivor = link(db_conn, LID, PHONE_JID, "lid-mapping")
    assert survivor == a  # the most recent (m3)
    assert live_count(db_conn) == 1
    assert messages_of(db_conn, survivor) == ["m1", "m2", "m3"]
    assert key_of(db_conn, survivor) == "phone:1:+972501234567"
    assert key_of(db_conn, b) is None
    assert link(db_conn, PHONE_JID, LID) == survivor  # again: nothing to do


def test_link_before_first_message_gives_one_conversation_from_the_start(db_conn):
    assert link(db_conn, LID, PHONE, "history") is None
    before = db_conn.execute("SELECT count(*) FROM convkey.whatsapp_conversation").fetchone()[0]
    assert before == 0
    cid, key, created = goc(db_conn, LID)
    assert (key, created) == ("phone:1:+972501234567", True)
    assert goc(db_conn, PHONE_JID)[:2] == (cid, key)
    assert identities(db_conn, cid) == {("phone", PHONE), ("lid", "82399031480511")}
    assert live_count(db_conn) == 1
    assert db_conn.execute("SELECT count(*) FROM convkey.conversation_merge").fetchone()[0] == 0


def test_pending_lid_repointed_to_newest_phone(db_conn):
    link(db_conn, LID, PHONE)
    link(db_conn, LID, PHONE2)  # newest wins
    cid, key, _ = goc(db_conn, LID)
    assert key == "phone:1:+972509999999"
    other, key2, created = goc(db_conn, PHONE_JID)
    assert other != cid and created and key2 == "phone:1:+972501234567"


def test_lid_repointed_between_conversations(db_conn):
    a = msg(db_conn, LID, "m1", phone=PHONE)[1]
    b = msg(db_conn, PHONE2_JID, "m2")[1]
    assert link(db_conn, LID, PHONE2_JID) == b
    assert identities(db_conn, a) == {("phone", PHONE)}
    assert ("lid", "82399031480511") in identities(db_conn, b)
    assert messages_of(db_conn, a) == ["m1"]
    # to a phone with no conversation yet: the LID leaves for that (pending) person
    assert link(db_conn, LID, PHONE3) is None
    assert ("lid", "82399031480511") not in identities(db_conn, b)
    c, key, created = goc(db_conn, LID)
    assert created and key == "phone:1:+972508888888"
    moves = db_conn.execute("SELECT other_conversation_id, rule FROM convkey.identity_conflict ORDER BY 1").fetchall()
    assert moves == [(a, "moved_to_other_phone"), (b, "moved_to_other_phone")]


def test_link_of_two_leads_conversations_is_refused(db_conn):
    goc(db_conn, PHONE_JID, lead=1)
    goc(db_conn, LID, lead=2)
    before = table_checksums(db_conn)
    assert sqlstate_of(db_conn, "SELECT convkey.link_identity(1, %s, %s)", (LID, PHONE_JID)) == "22023"
    assert table_checksums(db_conn) == before


@pytest.mark.parametrize("a,b", [
    (LID, LID), (PHONE_JID, PHONE), ("1@g.us", PHONE), (LID, "status@broadcast"), (None, LID), (LID, ""),
])
def test_link_refuses_bad_pairs(db_conn, a, b):
    before = table_checksums(db_conn)
    assert sqlstate_of(db_conn, "SELECT convkey.link_identity(1, %s, %s)", (a, b)) == "22023"
    assert table_checksums(db_conn) == before


def test_link_bsuid(db_conn):
    cid = goc(db_conn, PHONE_JID)[0]
    assert link(db_conn, "US.13491208655302741918", PHONE_JID) == cid
    assert goc(db_conn, "us.13491208655302741918")[0] == cid


# --- leads ------------------------------------------------------------------------------------
def test_assign_lead_rekeys_same_row_and_is_idempotent(db_conn):
    cid = goc(db_conn, PHONE_JID)[0]
    assert assign(db_conn, cid, 55, "Dana") == cid
    assert key_of(db_conn, cid) == "lead:1:55"
    assert assign(db_conn, cid, 55, "Dana Levi") == cid
    assert db_conn.execute("SELECT lead_name, lead_id FROM convkey.whatsapp_conversation WHERE id = %s",
                           (cid,)).fetchone() == ("Dana Levi", 55)
    assert sqlstate_of(db_conn, "SELECT convkey.assign_lead(1, %s, 56)", (cid,)) == "22023"
    assert goc(db_conn, None, lead=55)[0] == cid


def test_assign_lead_merges_with_the_leads_other_conversation(db_conn):
    a = msg(db_conn, PHONE_JID, "m1", at=T0)[1]
    b = msg(db_conn, None, "m2", lead=77, at=T0 + dt.timedelta(minutes=1))[1]
    assert assign(db_conn, a, 77) == b
    assert live_count(db_conn) == 1 and key_of(db_conn, b) == "lead:1:77"
    assert messages_of(db_conn, b) == ["m1", "m2"]
    assert db_conn.execute("SELECT reason FROM convkey.conversation_merge").fetchone()[0] == "assign_lead"


def test_merge_leads_with_conversations(db_conn):
    a = msg(db_conn, PHONE_JID, "m1", lead=1, at=T0 + dt.timedelta(minutes=5))[1]
    b = msg(db_conn, LID, "m2", lead=2, at=T0)[1]
    survivor = db_conn.execute("SELECT convkey.merge_leads(1, 1, 2)").fetchone()[0]
    assert survivor == a
    assert key_of(db_conn, a) == "lead:1:2" and key_of(db_conn, b) is None
    assert goc(db_conn, None, lead=1)[:2] == (a, "lead:1:2")
    assert msg(db_conn, LID, "m3")[1] == a
    assert db_conn.execute("SELECT convkey.merge_leads(1, 1, 2)").fetchone()[0] == a  # again: no-op


def test_merge_leads_one_side_and_before_any_conversation(db_conn):
    a = goc(db_conn, PHONE_JID, lead=1)[0]
    assert db_conn.execute("SELECT convkey.merge_leads(1, 1, 9)").fetchone()[0] == a
    assert key_of(db_conn, a) == "lead:1:9"
    assert db_conn.execute("SELECT convkey.merge_leads(1, 20, 21)").fetchone()[0] is None
    cid, key, created = goc(db_conn, LID2, lead=20)
    assert (key, created) == ("lead:1:21", True)
    assert goc(db_conn, None, lead=21)[0] == cid
    assert sqlstate_of(db_conn, "SELECT convkey.merge_leads(1, 3, 3)") == "22023"


# --- merge primitive and unmerge ----------------------------------------------------------------
def test_merge_conversations_rules(db_conn):
    a = msg(db_conn, PHONE_JID, "m1")[1]
    b = msg(db_conn, PHONE2_JID, "m2")[1]
    c = goc(db_conn, LID, lead=5)[0]
    d = goc(db_conn, LID2, lead=6)[0]
    assert db_conn.execute("SELECT convkey.merge_conversations(1, %s, %s)", (b, a)).fetchone()[0] == b
    assert identities(db_conn, b) == {("phone", PHONE), ("phone", PHONE2)}
    assert key_of(db_conn, b) == "phone:1:+972509999999"  # the primary keeps its phone
    before = table_checksums(db_conn)
    for args, state in [((b, a), "22023"), ((a, b), "22023"), ((b, b), "22023"), ((c, d), "22023"),
                        ((b, 999999), "P0002"), ((0, b), "22023")]:
        assert sqlstate_of(db_conn, "SELECT convkey.merge_conversations(1, %s, %s)", args) == state, args
    assert sqlstate_of(db_conn, "SELECT convkey.merge_conversations(1, %s, %s, 'Bad Reason!')", (c, b)) == "22023"
    assert table_checksums(db_conn) == before


def _state(conn):
    return {
        "messages": set(conn.execute("SELECT id, conversation_id FROM convkey.whatsapp_message").fetchall()),
        "identities": set(conn.execute("SELECT kind, value, conversation_id FROM convkey.identity").fetchall()),
        "keys": set(conn.execute("SELECT id, canonical_key, lead_id, phone_e164, merged_into_id, push_name "
                                 "FROM convkey.whatsapp_conversation").fetchall()),
    }


def test_unmerge_round_trip_restores_exact_sets(db_conn):
    a = msg(db_conn, LID, "m1", at=T0)[1]
    msg(db_conn, LID, "m2", at=T0 + dt.timedelta(minutes=1))
    db_conn.execute("UPDATE convkey.whatsapp_conversation SET push_name = 'Dana' WHERE id = %s", (a,))
    b = msg(db_conn, PHONE_JID, "m3", at=T0 + dt.timedelta(minutes=2), lead=8)[1]
    before = _state(db_conn)
    assert link(db_conn, LID, PHONE_JID) == b
    assert live_count(db_conn) == 1
    merge_id = db_conn.execute("SELECT id FROM convkey.conversation_merge").fetchone()[0]
    late = msg(db_conn, PHONE_JID, "m4", at=T0 + dt.timedelta(minutes=3))[0]
    assert db_conn.execute("SELECT convkey.unmerge(1, %s)", (merge_id,)).fetchone()[0] == a
    after = _state(db_conn)
    assert after["identities"] == before["identities"]
    assert after["keys"] == before["keys"]
    assert after["messages"] == before["messages"] | {(late, b)}  # a later message stays with the primary
    # the separation holds against automatic links and is counted ...
    assert link(db_conn, LID, PHONE_JID) == a
    assert msg(db_conn, LID, "m5", phone=PHONE)[1] == b  # the phone's (lead) conversation; the LID stays
    assert identities(db_conn, a) == {("lid", "82399031480511")}
    counted = db_conn.execute("SELECT sum(seen_count) FROM convkey.identity_conflict WHERE rule = 'separated'"
                              ).fetchone()[0]
    assert counted >= 2
    # ... a manual link overrides it and clears it
    assert link(db_conn, LID, PHONE_JID, "manual") in (a, b)
    assert live_count(db_conn) == 1
    assert db_conn.execute("SELECT count(*) FROM convkey.conversation_separation").fetchone()[0] == 0
    assert db_conn.execute("SELECT undone_at IS NOT NULL FROM convkey.conversation_merge WHERE id = %s",
                           (merge_id,)).fetchone()[0]


def test_unmerge_refuses_when_ambiguous_or_done(db_conn):
    a = goc(db_conn, LID)[0]
    b = goc(db_conn, PHONE_JID)[0]
    c = goc(db_conn, PHONE2_JID)[0]
    db_conn.execute("SELECT convkey.merge_conversations(1, %s, %s)", (b, a))
    first = db_conn.execute("SELECT max(id) FROM convkey.conversation_merge").fetchone()[0]
    db_conn.execute("SELECT convkey.merge_conversations(1, %s, %s)", (c, b))
    second = db_conn.execute("SELECT max(id) FROM convkey.conversation_merge").fetchone()[0]
    with pytest.raises(psycopg.Error) as exc:
        db_conn.execute("SELECT convkey.unmerge(1, %s)", (first,))
    assert exc.value.sqlstate == "55000"
    assert f"undo merge {second} first" in exc.value.diag.message_primary
    assert db_conn.execute("SELECT convkey.unmerge(1, %s)", (second,)).fetchone()[0] == b
    assert db_conn.execute("SELECT convkey.unmerge(1, %s)", (first,)).fetchone()[0] == a
    assert sqlstate_of(db_conn, "SELECT convkey.unmerge(1, %s)", (first,)) == "55000"
    assert sqlstate_of(db_conn, "SELECT convkey.unmerge(1, 424242)") == "P0002"
    assert live_count(db_conn) == 3


def test_resolve_follows_tombstone_chain(db_conn):
    a = goc(db_conn, LID)[0]
    b = goc(db_conn, PHONE_JID)[0]
    c = goc(db_conn, PHONE2_JID)[0]
    db_conn.execute("SELECT convkey.merge_conversations(1, %s, %s)", (b, a))
    db_conn.execute("SELECT convkey.merge_conversations(1, %s, %s)", (c, b))
    assert db_conn.execute("SELECT convkey.resolve_conversation_id(1, %s)", (a,)).fetchone()[0] == c
    # an application holding the old id keeps working
    assert assign(db_conn, a, 31) == c


# --- businesses never mix -----------------------------------------------------------------------
def test_cross_business_calls_write_nothing(db_conn):
    a = msg(db_conn, LID, "m1")[1]
    b = msg(db_conn, PHONE_JID, "m2")[1]
    link(db_conn, LID, PHONE_JID)
    merge_id = db_conn.execute("SELECT id FROM convkey.conversation_merge").fetchone()[0]
    before = table_checksums(db_conn)
    for sql, args in [
        ("SELECT convkey.merge_conversations(2, %s, %s)", (b, a)),
        ("SELECT convkey.assign_lead(2, %s, 5)", (b,)),
        ("SELECT convkey.unmerge(2, %s)", (merge_id,)),
        ("SELECT convkey.resolve_conversation_id(2, %s)", (a,)),
        ("SELECT convkey.close_session(2, %s)", (b,)),
    ]:
        assert sqlstate_of(db_conn, sql, args) == "P0002", sql
    assert table_checksums(db_conn) == before
    # the same identifiers in business 2 are another person
    other = goc(db_conn, PHONE_JID, business=2)
    assert other[2] and other[0] not in (a, b)


# --- concurrent merges and links never deadlock visibly ---------------------------------------
def test_concurrent_links_and_merges_in_any_order(db_dsn):
    people = 12
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        for k in range(people):
            msg(conn, f"{82399031480000 + k}@lid", f"l{k}")
            msg(conn, f"97250{1000000 + k:07d}@s.whatsapp.net", f"p{k}")
    ops = []
    for k in range(people):
        lid, phone = f"{82399031480000 + k}@lid", f"97250{1000000 + k:07d}@s.whatsapp.net"
        ops += [("link", lid, phone), ("link", phone, lid), ("msg", lid, f"+97250{1000000 + k:07d}")] * 3
    rng = random.Random(7)
    errors = []

    def work(seed):
        r = random.Random(seed)
        mine = ops[:]
        r.shuffle(mine)
        try:
            with psycopg.connect(db_dsn, autocommit=True) as conn:
                for i, (op, a, b) in enumerate(mine):
                    if op == "link":
                        link(conn, a, b)
                    else:
                        conn.execute("SELECT * FROM convkey.record_message(1, %s, 'in', %s, p_phone_e164 => %s)",
                                     (a, f"w{seed}-{i}", b))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(rng.randrange(10**6),)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        assert live_count(conn) == people
        assert conn.execute("SELECT count(*) FROM convkey.whatsapp_message m JOIN convkey.whatsapp_conversation c "
                            "ON c.id = m.conversation_id WHERE c.merged_into_id IS NOT NULL").fetchone()[0] == 0
