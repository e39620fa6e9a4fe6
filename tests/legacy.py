"""A generated legacy data set with known ground truth, for backfill tests.

People k = 0..n-1 each have a phone (+97252xxxxxxx) and a LID; 10% have 2-3 legacy rows under
different identifier forms (phone JID, device JID, E.164, a human national format, the LID JID),
30% have a lead, some are known only by their LID (their LID-phone link comes from a history
sync, recorded with link_identity before the backfill), a few have no usable identifier.
Every row gets 1-5 messages with unique provider ids. ``truth`` maps message id -> person.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field

import psycopg

T0 = dt.datetime(2025, 6, 1, tzinfo=dt.timezone.utc)


@dataclass
class Legacy:
    people: int
    truth: dict[str, int] = field(default_factory=dict)  # provider_message_id -> person
    unresolvable_rows: int = 0
    links: list[tuple[str, str]] = field(default_factory=list)


def phone(k: int) -> str:
    return f"97252{k:07d}"


def lid(k: int) -> str:
    return f"{82399031500000 + k}"


def forms(k: int) -> list[str]:
    p = phone(k)
    return [f"{p}@s.whatsapp.net", f"{p}:{k % 9 + 1}@s.whatsapp.net", f"+{p}",
            f"052-{p[5:8]}-{p[8:]}", f"{p}@c.us", f"{lid(k)}@lid"]


def generate(conn: psycopg.Connection, people: int, *, business_id: int = 1, seed: int = 1,
             broken: int = 3) -> Legacy:
    rng = random.Random(seed)
    out = Legacy(people)
    conv_rows, msg_rows = [], []
    for k in range(people):
        n_rows = rng.choice([2, 3]) if rng.random() < 0.10 else 1
        lead = 100000 + k if rng.random() < 0.30 else None
        chosen = rng.sample(forms(k), n_rows)
        if any(f.endswith("@lid") for f in chosen) or rng.random() < 0.05:
            out.links.append((f"{lid(k)}@lid", f"{phone(k)}@s.whatsapp.net"))
        for j, wa in enumerate(chosen):
            row_lead = lead if (lead and (j == 0 or rng.random() < 0.5)) else None
            last = None
            msgs = []
            for m in range(rng.randint(1, 5)):
                at = T0 + dt.timedelta(days=rng.randint(0, 300), seconds=rng.randint(0, 86399))
                pmid = f"legacy-{business_id}-{k}-{j}-{m}"
                msgs.append((pmid, at, rng.choice(["inbound", "outbound", "in", "out"])))
                last = max(last, at) if last else at
                out.truth[pmid] = k
            conv_rows.append((business_id, wa, row_lead, last, msgs))
    for b in range(broken):
        conv_rows.append((business_id, ["120363000000000000@g.us", "garbage!!", "status@broadcast"][b % 3],
                          None, T0, [(f"legacy-{business_id}-broken-{b}", T0, "in")]))
        out.unresolvable_rows += 1
    rng.shuffle(conv_rows)
    with conn.cursor() as cur:
        for business, wa, lead_id, last, msgs in conv_rows:
            cur.execute("INSERT INTO convkey.whatsapp_conversation (business_id, customer_wa_id, lead_id, "
                        "last_message_at) VALUES (%s, %s, %s, %s) RETURNING id", (business, wa, lead_id, last))
            cid = cur.fetchone()[0]
            msg_rows += [(business, cid, d, pmid, at) for pmid, at, d in msgs]
        cur.executemany("INSERT INTO convkey.whatsapp_message (business_id, conversation_id, direction, "
                        "provider_message_id, sent_at) VALUES (%s, %s, %s, %s, %s)", msg_rows)
        for a, b in out.links:
            cur.execute("SELECT convkey.link_identity(%s, %s, %s, 'history')", (business_id, a, b))
    return out


def check_one_conversation_per_person(conn: psycopg.Connection, legacy: Legacy, business_id: int = 1) -> None:
    """Every message stored once, in its person's live conversation, one live conversation per person."""
    rows = conn.execute("""
        SELECT m.provider_message_id, c.id, c.merged_into_id, c.canonical_key
          FROM convkey.whatsapp_message m
          JOIN convkey.whatsapp_conversation c ON c.business_id = m.business_id AND c.id = m.conversation_id
         WHERE m.business_id = %s""", (business_id,)).fetchall()
    seen = {r[0] for r in rows}
    assert len(rows) == len(seen)
    assert {p for p in legacy.truth} <= seen
    conv_of_person: dict[int, set[int]] = {}
    for pmid, cid, merged, key in rows:
        if pmid not in legacy.truth:
            continue
        assert merged is None, f"{pmid} sits in a tombstone"
        assert key is not None, f"{pmid} sits in an unresolved conversation"
        conv_of_person.setdefault(legacy.truth[pmid], set()).add(cid)
    assert all(len(c) == 1 for c in conv_of_person.values()), "a person has several conversations"
    assert len(conv_of_person) == legacy.people
    people_of_conv = [c for cs in conv_of_person.values() for c in cs]
    assert len(people_of_conv) == len(set(people_of_conv)), "two people share a conversation"
