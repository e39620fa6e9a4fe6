"""``convkey ingest``: replay WhatsApp events into convkey, one function call per event.

The input holds one JSON object per line (JSON Lines); a file holding one JSON array works too.
Blank lines are ignored. Two kinds of line are understood:

**Baileys 7 messages** (``--format baileys``), as a ``messages.upsert`` handler receives them::

    {"key": {"remoteJid": "82399031480511@lid", "remoteJidAlt": "972501234567@s.whatsapp.net",
             "addressingMode": "lid", "fromMe": false, "id": "3EB0C431C26A1D5B"},
     "pushName": "Dana", "messageTimestamp": 1735725600, "message": {"conversation": "hi"}}

- A whole upsert payload on one line, ``{"messages": [...], "type": "notify"}``, is read as its
  messages.
- The customer and the LID/phone link the key reveals come from
  ``convkey.baileys.identities_from_key`` (never from a quoted reply's ``contextInfo.participant``).
  ``fromMe`` gives direction ``out``, else ``in``. A revealed link is stored by the same
  ``record_message`` call (one round trip, as in a webhook).
- ``messageTimestamp`` is unix seconds: a number, a string, or a protobuf Long
  (``{"low": .., "high": ..}``); without one the message is stamped now.
- The body is ``message.conversation`` or ``message.extendedTextMessage.text``; other content
  gets a marker such as ``[imageMessage]`` (followed by the caption when there is one);
  no content gives NULL. Wrappers (ephemeral, view once, document with caption) are opened.
- Skipped and counted by reason: chats that are not a customer (``group``, ``status``,
  ``broadcast``, ``newsletter``, ``bot``; a group sender's ``participant``/``participantAlt``
  pair is still learned with ``link_identity``, source ``message``) and ``protocol`` messages
  (deletes, edits, history-sync notices: not a message of the thread).
- The ``pushName`` of a newly stored incoming message is kept with ``convkey.set_push_name``,
  in the same statement (one transaction) as ``record_message``: a crash never keeps the message
  and loses its name, so re-running an interrupted replay ends with the names of an uninterrupted one.

**convkey's own events** (``--format jsonl``); ``business_id`` defaults to ``--business-id``::

    {"type": "message", "wa_id": "...", "direction": "in", "id": "wamid.1", "body": "hi",
     "sent_at": "2025-01-01T10:00:00+02:00", "lead_id": 7, "phone": "+972...", "alt_wa_id": "...@lid",
     "push_name": "Dana", "provider": "baileys", "source": "human", "business_id": 1}
    {"type": "link", "wa_id": "...@lid", "other": "...@s.whatsapp.net", "source": "lid-mapping"}
    {"type": "assign_lead", "wa_id": "..." | "conversation_id": 12, "lead_id": 7, "lead_name": "Dana Levi"}
    {"type": "merge_leads", "from_lead_id": 7, "into_lead_id": 9}

A message needs ``id``, ``direction`` and one of ``wa_id``/``phone``/``lead_id``; the other fields
are optional (``sent_at`` without an offset is UTC; ``source`` of a link defaults to ``message``).
``assign_lead`` with ``wa_id`` finds (or creates) the person's conversation first.

Without ``--format`` each line is read by its shape (``key`` or ``messages``: Baileys, ``type``:
convkey event), so a Baileys capture can carry ``lid-mapping`` links and CRM actions in their
place; the demo replays such a mixed stream.

**Behaviour.** Re-running a file changes nothing (a stored message id gives ``inserted = false``,
counted as a duplicate). A bad line (not JSON, a missing or mistyped field, an identifier or value
the database refuses with 22xxx, an unknown conversation) is reported on stderr with its line
number and skipped. Errors that are not the input's fault (connection lost, an unexpected
SQLSTATE) stop the replay: exit 2, after the summary of what was done. Otherwise the exit status
is 0, bad lines or not, so pipelines read the counts from the summary (``--json``). Identifiers in
messages are masked (``convkey.phone.mask``).

**Workers.** ``--workers N`` applies events on N threads and keeps each person's events in file
order on one thread. A person is what the file itself ties together: identifiers named by one
event (a LID and its ``remoteJidAlt``, a link, a JID and the lead assigned to it, two merged
leads) join one group, and an event that joins groups applied by different threads waits until
those threads have caught up. Links known only to the database (from earlier runs) are not seen
by the grouping; the database stays race-safe, but the order of such a person's events may then
differ from the file's.
"""

from __future__ import annotations

import datetime as dt
import json
import queue
import re
import sys
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import IO, Any

import psycopg

from .baileys import identities_from_key
from .client import Client
from .errors import ConvkeyError, InvalidIdentifier
from .jid import parse_wa_id
from .phone import mask, normalize_phone
from .progress import Progress

FORMATS = ("auto", "baileys", "jsonl")
EVENT_TYPES = ("message", "link", "assign_lead", "merge_leads")
MAX_LISTED_BAD_LINES = 100
_WRAPPERS = ("ephemeralMessage", "viewOnceMessage", "viewOnceMessageV2", "viewOnceMessageV2Extension",
             "documentWithCaptionMessage")
_DIGITS = re.compile(r"[0-9]{1,20}", re.ASCII)
_NOT_CONTENT = frozenset({"messageContextInfo", "senderKeyDistributionMessage"})


class BadLine(ValueError):
    """The line cannot be replayed; the message says why (identifiers masked)."""


class IngestAborted(ConvkeyError):
    """The replay stopped on an error that is not the input's fault; ``summary`` is what was done."""

    def __init__(self, message: str, summary: "Summary"):
        super().__init__(message)
        self.summary = summary


@dataclass(frozen=True)
class Event:
    """One database call a line asks for. ``keys`` name the identities it touches (``lid:...``,
    ``phone:+...``, ``lead:N``): events sharing one, directly or through others, are one person's."""

    line: int
    kind: str
    business_id: int
    args: dict[str, Any]
    keys: tuple[str, ...]
    push_name: str | None = None
    ends_line: bool = True


@dataclass
class Summary:
    lines_read: int = 0
    messages_inserted: int = 0
    duplicates: int = 0
    links_learned: int = 0
    leads_assigned: int = 0
    leads_merged: int = 0
    push_names_stored: int = 0
    skipped: Counter = field(default_factory=Counter)
    bad_line_numbers: list[int] = field(default_factory=list)
    seconds: float = 0.0
    aborted: bool = False

    def add(self, other: "Summary") -> None:
        for name in ("lines_read", "messages_inserted", "duplicates", "links_learned", "leads_assigned",
                     "leads_merged", "push_names_stored"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.skipped.update(other.skipped)
        self.bad_line_numbers.extend(other.bad_line_numbers)

    @property
    def bad_lines(self) -> int:
        return len(self.bad_line_numbers)

    def as_dict(self) -> dict[str, Any]:
        return {
            "lines_read": self.lines_read, "messages_inserted": self.messages_inserted,
            "duplicates": self.duplicates, "links_learned": self.links_learned,
            "leads_assigned": self.leads_assigned, "leads_merged": self.leads_merged,
            "push_names_stored": self.push_names_stored, "skipped": dict(sorted(self.skipped.items())),
            "bad_lines": self.bad_lines, "bad_line_numbers": sorted(self.bad_line_numbers)[:MAX_LISTED_BAD_LINES],
            "seconds": round(self.seconds, 3), "aborted": self.aborted,
        }

    def text(self) -> str:
        rate = self.lines_read / self.seconds if self.seconds > 0 else 0.0
        head = "aborted after" if self.aborted else "read"
        skipped = ", ".join(f"{reason} {n}" for reason, n in sorted(self.skipped.items()))
        bad = sorted(self.bad_line_numbers)
        listed = ", ".join(map(str, bad[:20])) + (", ..." if len(bad) > 20 else "")
        rows = [
            ("messages inserted", self.messages_inserted, ""),
            ("duplicates (retries)", self.duplicates, ""),
            ("links learned", self.links_learned, ""),
            ("leads assigned", self.leads_assigned, ""),
            ("leads merged", self.leads_merged, ""),
            ("push names stored", self.push_names_stored, ""),
            ("skipped", sum(self.skipped.values()), skipped),
            ("bad lines", self.bad_lines, f"lines {listed}" if bad else ""),
        ]
        out = [f"ingest: {head} {self.lines_read:,} lines in {self.seconds:.1f} s ({rate:,.0f} lines/s)"]
        out += [f"  {label:<22}{n:>8,}   {note}".rstrip() for label, n, note in rows]
        return "\n".join(out)


# --- reading lines ------------------------------------------------------------------------------
def _text(obj: dict[str, Any], name: str, *, required: bool = False, where: str = "") -> str | None:
    value = obj.get(name)
    if value is None or value == "":
        if required:
            raise BadLine(f"missing field {where}{name}")
        return None
    if not isinstance(value, str):
        raise BadLine(f"field {where}{name} must be a string, got {type(value).__name__}")
    return value


def _int(obj: dict[str, Any], name: str, *, required: bool = False) -> int | None:
    value = obj.get(name)
    if value is None:
        if required:
            raise BadLine(f"missing field {name}")
        return None
    if isinstance(value, str) and _DIGITS.fullmatch(value.strip()):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadLine(f"field {name} must be an integer, got {type(value).__name__}")
    if not -(2**63) <= value < 2**63:
        raise BadLine(f"field {name} is out of range")
    return value


def _timestamp(value: Any) -> dt.datetime | None:
    """A Baileys messageTimestamp: unix seconds as a number, a digit string or a protobuf Long."""
    if value is None or value == "":
        return None
    if isinstance(value, dict) and "low" in value:
        low, high = value.get("low"), value.get("high", 0)
        if not isinstance(low, int) or not isinstance(high, int):
            raise BadLine("messageTimestamp: low and high must be integers")
        value = (low & 0xFFFFFFFF) + (high << 32)
    elif isinstance(value, str) and _DIGITS.fullmatch(value.strip()):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadLine(f"messageTimestamp must be unix seconds, got {type(value).__name__}")
    try:
        return dt.datetime.fromtimestamp(value, dt.timezone.utc)
    except (OverflowError, OSError, ValueError) as exc:
        raise BadLine("messageTimestamp is out of range") from exc


def _iso_time(value: str | None) -> dt.datetime | None:
    if value is None:
        return None
    try:
        at = dt.datetime.fromisoformat(value)
    except ValueError as exc:
        raise BadLine("sent_at is not an ISO 8601 time") from exc
    return at if at.tzinfo else at.replace(tzinfo=dt.timezone.utc)


def message_body(message: Any) -> tuple[str | None, str]:
    """(body, content type) of a Baileys ``message`` object: the text of a text message, a short
    ``[type]`` marker (with the caption) for other content, None when there is no content."""
    for _ in range(4):  # open wrappers: {"ephemeralMessage": {"message": {...}}}
        if not isinstance(message, dict):
            return None, ""
        inner = next((message[w].get("message") for w in _WRAPPERS if isinstance(message.get(w), dict)), None)
        if inner is None:
            break
        message = inner
    if not isinstance(message, dict):
        return None, ""
    if isinstance(message.get("conversation"), str):
        return message["conversation"], "conversation"
    ext = message.get("extendedTextMessage")
    if isinstance(ext, dict) and isinstance(ext.get("text"), str):
        return ext["text"], "extendedTextMessage"
    kind = next((k for k in message if k not in _NOT_CONTENT), None)
    if kind is None:
        return None, ""
    content = message[kind]
    caption = content.get("caption") if isinstance(content, dict) else None
    return (f"[{kind}] {caption}" if isinstance(caption, str) and caption else f"[{kind}]"), kind


def _describe(exc: BaseException) -> str:
    """``Type: first line of the message``, digits masked: for errors that are not the input's."""
    diag = getattr(exc, "diag", None)
    text = (diag.message_primary if diag is not None else None) or str(exc)
    return f"{type(exc).__name__}: {mask(text.strip().splitlines()[0] if text.strip() else '')}"


def _key(raw: Any, region: str = "IL") -> str:
    """The identity an identifier names (``phone:+972...``, ``lid:...``), however it is spelled."""
    try:
        wa = parse_wa_id(raw)
        return f"phone:{wa.phone_e164}" if wa.phone_e164 else f"{wa.kind}:{wa.lid or wa.jid_user}"
    except InvalidIdentifier:
        pass
    try:
        return f"phone:{normalize_phone(raw, region)}"
    except InvalidIdentifier:
        return f"raw:{raw}"


class _People:
    """Which worker applies whose events: a union-find over the identities events name together
    (a LID and its phone, a lead and a JID), each group on one worker, so one person's events keep
    the file's order whatever identifier they arrive under. Used by the reading thread only."""

    def __init__(self, workers: int):
        self.workers = workers
        self.parent: dict[str, str] = {}
        self.worker: dict[str, int] = {}  # root -> worker

    def _find(self, key: str) -> str:
        parent = self.parent.setdefault(key, key)
        while parent != key:
            grand = self.parent[parent]
            self.parent[key] = grand
            key, parent = parent, grand
        return key

    def place(self, keys: tuple[str, ...]) -> tuple[int, list[int]]:
        """(the worker for an event naming ``keys``, the other workers that must finish first
        because the event joins groups they were applying)."""
        roots = sorted({self._find(k) for k in keys})
        busy = sorted({self.worker[r] for r in roots if r in self.worker})
        target = busy[0] if busy else zlib.crc32(roots[0].encode()) % self.workers
        for root in roots[1:]:
            self.parent[root] = roots[0]
            self.worker.pop(root, None)
        self.worker[roots[0]] = target
        return target, busy[1:]


def _link_args(wa_id: str, other: str | None, phone: str | None) -> tuple[str | None, bool]:
    """(alt_wa_id for record_message, whether a separate link call is needed) for an optional pair:
    a LID/phone JID pair rides along in record_message; other pairs need link_identity."""
    if other is None:
        return None, False
    try:
        kinds = {parse_wa_id(wa_id).kind, parse_wa_id(other).kind}
    except InvalidIdentifier:
        return None, True  # let the database judge the pair
    if kinds == {"lid", "pn"} and phone is None:
        return other, False
    return None, True


class Ingest:
    """Parse lines into events and apply them with one Client; ``run`` returns the Summary."""

    def __init__(
        self,
        client: Client,
        *,
        fmt: str = "auto",
        business_id: int = 1,
        workers: int = 1,
        interleave: Callable[[Event], bool] | None = None,
        progress: Progress | None = None,
    ):
        if fmt not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}")
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.client = client
        self.fmt = fmt
        self.business_id = business_id
        self.workers = workers
        self.interleave = interleave
        self.progress = progress or Progress(enabled=False)
        self._shown = 0
        self._say_lock = threading.Lock()
        self._names: dict[tuple[int, int], str] = {}
        self._names_lock = threading.Lock()
        self._failure: IngestAborted | None = None

    # --- parsing ---------------------------------------------------------------------------------
    def parse(self, obj: Any, line: int) -> tuple[list[Event], list[str]]:
        """The events of one parsed line and the reasons it (or part of it) was skipped."""
        if not isinstance(obj, dict):
            raise BadLine(f"expected a JSON object, got {type(obj).__name__}")
        if "type" in obj and "key" not in obj and "messages" not in obj:
            if self.fmt == "baileys":
                raise BadLine("a convkey event in a --format baileys file")
            return self._convkey_event(obj, line), []
        if self.fmt == "jsonl":
            raise BadLine("missing field type (message, link, assign_lead or merge_leads)")
        if "messages" in obj:
            if not isinstance(obj["messages"], list):
                raise BadLine("field messages must be a list")
            events: list[Event] = []
            skips: list[str] = []
            for i, message in enumerate(obj["messages"]):
                if not isinstance(message, dict):
                    raise BadLine(f"messages[{i}] is not an object")
                e, s = self._baileys_message(message, line)
                events += e
                skips += s
            return events, skips
        return self._baileys_message(obj, line)

    def _baileys_message(self, msg: dict[str, Any], line: int) -> tuple[list[Event], list[str]]:
        key = msg.get("key")
        if not isinstance(key, dict):
            raise BadLine("missing field key")
        remote = _text(key, "remoteJid", required=True, where="key.")
        mid = _text(key, "id", required=True, where="key.")
        ids = identities_from_key(key)
        if ids.skip_reason == "malformed":
            try:
                parse_wa_id(remote, "key.remoteJid")
            except InvalidIdentifier as exc:
                raise BadLine(str(exc)) from exc
        if ids.skip_reason:
            # not a customer chat; a group sender's LID/phone pair is still worth learning
            link = [self._link(line, ids.link[0], ids.link[1], "message")] if ids.link else []
            return link, [ids.skip_reason]
        body, kind = message_body(msg.get("message"))
        if kind == "protocolMessage":
            return [], ["protocol"]
        direction = "out" if ids.from_me else "in"
        push_name = _text(msg, "pushName") if direction == "in" else None
        other = ids.link[1] if ids.link else None
        return self._message(line, self.business_id, ids.customer_wa_id, other, push_name, {
            "direction": direction, "id": mid, "body": body, "sent_at": _timestamp(msg.get("messageTimestamp")),
        }), []

    def _convkey_event(self, obj: dict[str, Any], line: int) -> list[Event]:
        kind = obj.get("type")
        if kind not in EVENT_TYPES:
            raise BadLine(f"unknown event type (expected {', '.join(EVENT_TYPES)})")
        business = _int(obj, "business_id")
        business = self.business_id if business is None else business
        if kind == "message":
            wa_id, phone, lead = _text(obj, "wa_id"), _text(obj, "phone"), _int(obj, "lead_id")
            if wa_id is None and phone is None and lead is None:
                raise BadLine("missing field wa_id (or phone, or lead_id)")
            direction = _text(obj, "direction", required=True)
            push_name = _text(obj, "push_name") if direction.lower() in ("in", "inbound") else None
            return self._message(line, business, wa_id, _text(obj, "alt_wa_id"), push_name, {
                "direction": direction, "id": _text(obj, "id", required=True), "body": _text(obj, "body"),
                "sent_at": _iso_time(_text(obj, "sent_at")), "lead_id": lead, "phone": phone,
                "provider": _text(obj, "provider") or "baileys", "source": _text(obj, "source"),
            })
        if kind == "link":
            return [self._link(line, _text(obj, "wa_id", required=True), _text(obj, "other", required=True),
                               _text(obj, "source") or "message", business)]
        if kind == "assign_lead":
            wa_id, conv = _text(obj, "wa_id"), _int(obj, "conversation_id")
            if (wa_id is None) == (conv is None):
                raise BadLine("assign_lead needs exactly one of wa_id and conversation_id")
            args = {"wa_id": wa_id, "conversation_id": conv, "lead_id": _int(obj, "lead_id", required=True),
                    "lead_name": _text(obj, "lead_name")}
            who = self._key(wa_id) if wa_id else f"conversation:{conv}"
            return [Event(line, kind, business, args, (who, f"lead:{args['lead_id']}"))]
        args = {"from_lead_id": _int(obj, "from_lead_id", required=True),
                "into_lead_id": _int(obj, "into_lead_id", required=True)}
        return [Event(line, kind, business, args, (f"lead:{args['from_lead_id']}", f"lead:{args['into_lead_id']}"))]

    def _message(self, line: int, business: int, wa_id: str | None, other: str | None, push_name: str | None,
                 args: dict[str, Any]) -> list[Event]:
        alt, separate = _link_args(wa_id, other, args.get("phone")) if wa_id else (None, other is not None)
        keys = tuple(self._key(x) for x in (wa_id, other, args.get("phone")) if x is not None)
        if args.get("lead_id") is not None:
            keys += (f"lead:{args['lead_id']}",)
        events = [Event(line, "message", business, {**args, "wa_id": wa_id, "alt_wa_id": alt}, keys, push_name)]
        if separate:
            events.append(self._link(line, wa_id or args.get("phone"), other, "message", business))
        return events

    def _link(self, line: int, wa_id: str | None, other: str, source: str, business: int | None = None) -> Event:
        return Event(line, "link", self.business_id if business is None else business,
                     {"wa_id": wa_id, "other": other, "source": source}, (self._key(wa_id), self._key(other)))

    def _key(self, raw: str) -> str:
        return _key(raw, self.client.default_region)

    # --- applying --------------------------------------------------------------------------------
    def apply(self, ev: Event, tally: Summary) -> None:
        """Make the event's call(s). A refusal of the input is a bad line; anything else aborts."""
        try:
            self._call(ev, tally)
        except ConvkeyError as exc:
            self.bad(ev.line, f"{exc.sqlstate or 'refused'}: {exc}", tally)
        except psycopg.DataError as exc:  # refused by psycopg before it reached the server (a NUL character)
            self.bad(ev.line, str(exc), tally)
        except Exception as exc:  # connection lost, an unexpected SQLSTATE, a bug: stop the replay
            raise IngestAborted(f"line {ev.line}: {_describe(exc)}", tally) from exc

    def _call(self, ev: Event, tally: Summary) -> None:
        c, a, b = self.client, ev.args, ev.business_id
        if ev.kind == "message":
            name = ev.push_name if ev.push_name and ev.push_name.strip() else None
            row = c.record_message(b, a["wa_id"], a["direction"], a["id"], a["body"], provider=a.get("provider", "baileys"),
                                   lead_id=a.get("lead_id"), phone=a.get("phone"), sent_at=a["sent_at"],
                                   source=a.get("source"), alt_wa_id=a["alt_wa_id"], push_name=name)
            if row["inserted"]:
                tally.messages_inserted += 1
            else:
                tally.duplicates += 1
            tally.links_learned += a["alt_wa_id"] is not None
            if row["inserted"] and name and self._new_name(b, row, name):
                tally.push_names_stored += 1
        elif ev.kind == "link":
            c.link_identity(b, a["wa_id"], a["other"], a["source"])
            tally.links_learned += 1
        elif ev.kind == "assign_lead":
            conv = a["conversation_id"] or c.get_or_create_conversation(b, a["wa_id"])["conversation_id"]
            c.assign_lead(b, conv, a["lead_id"], a["lead_name"])
            tally.leads_assigned += 1
        else:
            c.merge_leads(b, a["from_lead_id"], a["into_lead_id"])
            tally.leads_merged += 1

    def _new_name(self, business: int, row: dict[str, Any], name: str) -> bool:
        """True (once, whichever worker asks first) when this run has not stored ``name`` on the
        conversation yet: what the summary counts as a push name stored."""
        slot = (business, row["conversation_id"])
        with self._names_lock:
            if self._names.get(slot) == name:
                return False
            self._names[slot] = name
            return True

    def bad(self, line: int, why: str, tally: Summary) -> None:
        tally.bad_line_numbers.append(line)
        self.say(f"convkey ingest: line {line}: {why}")

    def say(self, text: str) -> None:
        """A line on the progress stream (stderr) that does not tangle with a redrawn bar."""
        with self._say_lock:
            stream = self.progress.stream
            stream.write(("\r\033[K" if self.progress.tty else "") + text + "\n")
            stream.flush()

    def _tick(self, done: int) -> None:
        self.progress.advance(done - self._shown)
        self._shown = done

    # --- running ---------------------------------------------------------------------------------
    def run(self, items: Iterable[tuple[int, Any]], total: int | None = None) -> Summary:
        """Replay ``(line number, JSON text or parsed object)`` pairs (``total`` of them, when known,
        for the progress bar); see the module docstring."""
        started = time.monotonic()
        self.progress.start("ingest", total or 0)
        main = Summary()
        workers = [_Worker(self) for _ in range(self.workers)] if self.workers > 1 else []
        people = _People(len(workers))
        for w in workers:
            w.start()
        done, stopped = 0, None
        try:
            for line, raw in items:
                main.lines_read += 1
                events = self._read(line, raw, main)
                for ev in events:
                    if not workers:
                        self.apply(ev, main)
                    elif self.interleave is not None and self.interleave(ev):
                        self._put(workers[ev.line % len(workers)], ev)
                    else:
                        target, first = people.place(ev.keys)
                        for i in first:  # the event joins groups other workers were applying
                            workers[i].queue.join()
                        self._put(workers[target], ev)
                done += not workers or not events
                self._tick(done + sum(w.done for w in workers))
        except IngestAborted as exc:
            stopped = exc
        for w in workers:
            w.queue.put(None)  # after a failure the workers only drain their queues
        for w in workers:
            while w.is_alive():
                w.join(0.2)
                self._tick(done + sum(x.done for x in workers))
        stopped = stopped or self._failure
        if stopped is not None:
            summary = self._finish(main, workers, started, aborted=True)
            raise IngestAborted(str(stopped), summary) from stopped.__cause__
        self._tick(done + sum(w.done for w in workers))
        self.progress.finish()
        return self._finish(main, workers, started)

    def _read(self, line: int, raw: Any, tally: Summary) -> list[Event]:
        try:
            obj = json.loads(raw) if isinstance(raw, (str, bytes)) else raw
        except ValueError as exc:
            where = f" at column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
            self.bad(line, f"invalid JSON{where}: {getattr(exc, 'msg', 'not UTF-8')}", tally)
            return []
        try:
            events, skips = self.parse(obj, line)
        except BadLine as exc:
            self.bad(line, str(exc), tally)
            return []
        tally.skipped.update(skips)
        if len(events) > 1:  # the line is done when its last event is
            events = [replace(ev, ends_line=i == len(events) - 1) for i, ev in enumerate(events)]
        return events

    def _put(self, worker: "_Worker", ev: Event | None) -> None:
        while True:
            if self._failure is not None:
                raise self._failure
            try:
                worker.queue.put(ev, timeout=0.2)
                return
            except queue.Full:
                continue

    def _finish(self, main: Summary, workers: list["_Worker"], started: float, *, aborted: bool = False) -> Summary:
        for w in workers:
            main.add(w.tally)
        main.seconds = time.monotonic() - started
        main.aborted = aborted
        return main


class _Worker(threading.Thread):
    """Applies the events of its share of people, in the order they were read."""

    def __init__(self, ingest: Ingest):
        super().__init__(daemon=True)
        self.ingest = ingest
        self.queue: queue.Queue[Event | None] = queue.Queue(maxsize=512)
        self.tally = Summary()
        self.done = 0

    def run(self) -> None:
        while True:
            ev = self.queue.get()
            try:
                if ev is None:
                    return
                if self.ingest._failure is None:
                    self.ingest.apply(ev, self.tally)
                    self.done += ev.ends_line
            except IngestAborted as exc:
                self.ingest._failure = self.ingest._failure or exc
            finally:
                self.queue.task_done()


# --- files and the command ------------------------------------------------------------------------
def read_file(path: str) -> tuple[Iterator[tuple[int, Any]], int | None]:
    """(numbered items, how many there are when known) of a JSON Lines file or a JSON array file;
    ``-`` reads standard input. Raises OSError, or ValueError for an array file that is not JSON."""
    if path == "-":
        return _numbered_lines(sys.stdin.buffer), None
    with open(path, "rb") as fh:
        head = fh.read(4096).lstrip()
        if head.startswith(b"\xef\xbb\xbf"):
            head = head[3:].lstrip()
        if head.startswith(b"["):
            fh.seek(0)
            items = json.loads(fh.read())
            if not isinstance(items, list):
                raise ValueError("the file is neither JSON Lines nor a JSON array")
            return iter(list(enumerate(items, 1))), len(items)
        fh.seek(0)
        total = sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b""))
    return _file_lines(path), total


def _file_lines(path: str) -> Iterator[tuple[int, bytes]]:
    with open(path, "rb") as fh:
        yield from _numbered_lines(fh)


def _numbered_lines(fh: IO[bytes]) -> Iterator[tuple[int, bytes]]:
    for number, raw in enumerate(fh, 1):
        if raw.strip():
            yield number, raw.removeprefix(b"\xef\xbb\xbf") if number == 1 else raw


def run_ingest(
    dsn: str,
    path: str,
    *,
    fmt: str = "auto",
    business_id: int = 1,
    workers: int = 1,
    as_json: bool = False,
    out: IO[str] | None = None,
    err: IO[str] | None = None,
) -> int:
    """``convkey ingest``: replay the file, print the summary; 0 when done (bad lines included),
    2 when the file cannot be read or the replay stopped on an error that is not the input's."""
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    try:
        items, total = read_file(path)
    except (OSError, ValueError) as exc:
        print(f"convkey ingest: cannot read {path}: {exc}", file=err)
        return 2
    try:
        psycopg.connect(dsn, connect_timeout=10).close()  # the server's own reason, at once (a pool retries)
        client = Client(dsn, min_size=workers, max_size=workers + 1)
    except Exception as exc:  # psycopg.Error, psycopg_pool.PoolTimeout: the database is not reachable
        print(f"convkey ingest: cannot connect: {_describe(exc)}", file=err)
        return 2
    with client:
        ingest = Ingest(client, fmt=fmt, business_id=business_id, workers=workers, progress=Progress(stream=err))
        try:
            summary, code = ingest.run(items, total), 0
        except IngestAborted as exc:
            ingest.say(f"convkey ingest: stopped at {exc} (the lines before it were applied; the replay is "
                       "idempotent: run the file again)")
            summary, code = exc.summary, 2
    print(json.dumps(summary.as_dict()) if as_json else summary.text(), file=out)
    return code
