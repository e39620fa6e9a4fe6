"""Faults: backends terminated inside API calls and backfill batches, the runner killed with
SIGKILL mid-backfill and mid-ingest, PostgreSQL restarted mid-ingest.

After every fault the same three things are checked: the invariants of ``tests/invariants.py``
hold; re-running the interrupted work (every call and command is idempotent) finishes it; nothing
is lost: the final data equals an uninterrupted run of the same work on another database,
compared by meaning (groupings of messages, keys, identities), not by ids, since a rolled-back
transaction burns sequence values.

CONVKEY_SEED changes the generated work and the fault points; the sizes follow the reliability
scale (``make test`` small, ``make reliability`` large).
"""

from __future__ import annotations

import collections
import datetime as dt
import io
import itertools
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from conftest import TEMPLATE, reliability_scale
from convkey.backfill import run_backfill
from convkey.demo_events import generate as demo_stream
from convkey.embedded import EmbeddedCluster, find_bindir
from convkey.errors import ConfigurationError
from convkey.ingest import run_ingest
from convkey.migrate import migrate
from invariants import check_invariants
from legacy import check_one_conversation_per_person
from legacy import generate as generate_legacy

SEED = int(os.environ.get("CONVKEY_SEED", "20261125"))
T0 = dt.datetime(2025, 9, 1, tzinfo=dt.timezone.utc)
_names = itertools.count()


# --- helpers ----------------------------------------------------------------------------------------
@pytest.fixture
def clone(pg_server, template_dsn):
    """Factory: a fresh clone of the migrated template (dropped after the test)."""
    names: list[str] = []

    def make() -> str:
        name = f"convkey_fault_{os.getpid()}_{next(_names)}"
        names.append(name)
        return pg_server.create_database(name, template=TEMPLATE)

    yield make
    for name in names:
        pg_server.drop_database(name)


def meaning(dsn: str, business_id: int | None = None) -> dict[str, list]:
    """The data without ids: each live conversation as (business, key, lead, phone, push name,
    its provider message ids, its identities); pending persons as their identity sets; counts
    of tombstones and of messages."""
    with psycopg.connect(dsn) as conn:
        live = conn.execute("""
            SELECT c.business_id, c.canonical_key, c.lead_id, c.phone_e164, c.push_name,
                   coalesce((SELECT array_agg(m.provider_message_id ORDER BY m.provider_message_id)
                               FROM convkey.whatsapp_message m
                              WHERE m.business_id = c.business_id AND m.conversation_id = c.id), '{}'),
                   coalesce((SELECT array_agg(i.kind || ':' || i.value ORDER BY i.kind, i.value)
                               FROM convkey.identity i
                              WHERE i.business_id = c.business_id AND i.conversation_id = c.id), '{}')
              FROM convkey.whatsapp_conversation c
             WHERE c.merged_into_id IS NULL AND (%(b)s::bigint IS NULL OR c.business_id = %(b)s)""",
                            {"b": business_id}).fetchall()
        pending = conn.execute("""
            SELECT i.business_id, array_agg(i.kind || ':' || i.value ORDER BY i.kind, i.value)
              FROM convkey.identity i
             WHERE i.pending_person_id IS NOT NULL AND (%(b)s::bigint IS NULL OR i.business_id = %(b)s)
             GROUP BY i.business_id, i.pending_person_id""", {"b": business_id}).fetchall()
        counts = conn.execute("""
            SELECT (SELECT count(*) FROM convkey.whatsapp_conversation c
                     WHERE c.merged_into_id IS NOT NULL AND (%(b)s::bigint IS NULL OR c.business_id = %(b)s)),
                   (SELECT count(*) FROM convkey.whatsapp_message m
                     WHERE %(b)s::bigint IS NULL OR m.business_id = %(b)s)""", {"b": business_id}).fetchone()
    as_tuple = lambda row: tuple(tuple(v) if isinstance(v, list) else v for v in row)  # noqa: E731
    return {"live": sorted((as_tuple(r) for r in live), key=repr),
            "pending": sorted((as_tuple(r) for r in pending), key=repr),
            "tombstones": counts[0], "messages": counts[1]}


def assert_same_meaning(expected: dict, actual: dict) -> None:
    for part in ("live", "pending", "tombstones", "messages"):
        if expected[part] != actual[part]:
            if isinstance(expected[part], list):
                missing = [r for r in expected[part] if r not in actual[part]][:3]
                extra = [r for r in actual[part] if r not in expected[part]][:3]
                pytest.fail(f"{part} differ from the uninterrupted run: missing {missing}, extra {extra}")
            pytest.fail(f"{part}: {actual[part]} after faults, {expected[part]} uninterrupted")


def invariant_violations(dsn: str) -> list[str]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return check_invariants(conn)


def wait_for_backends_gone(dsn: str, app: str | None, *, keep: tuple[int, ...] = (), timeout: float = 30) -> None:
    """A SIGKILLed client's backends linger until their statement ends (with their locks): wait
    until no backend of ``app`` (None: any but ``keep``) is left on the database."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        deadline = time.monotonic() + timeout
        while conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                           "AND backend_type = 'client backend' AND pid <> pg_backend_pid() "
                           "AND (application_name = %s OR %s::text IS NULL) AND NOT pid = ANY(%s)",
                           (app, app, list(keep))).fetchone()[0]:
            assert time.monotonic() < deadline, f"{app} backends still there after {timeout} s"
            time.sleep(0.02)


class Killer(threading.Thread):
    """Terminates (pg_terminate_backend) the backends of ``app`` at random moments: after a random
    sleep, a backend seen active in pg_stat_activity (80% of the time; otherwise whatever its
    state, which hits idle moments between calls too). So that the victim always gets on, it kills
    again only after ``progress()`` moved (an operation got through since the last kill).
    ``kills`` counts the backends terminated (each once, though a dying one lingers in the view)."""

    def __init__(self, dsn: str, app: str, rng: random.Random, mean_ms: float, progress=lambda: 0,
                 limit: int = 10**9):
        super().__init__(daemon=True)
        self.dsn, self.app, self.rng, self.mean, self.progress = dsn, app, rng, mean_ms / 1000, progress
        self.limit = limit
        self.stop = threading.Event()
        self.killed: set[int] = set()
        self.error: BaseException | None = None

    @property
    def kills(self) -> int:
        return len(self.killed)

    def run(self) -> None:
        try:
            with psycopg.connect(self.dsn, autocommit=True) as conn:
                last = None
                while not self.stop.wait(self.rng.uniform(0, 2 * self.mean)):
                    if self.progress() == last or self.kills >= self.limit:
                        continue
                    only_active = self.rng.random() < 0.8
                    for pid, killed in conn.execute(
                            "SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s "
                            "AND pid <> pg_backend_pid() AND NOT pid = ANY(%s) AND (state = 'active' OR NOT %s)",
                            (self.app, list(self.killed), only_active)):
                        if killed:
                            self.killed.add(pid)
                            last = self.progress()
        except BaseException as exc:  # reported by the test
            self.error = exc


# --- the invariant checker itself ------------------------------------------------------------------
def test_invariant_checker_finds_each_kind_of_corruption(db_conn):
    """check_invariants is silent on consistent data and names each rule a corruption breaks."""
    q = lambda sql, *p: db_conn.execute(sql, p).fetchone()  # noqa: E731
    conv = lambda wa: q("SELECT conversation_id FROM convkey.get_or_create_conversation(1, %s)", wa)[0]  # noqa: E731
    a, b = conv("972531000001@s.whatsapp.net"), conv("972531000002@s.whatsapp.net")
    c = conv("83300000000003@lid")
    q("SELECT * FROM convkey.record_message(1, '972531000001@s.whatsapp.net', 'in', 'm1')")
    q("SELECT * FROM convkey.record_message(1, '972531000002@s.whatsapp.net', 'in', 'm2')")
    q("SELECT convkey.merge_conversations(1, %s, %s)", a, b)  # b is a tombstone now
    q("SELECT convkey.link_identity(1, '83300000000009@lid', '972531000009@s.whatsapp.net')")  # pending
    assert check_invariants(db_conn) == [] and check_invariants(db_conn, 1) == []

    def broken(setup: str, *params, drop: str | None = None) -> list[str]:
        db_conn.execute("BEGIN")
        try:
            db_conn.execute("SET LOCAL session_replication_role = replica")  # no triggers, no FK checks
            if drop:
                db_conn.execute(f"ALTER TABLE {drop}")
            db_conn.execute(setup, params)
            return check_invariants(db_conn)
        finally:
            db_conn.execute("ROLLBACK")

    def only(rule: str, found: list[str], *also: str) -> None:
        assert sorted(f.split(":")[0] for f in found) == sorted((rule, *also)), found

    only("identity owned by a missing, merged-away or unresolved conversation",
         broken("UPDATE convkey.identity SET conversation_id = %s WHERE value = '83300000000003'", b),
         "live conversation whose key is not its strongest identity")  # c owns nothing now
    only("live conversation whose key is not its strongest identity",
         broken("UPDATE convkey.whatsapp_conversation SET canonical_key = 'lid:1:1' WHERE id = %s", a))
    only("live conversation whose key is not its strongest identity",  # owns a phone, keyed by a LID
         broken("UPDATE convkey.identity SET conversation_id = %s WHERE value = '+972531000001'", c))
    only("live conversation whose key is not its strongest identity",  # a lead it does not own
         broken("UPDATE convkey.whatsapp_conversation SET lead_id = 999, canonical_key = 'lead:1:999' "
                "WHERE id = %s", a))
    only("message in a missing or merged-away conversation",
         broken("UPDATE convkey.whatsapp_message SET conversation_id = %s WHERE provider_message_id = 'm1'", b))
    only("identity without exactly one owner",
         broken("UPDATE convkey.identity SET conversation_id = %s WHERE pending_person_id IS NOT NULL "
                "AND kind = 'lid'", a, drop="convkey.identity DROP CONSTRAINT ck_identity_one_owner"))
    found = broken("UPDATE convkey.whatsapp_conversation SET merged_into_id = %s, canonical_key = NULL "
                   "WHERE id = %s", b, a)
    assert any(f.startswith("tombstone that does not resolve") for f in found), found  # a cycle
    only("merge not undone whose duplicate is live",
         broken("UPDATE convkey.whatsapp_conversation SET merged_into_id = NULL WHERE id = %s", b))
    found = broken("UPDATE convkey.whatsapp_conversation SET canonical_key = (SELECT canonical_key FROM "
                   "convkey.whatsapp_conversation WHERE id = %s) WHERE id = %s", a, c,
                   drop="convkey.whatsapp_conversation DROP CONSTRAINT uq_whatsapp_conversation_canonical_key")
    assert found[0].startswith("live duplicate key: 1 row(s)"), found
    assert check_invariants(db_conn, 2) == []


# --- terminated backends inside API calls ----------------------------------------------------------
RECORD = ("SELECT inserted FROM convkey.record_message(1, %s, %s, %s, %s, p_phone_e164 => %s, p_sent_at => %s)")
LINK = "SELECT convkey.link_identity(1, %s, %s, 'history')"
ASSIGN = ("SELECT convkey.assign_lead(1, (SELECT conversation_id FROM convkey.get_or_create_conversation(1, %s)), "
          "%s)")
# the CRM joins two people's threads by hand; again after it committed, it is a no-op
MERGE = ("SELECT CASE WHEN s.a <> s.b THEN convkey.merge_conversations(1, s.a, s.b, 'manual') END FROM ("
         "SELECT (SELECT conversation_id FROM convkey.get_or_create_conversation(1, %s)) AS a, "
         "       (SELECT conversation_id FROM convkey.get_or_create_conversation(1, %s)) AS b) AS s")


@dataclass(frozen=True)
class Op:
    kind: str
    sql: str
    params: tuple
    pmid: str | None = None


def api_stream(people: int, seed: int) -> list[Op]:
    """A day of calls for ``people`` people from one connection: messages under every identifier
    form (LID first, phone revealed later by link_identity or by a message carrying both), retries
    and late deliveries, leads assigned midway, threads merged by hand. Every call is idempotent."""
    rng = random.Random(seed)
    phone = lambda k: f"97253{k:07d}"  # noqa: E731
    lid = lambda k: f"{83300000000000 + k}"  # noqa: E731
    leads = {k: 5000 + k for k in range(people) if rng.random() < 0.3}
    free = [k for k in range(people) if k not in leads]
    rng.shuffle(free)
    pairs = [(free[i], free[i + 1]) for i in range(0, max(0, len(free) // 5 * 2 - 1), 2)]
    per_person: dict[int, list[tuple]] = {}
    for k in range(people):
        p, has_lid = phone(k), rng.random() < 0.7
        forms = [f"{p}@s.whatsapp.net", f"{p}:{k % 9 + 1}@s.whatsapp.net", f"{p}@c.us", f"+{p}"]
        events: list[tuple] = []
        if has_lid and rng.random() < 0.5:  # a LID-first contact
            events += [("msg", f"{lid(k)}@lid", None) for _ in range(rng.randint(1, 3))]
        for _ in range(rng.randint(2, 6)):
            if has_lid and rng.random() < 0.3:
                events.append(("msg", f"{lid(k)}@lid", f"+{p}" if rng.random() < 0.5 else None))
            else:
                events.append(("msg", rng.choice(forms), None))
        if has_lid:
            events.insert(rng.randint(1, len(events)), ("link", f"{lid(k)}@lid", f"{p}@s.whatsapp.net"))
        if k in leads:
            events.insert(rng.randint(1, len(events)), ("lead", f"{p}@s.whatsapp.net", leads[k]))
        per_person[k] = events
    for a, b in pairs:
        per_person[a].append(("merge", f"{phone(a)}@s.whatsapp.net", f"{phone(b)}@s.whatsapp.net"))
    # interleave the people, each one's events in order
    queues = {k: list(reversed(ev)) for k, ev in per_person.items()}
    ops: list[Op] = []
    sent: list[Op] = []
    while queues:
        k = rng.choice(list(queues))
        kind, x, y = queues[k].pop()
        if not queues[k]:
            del queues[k]
        if kind == "msg":
            at = T0 + dt.timedelta(seconds=len(ops) - (rng.randint(60, 600) if rng.random() < 0.1 else 0))
            pmid = f"f-{len(ops)}"
            op = Op(kind, RECORD, (x, rng.choice(("in", "in", "out")), pmid, "hi", y, at), pmid)
            sent.append(op)
        elif kind == "link":
            op = Op(kind, LINK, (x, y))
        elif kind == "lead":
            op = Op(kind, ASSIGN, (x, y))
        else:
            op = Op(kind, MERGE, (x, y))
        ops.append(op)
        if sent and rng.random() < 0.08:
            ops.append(rng.choice(sent))  # a webhook retry: the same provider message id again
    return ops


def apply_ops(dsn: str, ops: list[Op], app: str, done: list[int] | None = None) -> tuple[set[str], list[Op]]:
    """Apply the calls in order from one connection; a call cut by a lost connection is re-run on
    a new one until it returns. ``done[0]`` counts the calls that got through. Returns (provider
    ids whose record_message returned, interrupted ops)."""
    done = done if done is not None else [0]
    acked: set[str] = set()
    interrupted: list[Op] = []
    conn: psycopg.Connection | None = None
    try:
        for op in ops:
            for attempt in itertools.count():
                assert attempt < 50, f"{op} never got through"
                try:
                    if conn is None:
                        conn = psycopg.connect(dsn, autocommit=True, application_name=app, connect_timeout=10)
                    conn.execute(op.sql, op.params).fetchone()
                    done[0] += 1
                    break
                except (psycopg.OperationalError, psycopg.InterfaceError):
                    interrupted.append(op)
                    if conn is not None:
                        conn.close()
                    conn = None
            if op.pmid:
                acked.add(op.pmid)
    finally:
        if conn is not None:
            conn.close()
    return acked, interrupted


@pytest.mark.reliability
def test_terminated_backends_inside_messages_links_leads_and_merges(clone, reliability_record):
    people = reliability_scale(60, 300)
    ops = api_stream(people, SEED)
    reference, faulty = clone(), clone()
    apply_ops(reference, ops, "convkey-fault-reference")
    app = f"convkey-fault-victim-{os.getpid()}"
    done = [0]
    killer = Killer(faulty, app, random.Random(SEED), mean_ms=20, progress=lambda: done[0], limit=len(ops) // 6)
    killer.start()
    try:
        acked, interrupted = apply_ops(faulty, ops, app, done)
    finally:
        killer.stop.set()
        killer.join()
    assert killer.error is None, killer.error
    violations = invariant_violations(faulty)
    with psycopg.connect(faulty) as conn:
        stored = dict(conn.execute("SELECT provider_message_id, count(*) FROM convkey.whatsapp_message "
                                   "GROUP BY 1").fetchall())
    lost = sorted(p for p in acked if stored.get(p) != 1)
    after = meaning(faulty)
    # the interrupted calls once more, without faults: they change nothing
    apply_ops(faulty, list(dict.fromkeys(interrupted)), app)
    cut = collections.Counter(op.kind for op in interrupted)
    reliability_record(events=len(ops), faults=killer.kills, retries=len(interrupted),
                       violations=len(violations) + len(lost),
                       calls_cut=", ".join(f"{k} {n}" for k, n in sorted(cut.items())))
    assert violations == []
    assert lost == [] and len(acked) == len({op.pmid for op in ops if op.pmid})
    assert killer.kills >= 3 and interrupted, "the killer hardly hit anything: the test tested nothing"
    assert meaning(faulty) == after
    assert_same_meaning(meaning(reference), after)


# --- terminated backends inside backfill batches ---------------------------------------------------
# what pg_stat_activity shows while the backfill works in a phase (the merge phase: its set-based
# chunks, then the per-row procedure for the rest)
PHASE_STATEMENTS = {"resolve": r"_backfill_resolve_batch", "merge": r"_backfill_merge_(batch|simple)"}

class BatchKiller(threading.Thread):
    """Terminates the backfill's backend inside a batch statement of the phase each target names
    (when pg_stat_activity shows one active, after a random number of sightings)."""

    def __init__(self, dsn: str, targets: list[str], rng: random.Random):
        super().__init__(daemon=True)
        self.dsn, self.targets, self.rng = dsn, list(targets), rng
        self.stop = threading.Event()
        self.kills: list[str] = []
        self.killed: set[int] = set()  # a terminated backend lingers in the view for a moment
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with psycopg.connect(self.dsn, autocommit=True) as conn:
                for phase in self.targets:
                    skip = self.rng.randint(0, 8)
                    while not self.stop.is_set():
                        pids = [r[0] for r in conn.execute(
                            "SELECT pid FROM pg_stat_activity WHERE application_name = 'convkey-backfill' "
                            "AND state = 'active' AND query ~ %s AND NOT pid = ANY(%s)",
                            (PHASE_STATEMENTS[phase], list(self.killed)))]
                        if pids and skip == 0:
                            if conn.execute("SELECT pg_terminate_backend(%s)", (pids[0],)).fetchone()[0]:
                                self.kills.append(phase)
                                self.killed.add(pids[0])
                            break
                        skip -= bool(pids)
                        time.sleep(0.002)
        except BaseException as exc:
            self.error = exc


def _backfilled_twin(clone, people: int, seed: int):
    """Two clones with the same legacy data: the reference backfilled without faults (serially),
    the other untouched; and the data's truth."""
    reference, faulty = clone(), clone()
    for dsn in (reference, faulty):
        with psycopg.connect(dsn, autocommit=True) as conn:
            legacy = generate_legacy(conn, people, seed=seed, broken=2)
    run_backfill(reference, execute=True, batch_size=10)
    return reference, faulty, legacy


@pytest.mark.reliability
def test_terminated_backends_inside_backfill_batches(clone, reliability_record):
    people = reliability_scale(300, 2000)
    kills = max(4, min(10, people // 200))
    reference, faulty, legacy = _backfilled_twin(clone, people, seed=SEED % 1000)
    rng = random.Random(SEED)
    targets = ["resolve"] * (kills // 2) + ["merge"] * (kills - kills // 2)
    killer = BatchKiller(faulty, targets, rng)
    killer.start()
    runs = 0
    try:
        while True:
            runs += 1
            assert runs <= kills + 5
            try:
                run_backfill(faulty, execute=True, batch_size=10)
                break
            except psycopg.OperationalError:
                continue
    finally:
        killer.stop.set()
        killer.join()
    assert killer.error is None, killer.error
    violations = invariant_violations(faulty)
    reliability_record(events=people, faults=runs - 1, retries=runs - 1, violations=len(violations))
    assert violations == []
    # every run but the last was cut by a termination (one may land as a run ends, unnoticed)
    assert len(killer.kills) - 1 <= runs - 1 <= len(killer.kills), (runs, killer.kills)
    assert "resolve" in killer.kills and "merge" in killer.kills, killer.kills
    with psycopg.connect(faulty, autocommit=True) as conn:
        check_one_conversation_per_person(conn, legacy)
    assert_same_meaning(meaning(reference), meaning(faulty))
    # and once more: nothing left to do
    again = run_backfill(faulty, execute=True, batch_size=10)
    assert again.resolved == {} and again.groups == [] and again.merge == {}


# --- kill -9 of the runner -------------------------------------------------------------------------
def _convkey(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "convkey", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def _kill_9_backfills(faulty: str, args: tuple[str, ...], targets: list[str], rng: random.Random,
                      app: str = "convkey-backfill") -> list[str]:
    """One ``convkey backfill --execute --json *args`` per target phase, each SIGKILLed when a
    backend named like ``app`` is seen active in that phase's statement (after a random number of
    sightings), until a run finishes first. Returns the phases that were cut."""
    landed: list[str] = []
    with psycopg.connect(faulty, autocommit=True) as watch:
        for phase in targets:
            proc = _convkey("backfill", "--dsn", faulty, "--execute", "--json", *args)
            skip = rng.randint(0, 10 if phase == "resolve" else 3)
            while proc.poll() is None:
                seen = watch.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE %s "
                                     "AND state = 'active' AND query ~ %s",
                                     (app, PHASE_STATEMENTS[phase])).fetchone()[0]
                if seen and skip == 0:
                    proc.send_signal(signal.SIGKILL)
                    landed.append(phase)
                    break
                skip -= bool(seen)
                time.sleep(0.002)
            out, err = proc.communicate()
            if proc.returncode != -signal.SIGKILL:  # it finished before the moment came
                assert proc.returncode == 1, err  # unresolvable rows remain: the broken ones
                break
            wait_for_backends_gone(faulty, None, keep=(watch.info.backend_pid,))
    return landed


def _finish_after_kills(faulty: str, reference: str, legacy, people: int, landed: list[str], args: tuple[str, ...],
                        reliability_record) -> None:
    """Run the backfill once more to the end; then no invariant is violated, every person has one
    conversation, and the data means what the uninterrupted (serial) reference means."""
    done = _convkey("backfill", "--dsn", faulty, "--execute", "--json", *args)
    out, err = done.communicate(timeout=600)
    assert done.returncode == 1 and '"unresolvable": 2' in out, err
    violations = invariant_violations(faulty)
    reliability_record(events=people, faults=len(landed), retries=len(landed), violations=len(violations))
    assert violations == []
    with psycopg.connect(faulty, autocommit=True) as conn:
        check_one_conversation_per_person(conn, legacy)
    assert_same_meaning(meaning(reference), meaning(faulty))


@pytest.mark.reliability
def test_kill_9_mid_backfill_in_the_resolve_and_the_merge_phase(clone, reliability_record):
    people = reliability_scale(300, 1200)
    kills = max(4, min(8, people // 150))
    reference, faulty, legacy = _backfilled_twin(clone, people, seed=SEED % 1000 + 1)
    targets = ["resolve"] * (kills // 2) + ["merge"] * (kills - kills // 2)
    landed = _kill_9_backfills(faulty, ("--batch-size", "8"), targets, random.Random(SEED + 1))
    assert "resolve" in landed and "merge" in landed, landed
    _finish_after_kills(faulty, reference, legacy, people, landed, (), reliability_record)


@pytest.mark.reliability
def test_kill_9_mid_parallel_backfill_then_rerun_equals_the_serial_result(clone, reliability_record):
    """convkey backfill --workers 2, killed -9 while its workers' resolve batches or its lanes'
    set-based chunks run, then run again: every batch and chunk committed or rolled back whole,
    the resolve cursor never passed a batch that had not committed, and the result means what the
    serial backfill of the same data means."""
    people = reliability_scale(300, 1200)
    kills = max(4, min(8, people // 150))
    reference, faulty, legacy = _backfilled_twin(clone, people, seed=SEED % 1000 + 2)
    workers = ("--workers", "2")
    targets = ["resolve"] * (kills // 2) + ["merge"] * (kills - kills // 2)
    landed = _kill_9_backfills(faulty, ("--batch-size", "8", *workers), targets, random.Random(SEED + 2),
                               app="convkey-backfill-%")
    assert "resolve" in landed and "merge" in landed, landed
    _finish_after_kills(faulty, reference, legacy, people, landed, workers, reliability_record)


def _demo_file(tmp_path: Path, people: int, seed: int) -> tuple[Path, int, int]:
    """The demo's Baileys stream for ``people`` as a file: (path, lines, messages)."""
    stream = demo_stream(people, seed)
    path = tmp_path / f"demo-{people}-{seed}.jsonl"
    path.write_text("\n".join(stream.lines) + "\n", encoding="utf-8")
    return path, len(stream.lines), stream.counts["messages"]


def _messages(conn: psycopg.Connection) -> int:
    return conn.execute("SELECT count(*) FROM convkey.whatsapp_message").fetchone()[0]


@pytest.mark.reliability
def test_kill_9_mid_ingest_then_rerun_equals_an_uninterrupted_ingest(clone, tmp_path, reliability_record):
    people = reliability_scale(60, 250)
    kills = max(3, min(6, people // 40))
    path, lines, total = _demo_file(tmp_path, people, SEED % 97)
    reference, faulty = clone(), clone()
    assert run_ingest(reference, str(path), business_id=3, out=io.StringIO(), err=io.StringIO()) == 0
    rng = random.Random(SEED + 2)
    landed = 0
    with psycopg.connect(faulty, autocommit=True) as watch:
        for _ in range(kills):
            have = _messages(watch)
            target = have + rng.randint(1, max(1, (total - have) // 2))
            proc = _convkey("ingest", str(path), "--dsn", faulty, "--business-id", "3",
                            "--workers", str(rng.choice((1, 2, 3))), "--json")
            while proc.poll() is None and _messages(watch) < target:
                time.sleep(0.001)
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                landed += 1
            proc.communicate()
            if proc.returncode == 0:
                break
            assert proc.returncode == -signal.SIGKILL
            wait_for_backends_gone(faulty, None, keep=(watch.info.backend_pid,))
    violations_mid = invariant_violations(faulty)  # the state a kill left behind is consistent too
    rerun = _convkey("ingest", str(path), "--dsn", faulty, "--business-id", "3", "--json")
    out, err = rerun.communicate(timeout=600)
    violations = violations_mid + invariant_violations(faulty)
    reliability_record(events=lines, faults=landed, retries=landed, violations=len(violations))
    assert rerun.returncode == 0, err
    assert violations == []
    assert landed >= 2
    assert_same_meaning(meaning(reference), meaning(faulty))


# --- PostgreSQL restarted mid-ingest ----------------------------------------------------------------
@pytest.fixture
def own_cluster():
    """A throwaway cluster of this test's own (not the session's shared server, whose other
    connections must not see the restart), migrated with the real migrate code."""
    try:
        find_bindir()
    except ConfigurationError as exc:
        pytest.skip(f"restarting PostgreSQL needs the server binaries (initdb, pg_ctl): {exc}")
    home = Path(tempfile.mkdtemp(prefix="convkey-restart-"))
    os.chmod(home, 0o755)
    cluster = EmbeddedCluster(home, port=5439, fsync=False, dbname="convkey_restart")
    try:
        cluster.start()
        migrate(cluster.url())
        yield cluster
    finally:
        cluster.destroy()


@pytest.mark.reliability
def test_postgres_restart_mid_ingest(own_cluster, clone, tmp_path, reliability_record):
    people = reliability_scale(60, 300)
    restarts = max(1, min(4, people // 100))
    path, lines, total = _demo_file(tmp_path, people, SEED % 89)
    reference, faulty = clone(), own_cluster.url()
    assert run_ingest(reference, str(path), business_id=4, out=io.StringIO(), err=io.StringIO()) == 0
    rng = random.Random(SEED + 3)
    landed, outcomes = 0, []
    for _ in range(restarts):
        with psycopg.connect(faulty, autocommit=True) as watch:
            have = _messages(watch)
            target = have + rng.randint(1, max(1, (total - have) // 2))
            proc = _convkey("ingest", str(path), "--dsn", faulty, "--business-id", "4",
                            "--workers", str(rng.choice((1, 2))))
            while proc.poll() is None and _messages(watch) < target:
                time.sleep(0.001)
        running = proc.poll() is None
        if running:
            own_cluster.stop()  # pg_ctl stop -m fast: every connection is cut, the server shuts down
            own_cluster.start()
            landed += 1
        out, err = proc.communicate(timeout=600)
        outcomes.append(proc.returncode)
        assert "Traceback" not in err, err
        if running:
            # the runner stops on the lost connection (exit 2, saying so) or, had it been between
            # calls with no connection in use, carries on
            assert proc.returncode in (0, 2), err
            if proc.returncode == 2:
                assert "convkey ingest: stopped at line" in err and "run the file again" in err, err
                assert out.startswith("ingest: aborted after"), out
        if proc.returncode == 0:
            break
    violations_mid = invariant_violations(faulty)
    rerun = _convkey("ingest", str(path), "--dsn", faulty, "--business-id", "4", "--json")
    out, err = rerun.communicate(timeout=600)
    violations = violations_mid + invariant_violations(faulty)
    reliability_record(events=lines, faults=landed, retries=landed, violations=len(violations),
                       runner_exits="/".join(map(str, outcomes)))
    assert rerun.returncode == 0, err
    assert violations == []
    assert landed >= 1, outcomes
    assert_same_meaning(meaning(reference), meaning(faulty))
