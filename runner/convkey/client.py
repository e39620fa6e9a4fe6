"""``convkey.Client``: the Python face of the SQL API, one method per function.

It takes raw human input: phones typed by people are normalized here (``phonenumbers``), WhatsApp
JIDs and BSUIDs pass through untouched (the database parses them), and SQLSTATEs become the
runner's exceptions (``convkey.errors``). Each call is one round trip and one transaction.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from .connector import Connector
from .embedded import resolve_dsn
from .jid import parse_wa_id
from .phone import normalize_phone

_BSUID = re.compile(r"^\s*[A-Za-z]{2}(\.ENT)?\.[0-9]+\s*$", re.IGNORECASE)


class Client:
    """Pool-backed client. ``Client(dsn)``; without a DSN, the runner's DSN resolution applies."""

    def __init__(
        self,
        dsn: str | None = None,
        *,
        default_region: str = "IL",
        min_size: int = 1,
        max_size: int = 10,
        connector: Connector | None = None,
    ):
        self.default_region = default_region
        self.connector = connector or Connector(resolve_dsn(dsn), min_size=min_size, max_size=max_size)

    def close(self) -> None:
        self.connector.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- input normalization -----------------------------------------------------------------
    def wa_id(self, raw: str | None) -> str | None:
        """A customer identifier as SQL wants it: JIDs and BSUIDs as given, human phones as E.164."""
        if raw is None or "@" in raw or _BSUID.match(raw):
            return raw
        return normalize_phone(raw, self.default_region)

    def phone(self, raw: str | None) -> str | None:
        return None if raw is None else normalize_phone(raw, self.default_region)

    @staticmethod
    def _with_alt(wa_id: str | None, alt: str | None, phone: str | None) -> tuple[str | None, str | None]:
        """Fold a LID/phone JID pair into (the LID, its phone) so one call both records and links."""
        if not alt or not wa_id or phone:
            return wa_id, phone
        a, b = parse_wa_id(wa_id, "customer_wa_id"), parse_wa_id(alt, "alt_wa_id")
        if a.kind == "lid" and b.kind == "pn":
            return wa_id, b.phone_e164
        if a.kind == "pn" and b.kind == "lid":
            return alt, a.phone_e164
        return wa_id, phone

    # --- the SQL API -------------------------------------------------------------------------
    def get_or_create_conversation(
        self,
        business_id: int,
        customer_wa_id: str | None,
        *,
        provider: str = "baileys",
        lead_id: int | None = None,
        phone: str | None = None,
    ) -> dict[str, Any]:
        return self.connector.one("get_or_create_conversation", {
            "business_id": business_id, "customer_wa_id": self.wa_id(customer_wa_id), "provider": provider,
            "lead_id": lead_id, "phone_e164": self.phone(phone),
        })

    def record_message(
        self,
        business_id: int,
        customer_wa_id: str | None,
        direction: str,
        provider_message_id: str,
        body: str | None = None,
        *,
        provider: str = "baileys",
        lead_id: int | None = None,
        phone: str | None = None,
        sent_at: dt.datetime | None = None,
        source: str | None = None,
        alt_wa_id: str | None = None,
        push_name: str | None = None,
    ) -> dict[str, Any]:
        """Store one message (idempotent by provider_message_id). ``alt_wa_id`` is the other form of
        the customer's identifier when the provider reveals it (Baileys ``key.remoteJidAlt``): a LID
        and phone pair is recorded and linked in the same single call. ``push_name`` (Baileys
        ``pushName``) is stored on the conversation by that same call, when the message is new."""
        customer_wa_id, phone = self._with_alt(customer_wa_id, alt_wa_id, phone)
        params = {
            "business_id": business_id, "customer_wa_id": self.wa_id(customer_wa_id), "direction": direction,
            "provider_message_id": provider_message_id, "body": body, "provider": provider, "lead_id": lead_id,
            "phone_e164": self.phone(phone), "sent_at": sent_at or dt.datetime.now(dt.timezone.utc),
            "source": source,
        }
        if push_name is None:
            return self.connector.one("record_message", params)
        return self.connector.one("record_message_with_push_name", {**params, "push_name": push_name})

    def update_session_activity(
        self,
        business_id: int,
        customer_wa_id: str | None,
        direction: str = "in",
        *,
        provider: str = "baileys",
        lead_id: int | None = None,
        phone: str | None = None,
        at: dt.datetime | None = None,
    ) -> int:
        return self.connector.one("update_session_activity", {
            "business_id": business_id, "customer_wa_id": self.wa_id(customer_wa_id), "direction": direction,
            "provider": provider, "lead_id": lead_id, "phone_e164": self.phone(phone),
            "at": at or dt.datetime.now(dt.timezone.utc),
        })["conversation_id"]

    def close_session(self, business_id: int, conversation_id: int, summary: str | None = None) -> None:
        self.connector.execute("close_session", {
            "business_id": business_id, "conversation_id": conversation_id, "summary": summary})

    def idle_sessions(self, business_id: int, idle: dt.timedelta = dt.timedelta(minutes=5)) -> list[int]:
        rows = self.connector.execute("idle_sessions", {"business_id": business_id, "idle": idle})
        return [r["conversation_id"] for r in rows]

    def resolve_conversation_id(self, business_id: int, conversation_id: int) -> int:
        return self.connector.one("resolve_conversation_id", {
            "business_id": business_id, "conversation_id": conversation_id})["conversation_id"]

    def canonical_key(
        self,
        business_id: int,
        *,
        lead_id: int | None = None,
        phone: str | None = None,
        lid: str | None = None,
        bsuid: str | None = None,
    ) -> str:
        return self.connector.one("canonical_key", {
            "business_id": business_id, "lead_id": lead_id, "phone_e164": self.phone(phone), "lid": lid,
            "bsuid": bsuid})["canonical_key"]

    def parse_wa_id(self, raw: str) -> dict[str, Any]:
        return self.connector.one("parse_wa_id", {"raw": raw})

    # --- the identity graph ------------------------------------------------------------------
    def link_identity(self, business_id: int, wa_id: str, other: str, source: str = "message") -> int | None:
        return self.connector.one("link_identity", {
            "business_id": business_id, "wa_id": self.wa_id(wa_id), "other": self.wa_id(other),
            "source": source})["conversation_id"]

    def assign_lead(self, business_id: int, conversation_id: int, lead_id: int, lead_name: str | None = None) -> int:
        return self.connector.one("assign_lead", {
            "business_id": business_id, "conversation_id": conversation_id, "lead_id": lead_id,
            "lead_name": lead_name})["conversation_id"]

    def merge_leads(self, business_id: int, from_lead_id: int, into_lead_id: int) -> int | None:
        return self.connector.one("merge_leads", {
            "business_id": business_id, "from_lead_id": from_lead_id, "into_lead_id": into_lead_id,
        })["conversation_id"]

    def merge_conversations(self, business_id: int, primary_id: int, duplicate_id: int, reason: str = "manual") -> int:
        return self.connector.one("merge_conversations", {
            "business_id": business_id, "primary_id": primary_id, "duplicate_id": duplicate_id,
            "reason": reason})["conversation_id"]

    def unmerge(self, business_id: int, merge_id: int) -> int:
        return self.connector.one("unmerge", {"business_id": business_id, "merge_id": merge_id})["conversation_id"]

    def set_push_name(self, business_id: int, conversation_id: int, push_name: str | None) -> None:
        """Store the customer's WhatsApp profile name (Baileys ``pushName``); a blank name stores nothing."""
        self.connector.execute("set_push_name", {
            "business_id": business_id, "conversation_id": conversation_id, "push_name": push_name})

    # --- threads and health ------------------------------------------------------------------
    def display_name(
        self,
        lead_name: str | None = None,
        push_name: str | None = None,
        name: str | None = None,
        peer_name: str | None = None,
        phone: str | None = None,
        fallback: str = "ללא שם",
    ) -> str | None:
        """The name to show, by convkey.display_name's rules (a phone comes back as ``+digits``:
        format it for people with ``convkey.phone.format_for_display``)."""
        return self.connector.one("display_name", {
            "lead_name": lead_name, "push_name": push_name, "name": name, "peer_name": peer_name,
            "phone": phone, "fallback": fallback})["display_name"]

    def mark_read(self, business_id: int, conversation_id: int) -> None:
        self.connector.execute("mark_read", {"business_id": business_id, "conversation_id": conversation_id})

    def conversation_threads(self, business_id: int, limit: int = 50) -> list[dict[str, Any]]:
        """The business's live threads, newest first (rows of the convkey.conversation_thread view)."""
        return self.connector.execute("conversation_threads", {"business_id": business_id, "limit": limit})

    def dedup_health(self, business_id: int | None = None) -> list[dict[str, Any]]:
        """Rows of the convkey.dedup_health view, one per business (only ``business_id`` if given)."""
        return self.connector.execute("dedup_health", {"business_id": business_id})
