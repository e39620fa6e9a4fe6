"""The generated SQL (functions/post-apply-01_phone_reference.sql) answers as convkey.phone does.

Needs PostgreSQL: ``db_conn`` is a connection to a freshly migrated database. Each check sends a
whole batch of digit strings in one query and compares row by row with the Python reference.
"""

from __future__ import annotations

import itertools

import phonenumbers
from conftest import read_vectors
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from convkey.phone import canonical_digits, possible_total_lengths

CODES = sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)
_CODE_PREFIXES = {str(cc) for cc in CODES}
_FILLER = "98765432109876543210"


def py_country_code(digits: str) -> int | None:
    """The reference for convkey._phone_country_code: calling codes are prefix-free."""
    for width in (1, 2, 3):
        if len(digits) >= width and digits[:width] in _CODE_PREFIXES:
            return int(digits[:width])
    return None


def py_digits_possible(digits: str) -> bool:
    """The reference for convkey._phone_digits_possible."""
    cc = py_country_code(digits)
    ascii_digits = digits.isascii() and digits.isdigit()
    return ascii_digits and cc is not None and len(digits) in possible_total_lengths(cc)


def assert_sql_agrees(conn, batch: list[str]) -> None:
    rows = conn.execute(
        """
        SELECT convkey._phone_country_code(t.d),
               convkey._canonical_phone_digits(t.d),
               convkey._phone_digits_possible(t.d)
          FROM unnest(%s::text[]) WITH ORDINALITY AS t(d, i)
         ORDER BY t.i
        """,
        [batch],
    ).fetchall()
    expected = [(py_country_code(d), canonical_digits(d), py_digits_possible(d)) for d in batch]
    wrong = [(d, got, want) for d, got, want in zip(batch, rows, expected) if tuple(got) != want]
    assert not wrong, f"{len(wrong)} disagreements (digits, sql, python), first ones: {wrong[:5]}"


def test_possible_lengths_for_every_three_digit_number(db_conn):
    rows = db_conn.execute(
        "SELECT c, convkey._phone_possible_lengths(c) FROM generate_series(0, 999) AS c ORDER BY c"
    ).fetchall()
    expected = [(cc, sorted(possible_total_lengths(cc)) or None) for cc in range(1000)]
    assert rows == expected


def test_every_calling_code_at_every_length(db_conn):
    batch = [
        str(cc) + _FILLER[: max(0, total - len(str(cc)))]
        for cc, total in itertools.product(CODES, range(1, 21))
    ]
    assert_sql_agrees(db_conn, batch)


def test_subscriber_rule_neighbourhood(db_conn):
    """Each rule's prefix with every length and leading digit around what it matches."""
    prefixes = ["52", "521", "5210", "55", "5500", "5511", "5566", "5599"]
    batch = [
        prefix + lead + _FILLER[:tail]
        for prefix, lead, tail in itertools.product(prefixes, "0123456789", range(0, 13))
    ]
    assert_sql_agrees(db_conn, batch)


def test_numbers_normalize_phone_returns_are_canonical_and_possible_in_sql(db_conn):
    normalized = [row[2][1:] for row in read_vectors("phones.csv") if row[2] != "error"]
    rows = db_conn.execute(
        """
        SELECT convkey._canonical_phone_digits(d) = d AND convkey._phone_digits_possible(d)
          FROM unnest(%s::text[]) AS d
        """,
        [normalized],
    ).fetchall()
    assert rows == [(True,)] * len(normalized)


def test_null_in_null_out(db_conn):
    row = db_conn.execute(
        """
        SELECT convkey._phone_possible_lengths(NULL), convkey._phone_country_code(NULL),
               convkey._canonical_phone_digits(NULL), convkey._phone_digits_possible(NULL)
        """
    ).fetchone()
    assert row == (None, None, None, None)


DIGIT_STRINGS = st.one_of(
    st.text("0123456789", max_size=20),
    st.builds(
        "".join,
        st.tuples(
            st.sampled_from(sorted(_CODE_PREFIXES) + ["521", "55"]), st.text("0123456789", max_size=14)
        ),
    ),
    # Not digits only: a '+', a letter, a space or a trailing newline ('$' must not match before it).
    st.text("0123456789+a \n", max_size=16),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(DIGIT_STRINGS, min_size=1, max_size=100))
def test_generated_digit_strings(db_conn, batch):
    assert_sql_agrees(db_conn, batch)
