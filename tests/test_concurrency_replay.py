"""Issue 8 part 2: 16 workers replay a shuffled event stream; the end state equals a serial replay.

500 people (reliability_scale(20000, 100000) events in all): messages under every identifier form
of a person (phone JID, device JID, @c.us, E.164, LID JID, LID device JID, LID + revealed phone,
a lead alone), retried deliveries (the same provider message id again) and LID<->phone links,
shuffled so that links arrive before, between and after a person's messages. The events commute:
a person's LID is only ever paired with that person's phone and a person has at most one lead, no
unmerge, so neither rule (a) nor rule (b) nor a separation can make the order matter. The end
state must then be the same whatever the interleaving:

* 16 threads, each on its own connection, take events from one shared queue; every exception
  reaching a caller fails the test;
* the same stream replayed serially on another fresh database;
* a union-find over the events (identities named together by one event are one person).

They are compared by grouping, not ids: for every live conversation (key, lead, primary phone,
last activity, identities, provider message ids); the pending persons (identities linked before
any conversation); and every message stored once, never in a tombstone. Deadlocks are read from
pg_stat_database before and after; deadlock or serialization errors reaching a caller are counted
(and fail the test).
"""

from __future__ import annotations

import datetime as dt
import os
import queue
import random
import threading
import time

import psycopg
import pytest

from conftest import TEMPLATE, reliability_scale

WORKERS = 16
PEOPLE = 500
T0 = dt.datetime(2026, 2, 1, tzinfo=dt.timezone.utc)


def phone_digits(k: int) -> str:
    return f"97254{k:07d}"


def lid_of(k: int) -> str:
    return str(82399031600000 + k)


def lead_of(k: int) -> int | None:
    return 700000 + k if k % 3 == 0 else None


def make_stream(events: int, seed: int) -> list[tuple]:
    """('msg', wa, phone_e164, lead, pmid, at, direction, identities) and ('link', a, b, identities) events."""
    rng = random.Random(seed)
    per_person = max(8, events // PEOPLE)
    stream: list[tuple] = []
    clock = 0
    for k in range(PEOPLE):
        d, lid, lead = phone_digits(k), lid_of(k), lead_of(k)
        phone = "+" + d
        P, L = ("phone", phone), ("lid", lid)
        forms = [  # (wa, p_phone_e164, identities)
            (f"{d}@s.whatsapp.net", None, [P]),
            (f"{d}:{k % 20 + 1}@s.whatsapp.net", None, [P]),
            (f"{d}@c.us", None, [P]),
            (None, phone, [P]),
            (f"{lid}@lid", None, [L]),
            (f"{lid}:3@lid", None, [L]),
        ]
        # how this person's LID meets the phone: links only, revealed phones only, both, or never
        joined = rng.choice(["links", "pairs", "both", "both", "never"] if k % 10 else ["never"])
        if joined in ("pairs", "both"):
            forms.append((f"{lid}@lid", phone, [P, L]))
        n_links = 0 if joined in ("pairs", "never") else rng.randint(1, max(1, per_person // 8))
        n_retries = per_person // 10
        n_msgs = max(1, per_person - n_links - n_retries)
        msgs = []
        for j in range(n_msgs):
            wa, ph, ids = forms[j] if j < len(forms) else rng.choice(forms)   # every form at least once
            with_lead = lead is not None and rng.random() < 0.5
            if with_lead and rng.random() < 0.1:
                wa, ph, ids = None, None, []        # the CRM writes to the lead alone
            clock += 1
            msgs.append(("msg", wa, ph, lead if with_lead else None, f"p{k}-m{j}", T0 + dt.timedelta(seconds=clock),
                         rng.choice(["in", "out"]), tuple(ids + ([("lead", str(lead))] if with_lead else []))))
        stream += msgs
        stream += rng.sample(msgs, min(n_retries, len(msgs)))          # retried deliveries
        for _ in range(n_links):
            a = rng.choice([f"{lid}@lid", f"{lid}:5@lid"])
            b = rng.choice([f"{d}@s.whatsapp.net", phone, f"{d}:2@s.whatsapp.net"])
            if rng.random() < 0.5:
                a, b = b, a
            stream.append(("link", a, b, (P, L)))
    rng.shuffle(stream)
    return stream


def apply(conn: psycopg.Connection, event: tuple) -> None:
    if event[0] == "msg":
        _, wa, phone, lead, pmid, at, direction, _ids = event
        conn.execute("SELECT * FROM convkey.record_message(1, %s, %s, %s, 'hi', p_lead_id => %s, p_phone_e164 => %s, "
                     "p_sent_at => %s)", (wa, direction, pmid, lead, phone, at))
    else:
        _, a, b, _ids = event
        conn.execute("SELECT convkey.link_identity(1, %s, %s, 'lid-mapping')", (a, b))


def expected_state(stream: list[tuple]) -> tuple[set, set]:
    """Union-find over the events: (conversations, pending persons) as end_state() describes them."""
    parent: dict = {}

    def find(x):
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for e in stream:
        ids = e[-1]
        for i in ids:
            find(i)
        for i in ids[1:]:
            parent[find(i)] = find(ids[0])
    members: dict = {}
    for i in parent:
        members.setdefault(find(i), set()).add(i)
    msgs: dict = {}
    last: dict = {}
    for e in stream:
        if e[0] == "msg":
            root = find(e[-1][0])
            msgs.setdefault(root, set()).add(e[4])
            last[root] = max(last.get(root, e[5]), e[5])
    convs, pending = set(), set()
    for root, ids in members.items():
        if root not in msgs:
            pending.add(frozenset(ids))
            continue
        leads = sorted(int(v) for k, v in ids if k == "lead")
        phones = sorted(v for k, v in ids if k == "phone")
        lids = sorted(v for k, v in ids if k == "lid")
        key = (f"lead:1:{leads[0]}" if leads else f"phone:1:{phones[0]}" if phones else f"lid:1:{lids[0]}")
        convs.add((key, leads[0] if leads else None, phones[0] if phones else None, last[root],
                   frozenset(ids), frozenset(msgs[root])))
    return convs, pending


def end_state(conn: psycopg.Connection) -> tuple[set, set]:
    """(live conversations as (key, lead, phone, last activity, identities, messages), pending persons)."""
    bad = conn.execute("""
        SELECT count(*) FILTER (WHERE c.merged_into_id IS NOT NULL), count(*) - count(DISTINCT m.provider_message_id)
          FROM convkey.whatsapp_message m
          JOIN convkey.whatsapp_conversation c ON c.business_id = m.business_id AND c.id = m.conversation_id
        """).fetchone()
    assert bad == (0, 0), f"messages in tombstones / stored twice: {bad}"
    dup_keys = conn.execute("SELECT count(*) - count(DISTINCT canonical_key) FROM convkey.whatsapp_conversation "
                            "WHERE merged_into_id IS NULL").fetchone()[0]
    assert dup_keys == 0
    rows = conn.execute("""
        SELECT c.canonical_key, c.lead_id, c.phone_e164, c.last_message_at,
               (SELECT coalesce(array_agg(ARRAY[i.kind, i.value]), '{}') FROM convkey.identity i
                 WHERE i.business_id = c.business_id AND i.conversation_id = c.id),
               (SELECT coalesce(array_agg(m.provider_message_id), '{}') FROM convkey.whatsapp_message m
                 WHERE m.business_id = c.business_id AND m.conversation_id = c.id)
          FROM convkey.whatsapp_conversation c WHERE c.merged_into_id IS NULL""").fetchall()
    convs = {(key, lead, phone, last, frozenset(tuple(x) for x in ids), frozenset(msgs))
             for key, lead, phone, last, ids, msgs in rows}
    assert len(convs) == len(rows)
    pend: dict = {}
    for kind, value, pid in conn.execute("SELECT kind, value, pending_person_id FROM convkey.identity "
                                         "WHERE pending_person_id IS NOT NULL"):
        pend.setdefault(pid, set()).add((kind, value))
    return convs, {frozenset(v) for v in pend.values()}


def deadlocks(conn: psycopg.Connection) -> int:
    conn.execute("SELECT pg_stat_clear_snapshot()")
    return conn.execute("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()").fetchone()[0]


@pytest.mark.reliability
def test_concurrent_replay_equals_serial_replay(pg_server, template_dsn, reliability_record):
    n_events = reliability_scale(20000, 100000)
    seed = int(os.environ.get("CONVKEY_SEED", "20261125"))
    stream = make_stream(n_events, seed)
    names = [f"convkey_replay_{os.getpid()}_{x}" for x in ("concurrent", "serial")]
    dsns = [pg_server.create_database(name, template=TEMPLATE) for name in names]
    try:
        # -- 16 workers, one shared queue --
        work: queue.Queue = queue.Queue()
        for e in stream:
            work.put(e)
        errors: list[tuple[str | None, str]] = []
        barrier = threading.Barrier(WORKERS)

        def worker():
            try:
                with psycopg.connect(dsns[0], autocommit=True) as conn:
                    barrier.wait()
                    while True:
                        try:
                            e = work.get_nowait()
                        except queue.Empty:
                            return
                        try:
                            apply(conn, e)
                        except psycopg.Error as exc:     # every error reaching a caller is a failure
                            errors.append((exc.sqlstate, f"{e[:3]}: {exc}"))
            except BaseException as exc:
                errors.append((None, repr(exc)))

        with psycopg.connect(dsns[0], autocommit=True) as conn:
            before = deadlocks(conn)
        started = time.monotonic()
        threads = [threading.Thread(target=worker) for _ in range(WORKERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        concurrent_s = time.monotonic() - started
        time.sleep(0.5)   # the workers' statistics are flushed when their sessions end

        # -- the same stream, serially (pipelined, one commit per 200 events: one session, so the
        #    same results as one transaction per event, without 20,000 round trips and flushes) --
        started = time.monotonic()
        with psycopg.connect(dsns[1]) as conn:
            with conn.pipeline():
                for n, e in enumerate(stream, 1):
                    apply(conn, e)
                    if n % 200 == 0:
                        conn.commit()
            conn.commit()
        serial_s = time.monotonic() - started

        with psycopg.connect(dsns[0], autocommit=True) as conn:
            seen_deadlocks = deadlocks(conn) - before
            concurrent = end_state(conn)
        with psycopg.connect(dsns[1], autocommit=True) as conn:
            serial = end_state(conn)
    finally:
        for name in names:
            pg_server.drop_database(name)

    retry_errors = sum(1 for s, _ in errors if s in ("40001", "40P01"))
    print(f"replay: {len(stream)} events, {WORKERS} workers: concurrent {concurrent_s:.1f} s, serial {serial_s:.1f} s; "
          f"deadlocks {seen_deadlocks}, serialization/deadlock errors surfaced {retry_errors}, errors {len(errors)}")
    assert errors == [], f"{len(errors)} errors reached callers, e.g. {errors[:3]}"
    assert seen_deadlocks == 0, f"{seen_deadlocks} deadlocks"
    expected = expected_state(stream)
    assert serial == expected, _diff("serial", serial, expected)
    assert concurrent == serial, _diff("concurrent", concurrent, serial)
    reliability_record(events=len(stream), workers=WORKERS, people=PEOPLE, deadlocks=seen_deadlocks,
                       retries=retry_errors, concurrent_seconds=round(concurrent_s, 1),
                       serial_seconds=round(serial_s, 1), violations=0)


def _diff(name: str, got: tuple[set, set], want: tuple[set, set]) -> str:
    convs = sorted(map(repr, got[0] - want[0]))[:3], sorted(map(repr, want[0] - got[0]))[:3]
    pend = sorted(map(repr, got[1] - want[1]))[:3], sorted(map(repr, want[1] - got[1]))[:3]
    return f"{name} differs: conversations only there {convs[0]}, missing {convs[1]}; pending {pend}"
