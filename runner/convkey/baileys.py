"""Reading Baileys 7 message keys: who the customer is, and which LID/phone link the key reveals.

Baileys 7 addresses a 1:1 chat by ``remoteJid`` and, since LIDs, puts the other form of the same
person in ``remoteJidAlt`` (``addressingMode`` says which is which). In groups the sender is
``participant`` / ``participantAlt``. A quoted reply's ``contextInfo.participant`` is the quoted
message's author, not the sender: it is never read here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import InvalidIdentifier
from .jid import CUSTOMER_KINDS, parse_wa_id


@dataclass(frozen=True)
class KeyIdentities:
    """What one message key says about the customer.

    ``customer_wa_id``: the identifier of the 1:1 customer (None for chats that are not a
    customer: groups, status, broadcasts, newsletters, bots). ``link``: a pair of identifiers
    of one person the key reveals (LID and phone), or None. ``skip_reason``: why there is no
    customer conversation (the chat kind, or 'malformed').
    """

    chat_kind: str
    customer_wa_id: str | None
    link: tuple[str, str] | None
    from_me: bool
    message_id: str | None
    skip_reason: str | None = None


def _kind(raw: Any) -> str | None:
    if not isinstance(raw, str) or not raw:
        return None
    try:
        return parse_wa_id(raw).kind
    except InvalidIdentifier:
        return None


def _pair(a: Any, b: Any) -> tuple[str, str] | None:
    """(a, b) when both name a person (LID, phone or BSUID) and are of different kinds."""
    ka, kb = _kind(a), _kind(b)
    if ka in CUSTOMER_KINDS and kb in CUSTOMER_KINDS and ka != kb:
        return (a, b)
    return None


def identities_from_key(key: dict[str, Any]) -> KeyIdentities:
    """Extract the customer and the learned link from a Baileys 7 message key."""
    remote = key.get("remoteJid")
    from_me = bool(key.get("fromMe"))
    message_id = key.get("id")
    kind = _kind(remote)
    if kind is None:
        return KeyIdentities("malformed", None, None, from_me, message_id, "malformed")
    if kind in CUSTOMER_KINDS:
        return KeyIdentities(kind, remote, _pair(remote, key.get("remoteJidAlt")), from_me, message_id)
    # a group (or status) message: no customer conversation, but the sender's LID/phone pair is
    # still worth learning
    link = _pair(key.get("participant"), key.get("participantAlt"))
    return KeyIdentities(kind, None, link, from_me, message_id, kind)
