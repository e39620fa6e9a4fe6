"""convkey.phone and its rule table, without a database (tests/test_phone_sql_agrees.py has the SQL side)."""

from __future__ import annotations

import re

import phonenumbers
import pytest
from conftest import read_vectors
from hypothesis import given, settings
from hypothesis import strategies as st
from phonenumbers import PhoneNumberFormat, PhoneNumberType

from convkey import phone
from convkey.phone import (
    InvalidIdentifier,
    canonical_digits,
    format_for_display,
    mask,
    normalize_phone,
    possible_total_lengths,
)
from convkey.phone_rules import SUBSCRIBER_RULES, check_rule, python_replacement

VECTORS = read_vectors("phones.csv")
E164 = re.compile(r"\+[1-9][0-9]{5,17}")


@pytest.mark.parametrize(("raw", "region", "expected"), VECTORS, ids=[f"{r[0]!r}-{r[1]}" for r in VECTORS])
def test_vector(raw, region, expected):
    if expected == "error":
        with pytest.raises(InvalidIdentifier) as info:
            normalize_phone(raw, region)
        assert info.value.sqlstate == "22023"
    else:
        assert normalize_phone(raw, region) == expected


@pytest.mark.parametrize(
    "raw",
    ["82399031480511@lid", "972501234567@s.whatsapp.net", "+9725012345678901", "+1 800 FLOWERS 972501234567"],
)
def test_error_names_the_parameter_and_masks_the_digits(raw):
    with pytest.raises(InvalidIdentifier) as info:
        normalize_phone(raw)
    message = str(info.value)
    assert message.startswith("raw: ")
    digits = re.sub(r"\D", "", raw)
    assert digits not in message
    assert digits[-4:] in message


def test_error_is_a_value_error():
    with pytest.raises(ValueError):
        normalize_phone("abc")


@pytest.mark.parametrize("raw", [None, 972501234567, b"0501234567", "0" * 251])
def test_refuses_what_is_not_a_short_str(raw):
    size = normalize_phone.cache_info().currsize
    with pytest.raises(InvalidIdentifier, match="^raw: "):
        normalize_phone(raw)
    assert normalize_phone.cache_info().currsize == size


@pytest.mark.parametrize("region", ["XX", "il", None, ["IL"]])
def test_refuses_an_unknown_default_region(region):
    with pytest.raises(InvalidIdentifier, match="^default_region: "):
        normalize_phone("0501234567", region)


def test_cache_hits_on_repeats_and_cached_errors_still_raise():
    normalize_phone.cache_clear()
    assert normalize_phone("050-123-4567") == "+972501234567"
    assert normalize_phone("050-123-4567") == "+972501234567"
    assert normalize_phone.cache_info().hits == 1
    for _ in range(2):
        with pytest.raises(InvalidIdentifier):
            normalize_phone("12345")
    assert normalize_phone.cache_info().hits == 2
    # The region is part of the key.
    normalize_phone("+972501234567", "IL")
    normalize_phone("+972501234567", "US")
    assert normalize_phone.cache_info().misses == 4


@pytest.mark.parametrize(
    ("digits", "expected"),
    [
        ("5215512345678", "525512345678"),  # Mexico: the old mobile '1' goes
        ("525512345678", "525512345678"),
        ("52155123456789", "52155123456789"),  # not 10 digits after 521
        ("556696679626", "5566996679626"),  # Brazil: old 8-digit mobile gets its 9
        ("5566996679626", "5566996679626"),
        ("551132345678", "551132345678"),  # landline
        ("550196679626", "550196679626"),  # no area code starts with 0
        ("972501234567", "972501234567"),
        ("5215512345678\n", "5215512345678\n"),  # '$' is the end of the string, as in PostgreSQL
        ("", ""),
    ],
)
def test_canonical_digits(digits, expected):
    assert canonical_digits(digits) == expected


def test_first_matching_rule_wins_and_applies_once(monkeypatch):
    rules = (("one_to_two", r"^1(\d)$", r"2\1"), ("two_to_three", r"^2(\d)$", r"3\1"))
    monkeypatch.setattr(phone, "_RULES", tuple(phone._compile_rule(rule) for rule in rules))
    assert canonical_digits("15") == "25"
    assert canonical_digits("25") == "35"


def test_rules_are_well_formed_and_named_once():
    for rule in SUBSCRIBER_RULES:
        check_rule(rule)
    names = [name for name, _, _ in SUBSCRIBER_RULES]
    assert len(names) == len(set(names))


@pytest.mark.parametrize(
    "rule",
    [
        ("unanchored", r"521(\d{10})", r"52\1"),
        ("dot", r"^52.(\d{10})$", r"52\1"),
        ("word", r"^52\w$", r"52"),
        ("alternation", r"^(52|53)$", r"\1"),
        ("star", r"^52\d*$", r"52"),
        ("named_group", r"^(?P<a>52)$", r"\1"),
        ("python_template", r"^(52)$", r"\g<1>"),
        ("whole_match", r"^(52)$", r"\0"),
        ("missing_group", r"^(52)$", r"\2"),
        ("Bad-Name", r"^(52)$", r"\1"),
    ],
)
def test_check_rule_refuses_what_the_engines_read_differently(rule):
    with pytest.raises(ValueError):
        check_rule(rule)


def test_python_replacement_reads_one_digit_per_backreference():
    assert python_replacement(r"55\19\2") == r"55\g<1>9\g<2>"
    assert re.sub(r"^55(\d{2})(\d{8})$", python_replacement(r"55\19\2"), "556696679626") == "5566996679626"


@pytest.mark.parametrize(
    ("cc", "expected"),
    [
        (972, set(range(10, 16))),  # 3 digits + 7..12
        (1, {11}),  # NANP: always 11 digits in all (Canada's 7-digit local numbers are not complete)
        (44, {9, 11, 12}),  # GB, GG, IM, JE together
        (800, {11}),  # non-geographic
        (999, set()),
        (0, set()),
    ],
)
def test_possible_total_lengths(cc, expected):
    assert possible_total_lengths(cc) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("+972501234567", "+********4567"),
        ("82399031480511@lid", "**********0511@lid"),
        ("050-123-4567", "***-***-4567"),
        ("12345", "*2345"),
        ("1234", "****"),
        ("+1", "+*"),
        ("abc", "abc"),
        ("", ""),
        (None, "<none>"),
        (972501234567, "********4567"),
    ],
)
def test_mask(value, expected):
    assert mask(value) == expected


def test_mask_never_raises():
    class Broken:
        def __str__(self):
            raise RuntimeError("no")

    assert mask(Broken()) == "<unprintable>"


@pytest.mark.parametrize(
    ("e164", "expected"),
    [
        ("+972501234567", "+972 50-123-4567"),
        ("+14155552671", "+1 415-555-2671"),
        ("+5566996679626", "+55 66 99667-9626"),
        ("not a phone", "not a phone"),
        ("", ""),
        (None, None),
    ],
)
def test_format_for_display(e164, expected):
    assert format_for_display(e164) == expected


REGIONS = ("IL", "US", "BR", "MX", "GB", "DE", "IN", "RU", "IT", "AR", "CN", "NG")


@st.composite
def typed_numbers(draw) -> tuple[str, str]:
    """A number as a person might type it: a region's example number, its tail changed, spelled
    in one of the usual formats (or as digits without '+'), with the region to read it in."""
    region = draw(st.sampled_from(sorted(phonenumbers.SUPPORTED_REGIONS)))
    kind = draw(st.sampled_from([PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE]))
    example = phonenumbers.example_number_for_type(region, kind) or phonenumbers.example_number(region)
    if example is None:
        return draw(st.text("0123456789 +-()", max_size=20)), region
    national = phonenumbers.national_significant_number(example)
    keep = draw(st.integers(0, len(national)))
    tail = draw(st.text("0123456789", min_size=0, max_size=len(national) - keep + 2))
    national_number = int(national[:keep] + tail or "0")
    number = phonenumbers.PhoneNumber(country_code=example.country_code, national_number=national_number)
    spelling = draw(st.sampled_from(["e164", "international", "national", "bare"]))
    if spelling == "bare":
        text = phonenumbers.format_number(number, PhoneNumberFormat.E164)[1:]
    else:
        text = phonenumbers.format_number(number, getattr(PhoneNumberFormat, spelling.upper()))
    reading_region = draw(st.one_of(st.just(region), st.sampled_from(REGIONS)))
    return text, reading_region


@settings(max_examples=500, deadline=None)
@given(
    st.one_of(
        typed_numbers(),
        st.tuples(st.text("0123456789 +-().", max_size=20), st.sampled_from(REGIONS)),
    ),
    st.sampled_from(REGIONS),
)
def test_normalize_phone_is_idempotent(typed, other_region):
    raw, region = typed
    try:
        e164 = normalize_phone(raw, region)
    except InvalidIdentifier:
        return
    assert E164.fullmatch(e164)
    assert normalize_phone(e164, region) == e164
    assert normalize_phone(e164, other_region) == e164  # a '+' number reads the same everywhere
    digits = e164[1:]
    assert canonical_digits(digits) == digits
    cc = phonenumbers.parse(e164).country_code
    assert len(digits) in possible_total_lengths(cc)


RULE_SHAPED = st.one_of(
    st.text("0123456789", max_size=16),
    st.builds(
        "".join,
        st.tuples(st.sampled_from(["52", "521", "55"]), st.text("0123456789", min_size=8, max_size=12)),
    ),
)


@given(RULE_SHAPED)
def test_canonical_digits_is_idempotent(digits):
    once = canonical_digits(digits)
    assert canonical_digits(once) == once
