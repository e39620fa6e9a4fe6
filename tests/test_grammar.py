"""The identifier grammar and canonical keys, defined once in SQL, against the shared vectors."""

import psycopg
import pytest

from conftest import read_vectors, table_checksums

WA_IDS = read_vectors("wa_ids.csv")
KEYS = read_vectors("canonical_keys.csv")


@pytest.mark.parametrize("raw,kind,phone,lid", WA_IDS, ids=[r[0] or "<empty>" for r in WA_IDS])
def test_parse_wa_id_vectors(ro_conn, raw, kind, phone, lid):
    if kind == "error":
        with pytest.raises(psycopg.Error) as exc:
            ro_conn.execute("SELECT * FROM convkey.parse_wa_id(%s)", (raw,))
        assert exc.value.sqlstate == "22023"
        return
    row = ro_conn.execute(
        "SELECT kind, phone_e164, lid FROM convkey.parse_wa_id(%s)", (raw,)
    ).fetchone()
    assert row == (kind, phone or None, lid or None)


def test_parse_wa_id_parts(db_conn):
    row = db_conn.execute("SELECT * FROM convkey.parse_wa_id('972501234567.0:12@s.whatsapp.net')").fetchone()
    assert row == ("pn", "972501234567", 12, "+972501234567", None)
    row = db_conn.execute("SELECT * FROM convkey.parse_wa_id('82399031480511:5@lid')").fetchone()
    assert row == ("lid", "82399031480511", 5, None, "82399031480511")
    row = db_conn.execute("SELECT * FROM convkey.parse_wa_id(' us.13491208655302741918 ')").fetchone()
    assert row == ("bsuid", "US.13491208655302741918", None, None, None)


@pytest.mark.parametrize("raw,state", [(None, "22023"), ("9" * 257 + "@lid", "22001")])
def test_parse_wa_id_null_and_long(db_conn, raw, state):
    with pytest.raises(psycopg.Error) as exc:
        db_conn.execute("SELECT * FROM convkey.parse_wa_id(%s)", (raw,))
    assert exc.value.sqlstate == state


def test_parse_wa_id_error_masks_digits(db_conn):
    with pytest.raises(psycopg.Error) as exc:
        db_conn.execute("SELECT * FROM convkey.parse_wa_id('190997547974788@s.whatsapp.net')")
    assert "190997547974788" not in str(exc.value)
    assert exc.value.diag.message_hint


def _none(v):
    return None if v == "" else v


@pytest.mark.parametrize("business,lead,phone,lid,expected", KEYS, ids=["-".join(r) for r in KEYS])
def test_canonical_key_vectors(ro_conn, business, lead, phone, lid, expected):
    args = (_none(business), _none(lead), _none(phone), _none(lid))
    sql = "SELECT convkey.canonical_key(%s::bigint, %s::bigint, %s, %s)"
    if expected == "error":
        with pytest.raises(psycopg.Error) as exc:
            ro_conn.execute(sql, args)
        assert exc.value.sqlstate == "22023"
        assert exc.value.diag.message_hint
        return
    assert ro_conn.execute(sql, args).fetchone()[0] == expected


def test_canonical_key_bsuid_and_priority(db_conn):
    q = "SELECT convkey.canonical_key(7, p_bsuid => %s, p_lid => %s)"
    assert db_conn.execute(q, ("us.1349", None)).fetchone()[0] == "bsuid:7:US.1349"
    assert db_conn.execute(q, ("US.1349", "555")).fetchone()[0] == "lid:7:555"
    with pytest.raises(psycopg.Error) as exc:
        db_conn.execute(q, ("X.1", None))
    assert exc.value.sqlstate == "22023"


def test_canonical_key_error_names_parameter(db_conn):
    for args, param in [((None, 1), "p_business_id"), ((1, -1), "p_lead_id")]:
        with pytest.raises(psycopg.Error) as exc:
            db_conn.execute("SELECT convkey.canonical_key(%s::bigint, %s::bigint)", args)
        assert param in exc.value.diag.message_primary


def test_grammar_functions_write_nothing(db_conn):
    before = table_checksums(db_conn)
    for raw in ("972501234567@s.whatsapp.net", "82399031480511@lid"):
        db_conn.execute("SELECT * FROM convkey.parse_wa_id(%s)", (raw,))
    assert table_checksums(db_conn) == before
