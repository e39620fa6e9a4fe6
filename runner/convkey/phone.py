"""Phone numbers typed by people, turned into one E.164 spelling per subscriber.

``normalize_phone`` is for numbers a CRM user or an import file gives us (``050-123-4567``,
``+55 66 9667-9626``). WhatsApp ids (``972501234567@s.whatsapp.net``, ``82399031480511@lid``) are not
phone numbers here: the database parses them (``convkey.parse_wa_id``), and a LID never becomes a
phone. Both sides accept the same numbers: a number is kept when its digits, after the subscriber
rules of ``convkey.phone_rules``, have a total length that phonenumbers' metadata allows for the
country calling code. The SQL side of that check is generated from this module
(``python -m convkey.gen_reference_sql``).
"""

from __future__ import annotations

import functools
import re
from typing import NamedTuple

import phonenumbers
from phonenumbers import NumberParseException, PhoneMetadata, PhoneNumberFormat

from convkey.errors import InvalidIdentifier
from convkey.phone_rules import SUBSCRIBER_RULES, check_rule, python_replacement

__all__ = [
    "InvalidIdentifier",
    "canonical_digits",
    "format_for_display",
    "mask",
    "normalize_phone",
    "possible_total_lengths",
]

# phonenumbers refuses longer input; we refuse it before it reaches the cache.
MAX_RAW_LENGTH = 250
CACHE_SIZE = 65536
_MAX_REREADS = 4

# Digits and the separators people type, with no '+': read as an international number when the
# regional reading is impossible (WhatsApp and many exports drop the '+').
_INTERNATIONAL_WITHOUT_PLUS = re.compile(r"[0-9][0-9 ().-]*")


def _compile_rule(rule: tuple[str, str, str]) -> tuple[re.Pattern[str], str]:
    check_rule(rule)
    _name, pattern, replacement = rule
    return re.compile(pattern, re.ASCII), python_replacement(replacement)


_RULES = tuple(_compile_rule(rule) for rule in SUBSCRIBER_RULES)


def canonical_digits(digits: str) -> str:
    """Apply the subscriber rules to E.164 digits without '+': the first rule that matches, once.

    ``5215512345678`` -> ``525512345678``; digits no rule matches come back unchanged.
    """
    for pattern, template in _RULES:
        # The patterns are anchored: fullmatch gives PostgreSQL's reading of '$' (end of string,
        # never before a trailing newline as Python's '$' would).
        match = pattern.fullmatch(digits)
        if match:
            return match.expand(template)
    return digits


@functools.lru_cache(maxsize=1024)
def possible_total_lengths(cc: int) -> frozenset[int]:
    """Total digit counts (calling code + national number) phonenumbers allows for calling code ``cc``.

    Read from the code's main region (for non-geographic codes such as 800, their own metadata);
    empty for an unknown code. The main region's lengths equal the union over all regions sharing
    the code for every code but 1, where Canada's metadata lists 7-digit local numbers: a complete
    NANP number always has 11 digits in all. Local-only lengths are left out.
    """
    main = phonenumbers.region_code_for_country_code(cc)
    if main == phonenumbers.UNKNOWN_REGION:
        return frozenset()
    if main == phonenumbers.REGION_CODE_FOR_NON_GEO_ENTITY:
        metadata = PhoneMetadata.metadata_for_nongeo_region(cc)
    else:
        metadata = PhoneMetadata.metadata_for_region(main)
    lengths = {n for n in metadata.general_desc.possible_length if n > 0} if metadata is not None else set()
    return frozenset(len(str(cc)) + n for n in lengths)


def mask(value: object) -> str:
    """``value`` for a log line or an error: every digit but the last 4 becomes '*'.

    ``+972501234567`` -> ``+********4567``; a value with fewer than 5 digits is masked entirely.
    Never raises; ``None`` gives ``<none>``.
    """
    if value is None:
        return "<none>"
    try:
        text = value if isinstance(value, str) else str(value)
    except Exception:  # a broken __str__ must not break a log line
        return "<unprintable>"
    digits = sum(ch.isdigit() for ch in text)
    keep = 4 if digits >= 5 else 0
    out = []
    for ch in reversed(text):
        if ch.isdigit():
            if keep:
                keep -= 1
            else:
                ch = "*"
        out.append(ch)
    return "".join(reversed(out))


class _Refused(NamedTuple):
    """A cached refusal: the message, so each call raises a fresh InvalidIdentifier."""

    message: str


def normalize_phone(raw: str, default_region: str = "IL") -> str:
    """The E.164 spelling (``+972501234567``) of a phone number typed by a person.

    ``default_region`` (ISO 3166 code) reads numbers without a country code. Digits without '+'
    whose regional reading is impossible are read as international (``5566996679626``). The
    subscriber rules of ``convkey.phone_rules`` then give one spelling per subscriber.
    Raises InvalidIdentifier (SQLSTATE 22023) for anything else: empty, letters, an extension,
    a WhatsApp id (``...@lid``, ``...@s.whatsapp.net``), or a length the calling code never has.
    Results are cached per (raw, default_region).
    """
    if not isinstance(raw, str):
        raise InvalidIdentifier(f"raw: expected a phone number as str, got {type(raw).__name__}")
    if len(raw) > MAX_RAW_LENGTH:
        raise InvalidIdentifier(f"raw: longer than {MAX_RAW_LENGTH} characters")
    if not isinstance(default_region, str):
        raise InvalidIdentifier("default_region: expected a region code as str, such as 'IL'")
    result = _normalize_cached(raw, default_region)
    if isinstance(result, _Refused):
        raise InvalidIdentifier(result.message)
    return result


@functools.lru_cache(maxsize=CACHE_SIZE)
def _normalize_cached(raw: str, default_region: str) -> str | _Refused:
    if default_region not in phonenumbers.SUPPORTED_REGIONS:
        return _Refused(f"default_region: {default_region!r} is not a region phonenumbers knows")
    text = raw.strip()
    if "@" in text:
        return _Refused(
            f"raw: {mask(raw)!r} is a WhatsApp id, not a phone number (a LID is never a phone); "
            "parse it with convkey.parse_wa_id"
        )
    if any(ch.isalpha() for ch in text):
        return _Refused(f"raw: {mask(raw)!r} holds letters (an extension, a vanity number?)")
    e164 = _reading(text, default_region)
    if e164 is None and _INTERNATIONAL_WITHOUT_PLUS.fullmatch(text):
        e164 = _reading("+" + text, default_region)
    if e164 is None:
        return _Refused(f"raw: {mask(raw)!r} is not a possible phone number")
    return e164


def _reading(text: str, region: str) -> str | None:
    """The canonical E.164 of one reading of ``text``, or None when that reading is impossible."""
    try:
        number = phonenumbers.parse(text, region)
    except NumberParseException:
        return None
    if number.extension:
        return None
    # phonenumbers can read its own E.164 output differently ('01624 75670' in IM gives
    # +440162475670, which reads back as +44162475670): re-read until the spelling settles, so
    # that normalize_phone(normalize_phone(x)) == normalize_phone(x).
    e164 = ""
    for _ in range(_MAX_REREADS):
        previous = e164
        e164 = "+" + canonical_digits(phonenumbers.format_number(number, PhoneNumberFormat.E164)[1:])
        if e164 == previous or e164 == text:  # text already spelled so: it would read back the same
            break
        try:
            number = phonenumbers.parse(e164)
        except NumberParseException:
            return None
    else:
        return None
    # is_possible_number also admits local-only lengths (a number missing its area code):
    # the total-length check is the one the SQL side makes too.
    if not phonenumbers.is_possible_number(number):
        return None
    if len(e164) - 1 not in possible_total_lengths(number.country_code):
        return None
    return e164


normalize_phone.cache_info = _normalize_cached.cache_info  # type: ignore[attr-defined]
normalize_phone.cache_clear = _normalize_cached.cache_clear  # type: ignore[attr-defined]


def format_for_display(e164: str) -> str:
    """``+972501234567`` -> ``+972 50-123-4567``; input phonenumbers cannot read comes back unchanged."""
    try:
        number = phonenumbers.parse(e164, None)
    except (NumberParseException, TypeError):
        return e164
    return phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL)
