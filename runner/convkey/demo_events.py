"""The demo's traffic: a realistic Baileys 7 event stream for N made-up people, same for a seed.

Each person writes from one phone, spelled as WhatsApp spells it (``@s.whatsapp.net``, ``@c.us``,
device and agent suffixes, Brazil's number without its ninth digit, Mexico's old ``521``), and
most also from a LID. The stream holds what a webhook sees in a day:

- LID-only first contacts whose phone is revealed later, by a message's ``remoteJidAlt`` or by a
  ``lid-mapping`` link event; every person's LID is revealed with its phone at least once, and no
  phone or LID is shared by two people, so the true number of people is the right answer;
- agent replies (``fromMe``), quoted replies (``contextInfo.participant`` names someone else),
  media, push names (some blank or invisible);
- webhook retries (the same ``key.id`` again), late deliveries (older timestamps arriving after
  newer ones), group, status, newsletter and protocol messages to skip;
- CRM leads assigned midway (``assign_lead``), and one person the CRM knew as two leads: one on
  the LID thread, one on the phone thread, refused as a join (different leads never merge
  implicitly) until ``merge_leads`` joins them; that is one person, counted once;
- a burst of new people at the end whose events the demo replays interleaved on all threads,
  every message naming the phone, so the outcome does not depend on the interleaving. Everyone
  else's events keep their order (``convkey ingest`` keeps each person's events on one thread),
  so the printed figures are the same for a seed.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .jid import parse_wa_id

START = dt.datetime(2025, 3, 2, 7, 0, tzinfo=dt.timezone.utc)

FIRST = ("Dana", "Yossi", "Noa", "Avi", "Maya", "Eitan", "Tamar", "Omer", "Shira", "Lior", "Roni", "Itai",
         "Ana", "João", "Beatriz", "Lucas", "María", "José", "Sofía", "Emily", "Michael", "Lena", "Jonas",
         "נועה", "יוסי", "מיכל", "אורי")
LAST = ("Levi", "Cohen", "Mizrahi", "Peretz", "Biton", "Friedman", "Azoulay", "Silva", "Santos", "Oliveira",
        "García", "Hernández", "Smith", "Johnson", "Müller", "Schmidt", "כהן", "לוי")
TEXTS = ("hi", "שלום, אפשר פרטים?", "Olá, tudo bem?", "Hola, ¿tienen disponibilidad?", "how much is it?",
         "thanks!", "תודה רבה", "see you tomorrow at 10", "can you send the address?", "ok 👍",
         "is it still available?", "מתי אתם פתוחים?", "Obrigado!", "perfect", "I'll call you later")
REPLIES = ("Hi! How can we help?", "Sure, sending details now.", "We open at 9:00.", "Thanks, see you!",
           "The price is 250 ₪.", "Here is the address: 12 Herzl St.")
MEDIA = ("imageMessage", "audioMessage", "documentMessage", "stickerMessage", "videoMessage")
BUSINESS_JID = "972520000000@s.whatsapp.net"


@dataclass
class Person:
    index: int
    name: str
    push_name: str | None
    e164: str                      # '+' and canonical digits
    spellings: list[str]           # the phone digits as JIDs carry them (first: the usual one)
    lid: str | None
    story: str
    lead_id: int | None = None
    burst: bool = False
    remote_jids: set[str] = field(default_factory=set)  # the 1:1 chats a raw-remoteJid key would see


@dataclass
class Stream:
    lines: list[str]
    line_person: list[int]         # whose line it is (an index into people)
    people: list[Person]
    naive_threads: int             # distinct remoteJid values of 1:1 messages
    counts: dict[str, int] = field(default_factory=dict)


class _Builder:
    def __init__(self, people: int, seed: int):
        self.rng = random.Random(seed)
        self.n = people
        self.ids: set[str] = set()
        self.phones: set[str] = set()
        self.lids: set[str] = set()
        self.items: list[tuple[dt.datetime, int, int, dict[str, Any]]] = []  # (delivery, order, person, obj)
        self.remote_jids: set[str] = set()
        self.quotable: list[str] = []  # phones a quoted reply may name (never the customer)
        self.counts: dict[str, int] = dict.fromkeys(
            ("messages", "retries", "late", "lid_first", "leads", "noise", "burst"), 0)

    # --- identifiers -----------------------------------------------------------------------------
    def _phone(self) -> tuple[str, list[str]]:
        r = self.rng
        while True:
            country = r.choices(("IL", "BR", "MX", "US", "DE"), (70, 13, 6, 6, 5))[0]
            digits = "".join(r.choice("0123456789") for _ in range(7))
            if country == "IL":
                spellings = [f"9725{r.choice('023458')}{digits}"]
            elif country == "BR":
                ddd = r.choice(("11", "21", "31", "41", "51", "61", "66", "71", "81", "85"))
                old = f"55{ddd}{r.choice('6789')}{digits}"
                spellings = [old[:4] + "9" + old[4:], old]  # today's number and the old JID spelling
            elif country == "MX":
                rest = r.choice(("55", "33", "81")) + digits + r.choice("0123456789")
                spellings = [f"52{rest}", f"521{rest}"]
            elif country == "US":
                spellings = [f"1{r.choice(('201', '212', '305', '415', '646'))}{r.choice('23456789')}{digits[:6]}"]
            else:
                spellings = [f"49{r.choice(('151', '160', '170', '176'))}{digits}{r.choice('0123456789')}"]
            try:
                phones = {parse_wa_id(f"{s}@s.whatsapp.net").phone_e164 for s in spellings}
            except ValueError:
                continue
            if len(phones) == 1 and not phones & self.phones:
                self.phones |= phones
                return phones.pop(), spellings

    def _lid(self) -> str:
        while True:
            lid = str(self.rng.randrange(10**13, 3 * 10**14))
            if lid not in self.lids:
                self.lids.add(lid)
                return lid

    def _msg_id(self) -> str:
        while True:
            mid = self.rng.choice(("3EB0", "BAE5", "3A")) + f"{self.rng.getrandbits(64):016X}"
            if mid not in self.ids:
                self.ids.add(mid)
                return mid

    def phone_jid(self, p: Person) -> str:
        """One of the phone's JID spellings: mostly plain, sometimes @c.us, a device or an agent."""
        r = self.rng
        user = r.choice(p.spellings) if len(p.spellings) > 1 and r.random() < 0.4 else p.spellings[0]
        form = r.random()
        if form < 0.55:
            return f"{user}@s.whatsapp.net"
        if form < 0.7:
            return f"{user}@c.us"
        if form < 0.9:
            return f"{user}:{r.randrange(1, 30)}@s.whatsapp.net"
        return f"{user}{r.choice(('.0', '_1'))}:{r.randrange(1, 30)}@s.whatsapp.net"

    def lid_jid(self, p: Person) -> str:
        return f"{p.lid}@lid" if self.rng.random() < 0.9 else f"{p.lid}:{self.rng.randrange(1, 30)}@lid"

    # --- events ----------------------------------------------------------------------------------
    def person(self, index: int) -> Person:
        r = self.rng
        first, last = r.choice(FIRST), r.choice(LAST)
        e164, spellings = self._phone()
        push = r.choices((first, f"{first} {last}", f"{first} 🌸", None, "\u3164"), (40, 30, 10, 15, 5))[0]
        return Person(index, f"{first} {last}", push, e164, spellings, None, "")

    def add(self, at: dt.datetime, person: int, obj: dict[str, Any]) -> None:
        """One line of a person, delivered at ``at``."""
        self.items.append((at, len(self.items), person, obj))

    def message(self, p: Person, at: dt.datetime, remote: str, *, from_me: bool, alt: str | None = None,
                late: bool = True) -> None:
        """A 1:1 message of p sent at ``at``: delivered a few seconds later (sometimes hours late),
        sometimes delivered twice (a webhook retry)."""
        r = self.rng
        kind = r.random()
        if from_me:
            content: dict[str, Any] = {"conversation": r.choice(REPLIES)}
        elif kind < 0.6:
            content = {"conversation": r.choice(TEXTS)}
        elif kind < 0.8:
            quoted = r.choice((BUSINESS_JID, f"{r.choice(self.quotable)}@s.whatsapp.net"))
            content = {"extendedTextMessage": {"text": r.choice(TEXTS), "contextInfo": {
                "stanzaId": self._msg_id(), "participant": quoted, "quotedMessage": {"conversation": "..."}}}}
        else:
            media = r.choice(MEDIA)
            content = {media: {"caption": r.choice(TEXTS)} if media in ("imageMessage", "videoMessage") else {}}
        mkey: dict[str, Any] = {"remoteJid": remote, "fromMe": from_me, "id": self._msg_id()}
        if alt:
            mkey |= {"remoteJidAlt": alt, "addressingMode": "lid" if remote.endswith("@lid") else "pn"}
        obj: dict[str, Any] = {"key": mkey, "messageTimestamp": int(at.timestamp()), "message": content}
        if not from_me and p.push_name is not None:
            obj["pushName"] = p.push_name
        delivery = at + dt.timedelta(seconds=r.randrange(1, 5))
        if late and r.random() < 0.06:
            delivery += dt.timedelta(minutes=r.randrange(20, 240))
            self.counts["late"] += 1
        self.add(delivery, p.index, obj)
        if r.random() < 0.07:
            self.add(delivery + dt.timedelta(seconds=r.randrange(5, 90)), p.index, obj)
            self.counts["retries"] += 1
        self.remote_jids.add(remote)
        p.remote_jids.add(remote)
        self.counts["messages"] += 1

    def assign_lead(self, p: Person, at: dt.datetime, wa_id: str, lead_id: int) -> None:
        self.add(at, p.index, {"type": "assign_lead", "wa_id": wa_id, "lead_id": lead_id, "lead_name": p.name})

    def noise(self, p: Person, at: dt.datetime) -> None:
        """A message that is not a customer chat: group (teaching the sender's pair), status, ..."""
        r = self.rng
        kind = r.choice(("group", "group", "status", "newsletter", "protocol"))
        mid = self._msg_id()
        if kind == "group":
            key = {"remoteJid": f"1203630{r.randrange(10**11, 10**12)}@g.us", "id": mid, "fromMe": False,
                   "participant": f"{p.lid}@lid" if p.lid else f"{p.spellings[0]}@s.whatsapp.net"}
            if p.lid:
                key["participantAlt"] = f"{p.spellings[0]}@s.whatsapp.net"
        elif kind == "status":
            key = {"remoteJid": "status@broadcast", "id": mid, "participant": f"{p.spellings[0]}@s.whatsapp.net"}
        elif kind == "newsletter":
            key = {"remoteJid": f"{r.randrange(10**17, 10**18)}@newsletter", "id": mid}
        else:
            key = {"remoteJid": f"{p.spellings[0]}@s.whatsapp.net", "fromMe": False, "id": mid}
        message = ({"protocolMessage": {"type": "REVOKE", "key": {"id": self._msg_id()}}} if kind == "protocol"
                   else {"conversation": r.choice(TEXTS)})
        self.add(at, p.index, {"key": key, "messageTimestamp": int(at.timestamp()), "message": message})
        self.counts["noise"] += 1

    # --- people's stories ------------------------------------------------------------------------
    def chat(self, p: Person, at: dt.datetime, n: int, jid: Callable[[], tuple[str, str | None]], *, lead_at: int | None = None) -> dt.datetime:
        """n messages in and out, each addressed by ``jid()`` -> (remoteJid, remoteJidAlt)."""
        for i in range(n):
            if lead_at == i:
                self.assign_lead(p, at, jid()[0], p.lead_id)
                at += dt.timedelta(minutes=1)
            remote, alt = jid()
            self.message(p, at, remote, from_me=self.rng.random() < 0.35, alt=alt)
            if self.rng.random() < 0.05:
                self.noise(p, at)
            at += dt.timedelta(minutes=self.rng.randrange(1, 180))
        return at

    def story(self, p: Person) -> None:
        r = self.rng
        at = START + dt.timedelta(minutes=r.randrange(0, 12 * 60))
        n = r.randrange(3, 12)
        lead_at = r.randrange(1, n) if r.random() < 0.2 else None
        if lead_at is not None:
            p.lead_id = 1000 + p.index
        shape = r.random()
        if shape < 0.2:
            p.story = "phone only"
            self.chat(p, at, n, lambda: (self.phone_jid(p), None), lead_at=lead_at)
            return
        p.lid = self._lid()
        if shape < 0.45:
            p.story = "phone, LID in remoteJidAlt"
            self.chat(p, at, n, lambda: (self.phone_jid(p), self.lid_jid(p) if r.random() < 0.5 else None),
                      lead_at=lead_at)
            return
        # LID-only first contact: 1-3 messages under the LID alone, then the phone is revealed
        self.counts["lid_first"] += 1
        at = self.chat(p, at, r.randrange(1, 4), lambda: (self.lid_jid(p), None))
        if r.random() < 0.5:
            p.story = "LID first, phone in remoteJidAlt"
            self.message(p, at, self.lid_jid(p), from_me=False, alt=f"{p.spellings[0]}@s.whatsapp.net")
        else:
            p.story = "LID first, lid-mapping"
            self.add(at, p.index, {"type": "link", "wa_id": f"{p.lid}@lid",
                                   "other": f"{p.spellings[0]}@s.whatsapp.net", "source": "lid-mapping"})
        at += dt.timedelta(minutes=1)
        self.chat(p, at, n, lambda: r.choice(((self.phone_jid(p), None), (self.lid_jid(p), None),
                                              (self.lid_jid(p), f"{p.spellings[0]}@s.whatsapp.net"))),
                  lead_at=lead_at)

    def two_leads(self, p: Person) -> None:
        """The CRM made a lead from the LID thread and another from the phone thread; the reveal
        cannot join them (different leads) until the CRM merges the leads."""
        first, second = 1001 + self.n, 1002 + self.n  # lead ids no one else has (theirs: 1000 + index)
        p.lid, p.lead_id = self._lid(), second
        p.story = "two CRM leads, merged"
        lid, phone = f"{p.lid}@lid", f"{p.spellings[0]}@s.whatsapp.net"
        steps: list[tuple[Any, ...]] = [
            ("msg", lid, False, None), ("lead", lid, first), ("msg", lid, True, None),  # the LID thread
            ("msg", phone, False, None), ("lead", phone, second),                       # the phone thread
            ("msg", lid, False, phone),            # the reveal: refused, the leads differ
            ("merge",), ("msg", phone, True, None), ("msg", lid, False, phone)]
        at = START + dt.timedelta(minutes=30)
        for step in steps:
            if step[0] == "msg":
                self.message(p, at, step[1], from_me=step[2], alt=step[3], late=False)
            elif step[0] == "lead":
                self.assign_lead(p, at, step[1], step[2])
            else:
                self.add(at, p.index, {"type": "merge_leads", "from_lead_id": first, "into_lead_id": second})
            at += dt.timedelta(minutes=self.rng.randrange(2, 30))

    def burst(self, p: Person, at: dt.datetime) -> None:
        """A new person in the burst: every message names the phone; lines replay interleaved."""
        p.burst = True
        p.story = "burst, concurrent"
        p.lid = self._lid() if self.rng.random() < 0.5 else None
        phone = f"{p.spellings[0]}@s.whatsapp.net"
        for _ in range(self.rng.randrange(3, 7)):
            if p.lid and self.rng.random() < 0.4:
                remote, alt = self.lid_jid(p), phone
            else:
                remote, alt = self.phone_jid(p), (self.lid_jid(p) if p.lid else None)
            self.message(p, at, remote, from_me=self.rng.random() < 0.3, alt=alt, late=False)
            at += dt.timedelta(seconds=self.rng.randrange(5, 40))


def generate(people: int = 300, seed: int = 1) -> Stream:
    """The stream for ``people`` people (at least 2), the same for the same seed."""
    if people < 2:
        raise ValueError("the demo needs at least 2 people")
    b = _Builder(people, seed)
    crowd = [b.person(i) for i in range(people)]
    b.quotable = sorted(e164[1:] for e164 in b.phones)
    burst_from = people - max(1, people // 10)
    b.two_leads(crowd[0])
    for p in crowd[1:burst_from]:
        b.story(p)
    end = max(at for at, *_ in b.items) + dt.timedelta(minutes=5)
    for p in crowd[burst_from:]:
        b.burst(p, end + dt.timedelta(seconds=b.rng.randrange(0, 60)))
    b.counts["burst"] = people - burst_from
    b.items.sort(key=lambda item: (item[0], item[1]))
    lines = [json.dumps(obj, ensure_ascii=False) for _, _, _, obj in b.items]
    line_person = [person for _, _, person, _ in b.items]
    b.counts["leads"] = sum(1 for _, _, _, obj in b.items if obj.get("type") == "assign_lead")
    return Stream(lines, line_person, crowd, len(b.remote_jids), b.counts)
