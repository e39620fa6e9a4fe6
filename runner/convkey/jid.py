"""The WhatsApp identifier grammar on the runner's side, mirroring ``convkey.parse_wa_id``.

The database is the authority; the runner needs the same reading to classify Baileys keys
(which side of a LID/phone pair is which, groups and status to skip) without a round trip.
Both sides are tested against the same vector file, ``tests/data/wa_ids.csv``.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from .errors import InvalidIdentifier, ValueTooLong
from .phone import canonical_digits, mask, possible_total_lengths

PHONE_SERVERS = frozenset({"s.whatsapp.net", "c.us", "hosted"})
LID_SERVERS = frozenset({"lid", "hosted.lid"})
CUSTOMER_KINDS = frozenset({"pn", "lid", "bsuid"})

_USER = re.compile(r"([0-9]{1,32})(?:[._]([0-9]{1,3}))?(?::([0-9]{1,3}))?", re.ASCII)
_BSUID_PREFIX = re.compile(r"[a-z]{2}\.", re.ASCII)
_BSUID = re.compile(r"[a-z]{2}(\.ent)?\.[0-9]{1,64}", re.ASCII)
_E164 = re.compile(r"\+?[1-9][0-9]{0,14}", re.ASCII)
_OTHER_USER = re.compile(r"[0-9a-z._:-]{1,128}", re.ASCII)
# ASCII letters only: str.lower() would turn the Kelvin sign into "k" (as a locale-aware SQL lower() would)
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


class WaId(NamedTuple):
    kind: str
    jid_user: str
    device: int | None
    phone_e164: str | None
    lid: str | None


def international_phone(digits: str, param: str = "raw") -> str:
    """The SQL phone rule: international digits (optional '+'), subscriber rules, possible length."""
    text = digits.strip(" \t\r\n")
    if not _E164.fullmatch(text):
        raise InvalidIdentifier(f"{param} is not an international phone number: {mask(digits)}")
    canon = canonical_digits(text.lstrip("+"))
    for width in (1, 2, 3):
        lengths = possible_total_lengths(int(canon[:width]))
        if lengths:
            if len(canon) in lengths:
                return "+" + canon
            break
    raise InvalidIdentifier(f"{param} cannot be a phone number: {mask(digits)}")


def parse_wa_id(raw: str | None, param: str = "raw") -> WaId:
    """Read a WhatsApp identifier like ``convkey.parse_wa_id``; InvalidIdentifier when SQL raises."""
    if raw is None:
        raise InvalidIdentifier(f"{param} must not be None")
    if len(raw) > 256:
        raise ValueTooLong(f"{param} is longer than 256 characters ({len(raw)})")
    text = raw.strip(" \t\r\n")
    # like SQL lower(... COLLATE "C"); str.lower() is the same on ASCII text, and 20 times faster
    text = text.lower() if text.isascii() else text.translate(_ASCII_LOWER)
    if "@" not in text:
        if _BSUID_PREFIX.match(text):
            if not _BSUID.fullmatch(text):
                raise InvalidIdentifier(f"{param} is not a business-scoped user id: {mask(raw)}")
            return WaId("bsuid", text.upper(), None, None, None)
        if text == "":
            raise InvalidIdentifier(f"{param} is empty")
        return WaId("pn", text.lstrip("+"), None, international_phone(text, param), None)
    user, server = text.split("@", 1)
    if server in PHONE_SERVERS or server in LID_SERVERS:
        m = _USER.fullmatch(user)
        if not m:
            raise InvalidIdentifier(f"{param} is not a valid WhatsApp user JID: {mask(raw)}")
        device = int(m.group(3)) if m.group(3) is not None else None
        if server in LID_SERVERS:
            return WaId("lid", m.group(1), device, None, m.group(1))
        return WaId("pn", m.group(1), device, international_phone(m.group(1), param), None)
    if not _OTHER_USER.fullmatch(user):
        raise InvalidIdentifier(f"{param} has an empty or malformed user part: {mask(raw)}")
    kind = {"g.us": "group", "newsletter": "newsletter", "bot": "bot"}.get(server)
    if server == "broadcast":
        kind = "status" if user == "status" else "broadcast"
    if kind is None:
        raise InvalidIdentifier(f"{param} has an unknown WhatsApp server: {mask(raw)}")
    return WaId(kind, user, None, None, None)
