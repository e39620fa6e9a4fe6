"""The Python runner: JID grammar mirror, Baileys keys, Client normalization and error mapping."""

import pytest

import convkey
from conftest import read_vectors
from convkey import queries
from convkey.baileys import identities_from_key
from convkey.errors import InvalidIdentifier, InvalidState, NotFound, ValueTooLong
from convkey.jid import parse_wa_id

WA_IDS = read_vectors("wa_ids.csv")


@pytest.mark.parametrize("raw,kind,phone,lid", WA_IDS, ids=[r[0] or "<empty>" for r in WA_IDS])
def test_python_grammar_agrees_with_sql_vectors(raw, kind, phone, lid):
    if kind == "error":
        with pytest.raises(InvalidIdentifier) as exc:
            parse_wa_id(raw)
        assert exc.value.sqlstate == "22023"
        return
    got = parse_wa_id(raw)
    assert (got.kind, got.phone_e164, got.lid) == (kind, phone or None, lid or None)


def test_python_grammar_too_long():
    with pytest.raises(ValueTooLong) as exc:
        parse_wa_id("9" * 257 + "@lid")
    assert exc.value.sqlstate == "22001"


# --- Baileys keys ------------------------------------------------------------------------------
def test_key_lid_addressed_chat_reveals_phone():
    k = identities_from_key({"remoteJid": "82399031480511@lid", "remoteJidAlt": "972501234567@s.whatsapp.net",
                             "addressingMode": "lid", "fromMe": False, "id": "ABC"})
    assert k.customer_wa_id == "82399031480511@lid"
    assert k.link == ("82399031480511@lid", "972501234567@s.whatsapp.net")
    assert (k.chat_kind, k.from_me, k.message_id, k.skip_reason) == ("lid", False, "ABC", None)


def test_key_phone_addressed_chat_and_own_message():
    k = identities_from_key({"remoteJid": "972501234567:3@s.whatsapp.net", "remoteJidAlt": "82399031480511@lid",
                             "addressingMode": "pn", "fromMe": True, "id": "X"})
    assert k.customer_wa_id == "972501234567:3@s.whatsapp.net" and k.from_me
    assert k.link == ("972501234567:3@s.whatsapp.net", "82399031480511@lid")


def test_key_without_alt_has_no_link():
    k = identities_from_key({"remoteJid": "972501234567@s.whatsapp.net", "id": "X"})
    assert k.link is None and k.customer_wa_id == "972501234567@s.whatsapp.net"


def test_key_group_learns_sender_pair_but_has_no_customer():
    k = identities_from_key({"remoteJid": "120363000000000000@g.us", "participant": "82399031480511@lid",
                             "participantAlt": "972501234567@s.whatsapp.net", "id": "G"})
    assert (k.customer_wa_id, k.skip_reason) == (None, "group")
    assert k.link == ("82399031480511@lid", "972501234567@s.whatsapp.net")


@pytest.mark.parametrize("remote,reason", [("status@broadcast", "status"), ("x1@newsletter", "newsletter"),
                                           ("", "malformed"), (None, "malformed"), ("junk@nowhere", "malformed")])
def test_key_not_a_customer(remote, reason):
    assert identities_from_key({"remoteJid": remote, "id": "S"}).skip_reason == reason


def test_quoted_reply_participant_is_never_the_customer():
    key = {"remoteJid": "972501234567@s.whatsapp.net", "id": "Q", "fromMe": False}
    k = identities_from_key(key | {"contextInfo": {"participant": "972509999999@s.whatsapp.net"}})
    assert k.customer_wa_id == "972501234567@s.whatsapp.net" and k.link is None


# --- named queries ------------------------------------------------------------------------------
def test_queries_parse_and_refuse_duplicates():
    assert "convkey.record_message" in queries.get("record_message")
    with pytest.raises(ValueError):
        queries.parse("-- a --\nSELECT 1\n-- a --\nSELECT 2\n")


# --- Client -------------------------------------------------------------------------------------
@pytest.fixture
def client(db_dsn):
    with convkey.Client(db_dsn, max_size=2) as c:
        yield c


def test_client_normalizes_human_phones_and_passes_jids(client):
    a = client.get_or_create_conversation(1, "050-123-4567")
    assert a["canonical_key"] == "phone:1:+972501234567" and a["created"]
    assert client.get_or_create_conversation(1, "972501234567:4@s.whatsapp.net")["conversation_id"] == a["conversation_id"]
    assert client.get_or_create_conversation(1, None, phone="+972 50-123-4567")["conversation_id"] == a["conversation_id"]
    assert client.canonical_key(1, phone="050 123 4567") == "phone:1:+972501234567"
    assert client.parse_wa_id("82399031480511@lid")["kind"] == "lid"


def test_client_records_and_links_in_one_call(client):
    first = client.record_message(1, "972501234567@s.whatsapp.net", "in", "m1", "hi")
    second = client.record_message(1, "82399031480511@lid", "in", "m2", "again",
                                   alt_wa_id="972501234567@s.whatsapp.net")
    assert second["conversation_id"] == first["conversation_id"]
    again = client.record_message(1, "82399031480511@lid", "in", "m2", "again")
    assert again == {"message_id": second["message_id"], "conversation_id": second["conversation_id"],
                     "inserted": False}


def test_client_graph_methods(client):
    a = client.record_message(1, "82399031480511@lid", "in", "m1")["conversation_id"]
    b = client.record_message(1, "972501234567@s.whatsapp.net", "in", "m2")["conversation_id"]
    survivor = client.link_identity(1, "82399031480511@lid", "050-123-4567", source="lid-mapping")
    assert survivor in (a, b)
    assert client.resolve_conversation_id(1, a) == survivor
    assert client.assign_lead(1, survivor, 12, "Dana") == survivor
    assert client.merge_leads(1, 12, 13) == survivor
    c = client.record_message(1, "972509999999@s.whatsapp.net", "in", "m3")["conversation_id"]
    assert client.merge_conversations(1, survivor, c) == survivor
    with client.connector.connection() as conn:
        merge_id = conn.execute("SELECT max(id) AS m FROM convkey.conversation_merge").fetchone()["m"]
    assert client.unmerge(1, merge_id) == c
    assert client.idle_sessions(1) == []
    client.close_session(1, c, "bye")


def test_client_maps_sqlstates(client):
    with pytest.raises(InvalidIdentifier) as exc:
        client.get_or_create_conversation(1, "120363000000000000@g.us")
    assert exc.value.sqlstate == "22023" and exc.value.hint
    with pytest.raises(ValueTooLong):
        client.record_message(1, "972501234567@s.whatsapp.net", "in", "x" * 300)
    with pytest.raises(NotFound):
        client.resolve_conversation_id(1, 987654)
    with pytest.raises(InvalidIdentifier):
        client.get_or_create_conversation(1, "not a phone")  # refused by the runner before SQL
    a = client.get_or_create_conversation(1, "82399031480511@lid")["conversation_id"]
    b = client.get_or_create_conversation(1, "972501234567@s.whatsapp.net")["conversation_id"]
    client.merge_conversations(1, b, a)
    with client.connector.connection() as conn:
        merge_id = conn.execute("SELECT max(id) AS m FROM convkey.conversation_merge").fetchone()["m"]
    client.unmerge(1, merge_id)
    with pytest.raises(InvalidState) as exc:
        client.unmerge(1, merge_id)
    assert exc.value.sqlstate == "55000"
