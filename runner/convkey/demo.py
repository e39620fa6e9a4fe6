"""``convkey demo``: convkey at work on a day of made-up WhatsApp traffic.

It migrates the database, takes a business id no one uses yet (so every run starts clean, on the
embedded database too), generates a Baileys 7 event stream for N people (``convkey.demo_events``:
phone JIDs in every spelling, LID-only first contacts revealed later, retries, late and concurrent
deliveries, leads assigned and merged), replays it through the code of ``convkey ingest``, and
prints side by side the threads a CRM keyed by the raw ``remoteJid`` would show, convkey's live
threads and the true number of people; then the dedup health of the business and a few threads
as an inbox shows them. The printed figures are the same for a seed (timings and the business id
aside). Exit 0 when convkey's threads equal the people, 1 otherwise.
"""

from __future__ import annotations

import re
import sys
from typing import IO, Any

import psycopg

from .client import Client
from .demo_events import Person, Stream, generate
from .health import to_table
from .ingest import Ingest
from .migrate import migrate
from .phone import format_for_display, mask
from .progress import Progress

WORKERS = 4
SHOWCASE = 8


def run_demo(dsn: str, *, people: int = 300, seed: int = 1, workers: int = WORKERS, out: IO[str] | None = None) -> int:
    out = out if out is not None else sys.stdout

    def say(text: str = "") -> None:
        print(text, file=out)

    report = migrate(dsn)
    stream = generate(people, seed)
    with Client(dsn, min_size=1, max_size=workers + 1) as client:
        business = client.connector.one("demo_next_business_id")["business_id"]
        say(f"convkey demo: {people} people, seed {seed}; business {business} (unused until now), "
            f"schema {report.schema_version}")
        say()
        for line in _traffic(stream, people):
            say(line)
        say(f"Replaying it through convkey ingest ({workers} threads: each person's events in order, "
            "the burst interleaved) ...")
        ingest = Ingest(client, business_id=business, workers=workers, progress=Progress(),
                        interleave=lambda ev: stream.people[stream.line_person[ev.line - 1]].burst)
        summary = ingest.run(enumerate(stream.lines, 1), len(stream.lines))
        say(summary.text())
        threads = client.connector.one("demo_live_threads", {"business_id": business})["threads"]
        say()
        for line in _side_by_side(stream.naive_threads, threads, people) + _split(stream.people):
            say(line)
        say()
        for line in _health(client, business) + [""] + _threads(client, business, stream.people):
            say(line)
    return 0 if threads == people and summary.bad_lines == 0 else 1


def _traffic(stream: Stream, people: int) -> list[str]:
    c = stream.counts
    return [
        f"The traffic: {len(stream.lines):,} Baileys lines for {people:,} people",
        f"  {c['messages']:>6,} messages in 1:1 chats, under {stream.naive_threads:,} different remoteJid spellings",
        "         (@s.whatsapp.net, @c.us, :device and agent suffixes, old Brazil/Mexico numbers, @lid)",
        f"  {c['lid_first']:>6,} people wrote first from a LID; the phone came later (remoteJidAlt or lid-mapping)",
        f"  {c['retries']:>6,} webhook retries (the same key.id again), {c['late']:,} late deliveries "
        "(older than what came before)",
        f"  {c['leads']:>6,} CRM leads assigned midway; one person the CRM knew as two leads, merged with merge_leads",
        f"  {c['noise']:>6,} group, status, newsletter and protocol messages, to skip",
        f"  {c['burst']:>6,} new people in a burst at the end, their events delivered concurrently",
    ]


def _side_by_side(naive: int, threads: int, people: int) -> list[str]:
    verdict = ("one thread per person" if threads == people
               else f"MISMATCH: {threads:,} threads for {people:,} people")
    return [
        f"  {'':<24}{'threads':>8}",
        f"  {'naive key (remoteJid)':<24}{naive:>8,}   one thread per raw remoteJid: the bug convkey fixes",
        f"  {'convkey':<24}{threads:>8,}   live conversations",
        f"  {'people':<24}{people:>8,}   the true number of people",
        f"  convkey: {verdict}; the naive key: {naive / people:.1f} threads per person",
    ]


def _split(people: list[Person]) -> list[str]:
    """The person the naive key splits most, and the remoteJid spellings it would show as threads
    (digits masked but the last 4, as everywhere convkey prints an identifier; the spellings stay
    distinct)."""
    p = max(people, key=lambda p: (len(p.remote_jids), -p.index))
    jids = [_masked_jid(j) for j in sorted(p.remote_jids, key=lambda j: (j.endswith("@lid"), j))]
    return [f"  For example, the naive key shows {p.name} as {len(jids)} threads:",
            *(f"    {', '.join(jids[i:i + 3])}" for i in range(0, len(jids), 3))]


def _masked_jid(jid: str) -> str:
    """``5561993237964:11@s.whatsapp.net`` -> ``*********7964:11@s.whatsapp.net``."""
    user = re.match(r"[0-9]*", jid).group()
    return mask(user) + jid[len(user):]


def _health(client: Client, business: int) -> list[str]:
    try:
        rows = client.dedup_health(business)
    except psycopg.errors.UndefinedTable:
        return ["Dedup health: convkey.dedup_health is not installed in this database."]
    return ["Dedup health (convkey.dedup_health):", *("  " + line for line in to_table(rows).splitlines())]


def _showcase(people: list[Person]) -> list[Person]:
    """A few people whose threads tell the story, chosen the same way for a seed."""
    tests = (
        lambda p: p.story == "two CRM leads, merged",
        lambda p: p.story == "LID first, phone in remoteJidAlt",
        lambda p: p.story == "LID first, lid-mapping",
        lambda p: p.lead_id is not None,
        lambda p: len(p.spellings) > 1,
        lambda p: p.push_name is None or not p.push_name.strip() or p.push_name == "\u3164",
        lambda p: p.story == "phone only",
        lambda p: p.burst,
    )
    picked: list[Person] = []
    for test in tests:
        person = next((p for p in people if test(p) and p not in picked), None)
        if person is not None:
            picked.append(person)
    return picked[:SHOWCASE]


def _threads(client: Client, business: int, people: list[Person]) -> list[str]:
    try:
        rows = client.conversation_threads(business, limit=len(people) + 100)
    except psycopg.errors.UndefinedTable:
        return ["Threads: convkey.conversation_thread is not installed in this database."]
    by_lead = {r["lead_id"]: r for r in rows if r["lead_id"] is not None}
    by_phone = {r["display_phone"]: r for r in rows if r["display_phone"]}
    out = ["A few threads (convkey.conversation_thread):",
           f"  {'name':<18} {'phone':<20} {'lead':>5} {'msgs':>5} {'unread':>6}  {'last message':<30}  story"]
    for p in _showcase(people):
        row: dict[str, Any] | None = by_lead.get(p.lead_id) if p.lead_id else by_phone.get(p.e164)
        if row is None:
            out.append(f"  (no thread found for person {p.index}: {p.story})")
            continue
        name = row["display_name"] or ""
        if name.startswith("+"):
            name = format_for_display(name)
        arrow = "→" if row["last_message_direction"] == "out" else "←"
        out.append(
            f"  {_cut(name, 18):<18} {format_for_display(row['display_phone'] or ''):<20} "
            f"{row['lead_id'] or '':>5} {row['message_count']:>5} {row['unread_count']:>6}  "
            f"{arrow} {_cut(row['last_message_preview'] or '', 28):<28}  {p.story}")
    return out


def _cut(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"

