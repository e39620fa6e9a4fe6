"""convkey.display_name: every vector of tests/data/display_names.csv, a Python model of the rules
checked on generated input, and the properties that keep it fast (inlined, immutable)."""

from __future__ import annotations

import json
import re

import pytest
from conftest import read_vectors
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from convkey.phone import format_for_display

DEFAULT_FALLBACK = "ללא שם"
VECTORS = read_vectors("display_names.csv")
_ESCAPE = re.compile(r"\\u([0-9A-Fa-f]{4})|\\t")

# The blank characters as the rules name them: whitespace, no-break and typographic spaces,
# zero-width characters, direction marks, embeddings, isolates, the BOM, the soft hyphen and the
# Hangul and Braille fillers. convkey._blank_chars() must hold exactly these.
BLANK = frozenset(
    " \t\n\r\x0b\x0c\u00a0\u00ad\u034f\u061c\u115f\u1160\u1680\u180e\u2800\u3000\u3164\ufeff\uffa0"
    + "".join(map(chr, [*range(0x2000, 0x2010), *range(0x2028, 0x2030), *range(0x205F, 0x2065),
                       *range(0x2066, 0x2070)]))
)
PHONE = re.compile(r"\+?([1-9][0-9]{6,14})(?:(?:[._][0-9]{1,3})?(?::[0-9]{1,3})?@(?:s\.whatsapp\.net|c\.us|hosted))?",
                   re.IGNORECASE | re.ASCII)
DISPLAY_NAME = "SELECT convkey.display_name(%s, %s, %s, %s, %s{})"


def cell(text: str) -> str | None:
    """A vector cell: empty is NULL, <empty> the empty string, \\uXXXX and \\t are characters."""
    if text == "":
        return None
    if text in ("<empty>", "<null>"):
        return {"<empty>": "", "<null>": None}[text]
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)) if m.group(1) else "\t", text)


def display_name(conn, lead, push, name, peer, phone, fallback="<default>"):
    if fallback == "<default>":
        return conn.execute(DISPLAY_NAME.format(""), (lead, push, name, peer, phone)).fetchone()[0]
    return conn.execute(DISPLAY_NAME.format(", %s"), (lead, push, name, peer, phone, fallback)).fetchone()[0]


def py_display_name(lead, push, name, peer, phone, fallback=DEFAULT_FALLBACK):
    """The rules, written a second time in Python as the oracle."""
    def only(value, allowed):
        return all(ch in BLANK or ch in allowed for ch in value)

    if lead is not None and lead.strip("".join(BLANK)):
        return lead.strip("".join(BLANK))
    if push is not None and "@" not in push and not only(push, "0123456789+()-"):
        return push.strip("".join(BLANK))
    for value in (name, peer):
        if value is not None and "@" not in value and not only(value, "0123456789"):
            return value.strip("".join(BLANK))
    if phone is not None:
        m = PHONE.fullmatch(phone.strip("".join(BLANK)))
        if m:
            return "+" + m.group(1)
    return fallback


@pytest.mark.parametrize("row", VECTORS, ids=[f"{i}-{r[7]}" for i, r in enumerate(VECTORS)])
def test_vectors(ro_conn, row):
    lead, push, name, peer, phone = map(cell, row[:5])
    fallback = "<default>" if row[5] == "" else cell(row[5])
    expected = cell(row[6])
    assert display_name(ro_conn, lead, push, name, peer, phone, fallback) == expected
    # the oracle agrees with every vector too
    assert py_display_name(lead, push, name, peer, phone,
                           DEFAULT_FALLBACK if fallback == "<default>" else fallback) == expected


def test_blank_chars_are_exactly_the_blank_set(ro_conn):
    chars = ro_conn.execute("SELECT convkey._blank_chars()").fetchone()[0]
    assert set(chars) == BLANK and len(chars) == len(BLANK)
    # no ASCII letter or any digit (the Hangul fillers are letters to Unicode, blank to the eye),
    # and nothing special inside a regex bracket expression
    assert not any((ch.isascii() and ch.isalnum()) or ch.isdigit() or ch in "]^-\\" for ch in chars)


_VALUE = st.one_of(
    st.none(),
    st.text(alphabet="aZv05 +-()@.:_\u200f\u00a0\t\u3164", max_size=14),
    st.builds(lambda digits, server: digits + server,
              st.text(alphabet="0123456789", min_size=1, max_size=17),
              st.sampled_from(["", "@s.whatsapp.net", ":3@c.us", ".0:12@hosted", "@lid", ":5@hosted.lid",
                               "@g.us", "@S.WhatsApp.Net"])),
    st.builds(lambda digits: "+" + digits, st.text(alphabet="0123456789", min_size=1, max_size=17)),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.tuples(_VALUE, _VALUE, _VALUE, _VALUE, _VALUE))
def test_sql_agrees_with_the_python_model(ro_conn, values):
    assert display_name(ro_conn, *values) == py_display_name(*values)


def test_a_lid_never_shows_from_push_name_name_peer_name_or_phone(ro_conn):
    lid = "82399031480511"
    for form in (lid, f"{lid}@lid", f"{lid}:3@lid", f"{lid}@hosted.lid", f" {lid}@LID ", f"\u200e{lid}\u200e"):
        for position in (1, 2, 3, 4):
            args = [None] * 5
            args[position] = form
            if position == 4 and form.strip("\u200e") == lid:
                continue  # bare digits are a phone by definition; the view never passes a bare LID
            assert display_name(ro_conn, *args) == DEFAULT_FALLBACK, (form, position)


def test_is_inlined_and_folded(ro_conn):
    """LANGUAGE sql, immutable, parallel safe and not strict: the planner inlines it into a view
    and folds the patterns, so a thread list pays no function call per row."""
    lang, volatile, parallel, strict = ro_conn.execute(
        "SELECT l.lanname, p.provolatile, p.proparallel, p.proisstrict FROM pg_proc p "
        "JOIN pg_language l ON l.oid = p.prolang WHERE p.oid = 'convkey.display_name'::regproc").fetchone()
    assert (lang, volatile, parallel, strict) == ("sql", "i", "s", False)
    plan = ro_conn.execute(
        "EXPLAIN (VERBOSE, FORMAT JSON) SELECT convkey.display_name(c.lead_name, c.push_name, NULL, NULL, "
        "coalesce(c.phone_e164, c.customer_wa_id)) FROM convkey.whatsapp_conversation c").fetchone()[0]
    output = json.dumps(plan)
    assert "display_name" not in output and "_blank_chars" not in output, output


def test_client_and_ui_formatting(db_dsn):
    import convkey

    with convkey.Client(db_dsn, max_size=1) as client:
        shown = client.display_name(push_name="+972 52-595-1893", phone="972525951893:4@s.whatsapp.net")
        assert shown == "+972525951893"
        assert format_for_display(shown) == "+972 52-595-1893"
        assert client.display_name(lead_name=" דנה ") == "דנה"
        assert client.display_name(phone="82399031480511@lid", fallback="Unknown") == "Unknown"
