"""``convkey backfill``: give legacy conversations their keys and merge the duplicates, dry run first.

Two phases, both batched by primary-key ranges with a persistent cursor (resumable) and both
idempotent (a second run changes nothing):

1. **resolve** (``convkey._backfill_resolve_batch``): the runner reads a batch of unresolved
   rows, normalizes the human phone formats in it with phonenumbers (each distinct raw string
   once) and derives each row's identities with its copy of the SQL grammar (``convkey.jid``,
   held equal to it by the shared vectors; LID digits never become phones), and one SQL call
   stages the batch and lets every row whose identities are new claim them and get its key,
   set-based. A row the runner leaves out (one SQL would give a reason) is derived by the batch
   with the SQL grammar. Rows that collide with an identity or another row wait for phase 2.
   The next batch is read, normalized and derived in a thread while the server resolves this
   one: the derivation was the batch's largest server CPU cost, and the runner's is 4x cheaper.
   With ``workers`` > 1 (``--workers``, execute only) the batches are resolved on that many
   connections at once (``Backfill._resolve_batches``).
2. **merge**: rows sharing an identity end up as one conversation (the most recent survives)
   through the audited merge primitive, under the same rules as get-or-create (different leads
   never merge, two phones never merge through a LID). Per chunk of waiting rows, the plain
   cases among the rows that come first in the chunk for all they touch (one conversation owns
   what the row shares and its lead and phone agree, or one pending person without a lead or
   another phone does; no separation) are done set-based in one transaction
   (``convkey._backfill_merge_simple``); every other row goes through the same resolver as
   get-or-create, in its own transaction (``convkey._backfill_merge_batch``). With
   ``workers`` > 1 the set-based chunks run first on that many connections, one lane of the
   waiting rows each (``Backfill._merge_lanes``), and the serial pass above then merges what
   they left, in id order. With ``--execute`` the phase starts with ANALYZE of the tables the
   resolve phase has just filled (``Backfill.refresh_statistics``).

The default is a dry run: the same work in one transaction that is rolled back, so the plan it
prints is exactly what ``--execute`` does. Note that a dry run holds its row locks until it ends.

Every session of a run sets ``wal_compression`` (``wal_compression_for``: lz4 when the server
does not compress and the role may set it): the merge phase's writes are mostly full-page
images, and compressing them is the one WAL setting a session can choose.
"""

from __future__ import annotations

import gc
import json
import logging
import queue
import re
import sys
import threading
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, TextIO

import psycopg
from psycopg.rows import dict_row

from . import queries
from .errors import InvalidIdentifier
from .jid import CUSTOMER_KINDS, international_phone, parse_wa_id
from .phone import mask, normalize_phone
from .progress import Progress

logger = logging.getLogger("convkey.backfill")

_BSUID = re.compile(r"^\s*[A-Za-z]{2}(\.ENT)?\.[0-9]+\s*$", re.IGNORECASE)
RETRY_SQLSTATES = {"40P01", "40001", "55P03"}  # deadlock, serialization, lock_not_available
MAX_RETRIES = 20
SAMPLE = 20
# set-based rounds per merge chunk: a person's third row waits for the second (each round, one transaction)
SIMPLE_ROUNDS = 3
MERGE_CHUNK = 1000  # waiting rows per merge chunk (a set-based chunk's transaction)
# rows the batches of a parallel resolve phase hold identity locks for at once (about 1.3 advisory locks
# a row, until each commits): some 3,900, within PostgreSQL's default lock table (64 per connection)
LANE_ROWS = 3000
RESOLVE_GC_EVERY = 100_000  # allocations between two collections of the youngest generation (_fewer_collections)


def lane_rows(workers: int, lock_table: int, rows: int) -> int:
    """Rows per batch or chunk of each of ``workers`` parallel connections, at most ``rows``: all of
    them together hold the advisory locks of at most half as many rows as the server's shared lock
    table has slots (``lock_table``; 1.3 locks a row on average, so some 2 a row still fit), and
    at least one row each. On a default server (64 x 100 slots) that is no limit; on a small one
    (say max_connections = 6) batches shrink rather than fail with SQLSTATE 53200."""
    return max(1, min(rows, lock_table // 2 // workers))


@dataclass
class Report:
    execute: bool
    business_id: int | None
    rows_read: int = 0
    resolved: dict[str, int] = field(default_factory=dict)
    deferred: int = 0
    merge: dict[str, int] = field(default_factory=dict)
    set_based: int = 0  # of the merge outcomes, rows merged by the set-based path
    # Totals come from the database; the lists are samples (the first SAMPLE, in key order), so the
    # runner's memory does not grow with the data. The whole lists: convkey.conversation_merge
    # (reason 'backfill') and convkey.backfill_row (status 'unresolvable').
    group_count: int = 0
    duplicates_merged: int = 0
    groups: list[dict[str, Any]] = field(default_factory=list)
    messages_moved: int = 0
    unresolvable_count: int = 0
    unresolvable: list[dict[str, Any]] = field(default_factory=list)
    retries: int = 0
    workers: int = 1  # connections each phase ran on
    wal_compression: str | None = None  # the method this run's sessions set, None: the server's setting
    analyzed: list[str] = field(default_factory=list)  # tables ANALYZEd before the merge phase
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "mode": "execute" if self.execute else "dry-run",
            "business_id": self.business_id,
            "rows_read": self.rows_read,
            "resolved_by_kind": dict(sorted(self.resolved.items())),
            "deferred_to_merge": self.deferred,
            "merge_outcomes": dict(sorted(self.merge.items())),
            "merge_set_based": self.set_based,
            "duplicate_groups": self.group_count,
            "duplicates_merged": self.duplicates_merged,
            "duplicate_groups_sample": self.groups,
            "messages_moved": self.messages_moved,
            "unresolvable": self.unresolvable_count,
            "unresolvable_sample": self.unresolvable,
            "retries": self.retries,
            "workers": self.workers,
            "wal_compression": self.wal_compression,
            "analyzed": self.analyzed,
            "seconds": round(self.seconds, 3),
        }

    def plan(self) -> dict[str, Any]:
        """What the run does to the data, without timings: a dry run's equals the execute's."""
        d = self.as_dict()
        for k in ("mode", "retries", "workers", "wal_compression", "analyzed", "seconds"):
            d.pop(k)
        return d


def _human_phone(value: str | None, region: str) -> tuple[str | None, str | None]:
    """(E.164, None) or (None, reason) for a human-typed phone; (None, None) when empty."""
    if value is None or not value.strip():
        return None, None
    try:
        return normalize_phone(value, region), None
    except InvalidIdentifier:
        return None, f"not a possible phone number: {mask(value)}"


def normalize_batch(rows: list[dict[str, Any]], region: str) -> tuple[list, list, list]:
    """For each row: the runner's reading of phone_e164 and of a human-format customer_wa_id."""
    phones, wa_phones, errors = [], [], []
    for row in rows:
        phone, err = _human_phone(row["phone_e164"], region)
        if err:
            err = "phone_e164 is " + err
        wa = row["customer_wa_id"]
        wa_phone = None
        if wa is not None and wa.strip() and "@" not in wa and not _BSUID.match(wa):
            wa_phone, wa_err = _human_phone(wa, region)
            err = err or (wa_err and "customer_wa_id is " + wa_err)
        phones.append(phone)
        wa_phones.append(wa_phone)
        errors.append(err)
    return phones, wa_phones, errors


def derive_identities(business_id: int, lead_id: int | None, wa_id: str | None, phone: str | None,
                      wa_phone: str | None, error: str | None) -> tuple[list[str], list[str]] | None:
    """A legacy row's identities, strongest first, as ``convkey._backfill_identities`` derives them,
    read with the runner's grammar (``jid``, held equal to the SQL grammar by the shared vectors);
    None for a row that function would give a reason (the batch then derives it itself, reason
    and all) or that the runner cannot read as SQL does."""
    if error is not None or business_id <= 0 or (lead_id is not None and lead_id <= 0):
        return None
    if phone is not None and wa_phone is not None and phone != wa_phone:
        return None
    jid_phone = lid = bsuid = None
    try:
        # as SQL: nullif(btrim(customer_wa_id), '') unless customer_wa_id is a human phone format
        wa = wa_id.strip(" ") if wa_phone is None and wa_id is not None else None
        if wa:
            parsed = parse_wa_id(wa, "p_customer_wa_id")
            if parsed.kind not in CUSTOMER_KINDS:
                return None
            jid_phone, lid = parsed.phone_e164, parsed.lid
            bsuid = parsed.jid_user if parsed.kind == "bsuid" else None
        given = phone if phone is not None else wa_phone
        person_phone = jid_phone if given is None else international_phone(given, "p_phone_e164")
        if jid_phone is not None and person_phone != jid_phone:
            return None
    except InvalidIdentifier:  # ValueTooLong included
        return None
    kinds, values = [], []
    for kind, value in (("lead", None if lead_id is None else str(lead_id)), ("phone", person_phone), ("lid", lid),
                        ("bsuid", bsuid)):
        if value is not None:
            kinds.append(kind)
            values.append(value)
    return (kinds, values) if kinds else None


def _quoted(text: str) -> str:
    """A double-quoted element of a PostgreSQL array or record literal."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


# identifier texts an array literal holds as they are (the runner's grammar writes only these, and
# never the word NULL): no quotes, backslashes, braces, commas, spaces or empty elements to escape
_PLAIN_LIST = re.compile(r"[0-9A-Za-z+.]+(?:,[0-9A-Za-z+.]+)*", re.ASCII)


def _plain_list(texts: list[str]) -> str | None:
    """The elements of an array literal of ``texts`` when none needs quoting, else None."""
    joined = ",".join(texts)
    # one comma per separator: an element holding a comma (or an empty list) takes the quoted path
    if joined.count(",") == len(texts) - 1 and _PLAIN_LIST.fullmatch(joined) and "null" not in joined.lower():
        return joined
    return None


def candidates_literal(rows: list[tuple[int, int, list[str], list[str]] | None]) -> str:
    """The text of a convkey.backfill_candidate[] (business_id, conversation_id, kinds, vals, reason
    NULL), NULL elements for None."""
    def element(row: tuple[int, int, list[str], list[str]] | None) -> str:
        if row is None:
            return "NULL"
        b, i, kinds, values = row
        kinds_text, values_text = _plain_list(kinds), _plain_list(values)
        if kinds_text is not None and values_text is not None:
            # the common case, written directly: "(b,i,\"{k,k}\",\"{v,v}\",)"
            return f'"({b},{i},\\"{{{kinds_text}}}\\",\\"{{{values_text}}}\\",)"'
        kinds_text = "{" + ",".join(map(_quoted, kinds)) + "}"
        values_text = "{" + ",".join(map(_quoted, values)) + "}"
        return _quoted(f"({b},{i},{_quoted(kinds_text)},{_quoted(values_text)},)")
    return "{" + ",".join(map(element, rows)) + "}"


@contextmanager
def _fewer_collections() -> Iterator[None]:
    """Python's cyclic garbage collector at most every RESOLVE_GC_EVERY allocations (its youngest
    generation's threshold; 700 by default) for the block, then as it was. A resolve phase
    allocates some ten short-lived objects per row (rows, readings, identity lists, literal
    parts) and makes next to no reference cycles (those are still collected, later); at the
    default the collector took 5% of the CPU of preparing the batches (100,000 rows: 0.77 s,
    0.73 s with fewer collections)."""
    threshold = gc.get_threshold()
    gc.set_threshold(max(threshold[0], RESOLVE_GC_EVERY), *threshold[1:])
    try:
        yield
    finally:
        gc.set_threshold(*threshold)


class _LaneFeed:
    """The waiting rows of a parallel merge phase for its ``lanes`` workers: read in id order, a
    window of ``lanes`` chunks at a time with each row's lane (query backfill_lane_window, which
    looks up each row's owner once for all lanes), and handed to each lane in id order, a chunk
    at a time. The runner holds the keys of a few chunks per lane at most: it reads no further
    while a lane has fallen ``_LaneFeed.AHEAD`` chunks behind, and a lane whose own rows have run
    out takes the far end of the longest queue, whose lane would reach those rows last."""

    AHEAD = 4

    def __init__(self, backfill: Backfill, lanes: int, chunk: int):
        self.backfill = backfill
        self.lanes = lanes
        self.chunk = chunk
        self.lock = threading.Lock()
        self.queues: list[deque[dict[str, Any]]] = [deque() for _ in range(lanes)]
        self.after = (0, 0)
        self.read_all = False

    def take(self, k: int, conn: psycopg.Connection) -> list[dict[str, Any]]:
        """Lane ``k``'s next chunk (fewer rows at the end; none when every row was handed out);
        a window is read on ``conn``, the lane's connection, when its queue runs short."""
        with self.lock:
            mine = self.queues[k]
            while (len(mine) < self.chunk and not self.read_all
                   and max(map(len, self.queues)) < self.AHEAD * self.chunk):
                limit = self.lanes * self.chunk
                rows = self.backfill.q("backfill_lane_window", conn, after_business_id=self.after[0],
                                       after_id=self.after[1], business_id=self.backfill.business_id,
                                       lanes=self.lanes, limit=limit)
                self.read_all = len(rows) < limit
                if rows:
                    self.after = (rows[-1]["business_id"], rows[-1]["id"])
                for row in rows:
                    self.queues[row["lane"]].append(row)
            if mine:
                return [mine.popleft() for _ in range(min(self.chunk, len(mine)))]
            longest = max(self.queues, key=len)  # empty when every row was handed out
            taken = [longest.pop() for _ in range(min(self.chunk, len(longest) // 2 or len(longest)))]
            return taken[::-1]


class Backfill:
    def __init__(self, conn: psycopg.Connection, *, execute: bool, business_id: int | None, batch_size: int,
                 region: str, do_resolve: bool, do_merge: bool, progress: Progress, simple_merge: bool = True,
                 derive_ahead: bool = True, workers: int = 1, analyze: bool = True,
                 connect: Callable[[str], psycopg.Connection] | None = None):
        self.conn = conn
        self.workers = workers
        # several connections at once: execute only (a dry run is one transaction)
        self.parallel = execute and workers > 1 and connect is not None
        self.connect = connect  # a new autocommit connection, set up as conn (parallel phases)
        self.lock = threading.Lock()
        self.derive_ahead = derive_ahead
        self.execute = execute
        self.business_id = business_id
        self.scope = business_id or 0
        self.batch_size = batch_size
        self.region = region
        self.do_resolve = do_resolve
        self.do_merge = do_merge
        self.progress = progress
        self.simple_merge = simple_merge
        self.analyze = analyze
        self.report = Report(execute=execute, business_id=business_id, workers=workers if self.parallel else 1)

    def q(self, name: str, conn: psycopg.Connection | None = None, **params: Any) -> list[dict[str, Any]]:
        cur = (conn or self.conn).execute(queries.get(name), params)
        return cur.fetchall() if cur.description else []

    def retrying(self, name: str, conn: psycopg.Connection | None = None, **params: Any) -> list[dict[str, Any]]:
        """Run a batch statement; lock timeouts, deadlocks and serialization failures are retried."""
        for attempt in range(MAX_RETRIES):
            try:
                return self.q(name, conn, **params)
            except psycopg.Error as exc:
                if not self.execute or exc.sqlstate not in RETRY_SQLSTATES or attempt == MAX_RETRIES - 1:
                    raise
                with self.lock:
                    self.report.retries += 1
                logger.info("%s: SQLSTATE %s, retrying", name, exc.sqlstate)
                time.sleep(min(0.05 * 2**attempt, 2.0))
        raise AssertionError("unreachable")

    def lock_table(self) -> int:
        """Slots of the server's shared lock table, where advisory locks are kept too."""
        return self.q("backfill_lock_table")[0]["slots"]

    def _start(self, phase: str) -> tuple[int, int]:
        """Where a phase starts: the cursor of an unfinished earlier run, else the beginning."""
        rows = self.q("backfill_cursor", scope=self.scope, phase=phase)
        if rows and rows[0]["finished_at"] is None:
            return rows[0]["last_business_id"], rows[0]["last_id"]
        self.q("backfill_restart_phase", scope=self.scope, phase=phase)
        return 0, 0

    def resolve_phase(self) -> None:
        after = self._start("resolve")
        total = self.q("backfill_unresolved_count", after_business_id=after[0], after_id=after[1],
                       business_id=self.business_id)[0]["n"]
        self.progress.start("resolve", total)
        with _fewer_collections():
            self._resolve_batches(after)
        self.q("backfill_finish_phase", scope=self.scope, phase="resolve")
        self.progress.finish()

    def _resolve_batches(self, after: tuple[int, int]) -> None:
        """The resolve phase's batches, read in order. The next batch is read before this one is
        resolved (a batch writes only its own rows), then normalized and its identities derived
        in a thread while the server works on the ones before it: phonenumbers and the grammar
        are the runner's whole CPU.

        One worker: each batch is claimed on the runner's connection once the one before it is
        done, and moves the cursor to its own end. More (parallel): each batch is claimed on
        whichever of ``workers`` connections is free, with p_shared (convkey.
        _backfill_resolve_batch: the backfill lock shared, the rows' identities try-locked; a row
        whose identity another batch or a webhook holds waits for the merge phase). Batches then
        commit out of order, so each moves the cursor only to the end of the batches that had all
        committed when it was sent: a rerun redoes at most the batches that were in flight, which
        change nothing the second time."""
        workers, size = 1, self.batch_size
        if self.parallel:
            # LANE_ROWS / workers rows at most, fewer on a server with a small lock table (lane_rows)
            workers = self.workers
            size = lane_rows(workers, self.lock_table(), min(self.batch_size, LANE_ROWS // workers))

        def fetch(after: tuple[int, int]) -> list[dict[str, Any]]:
            return self.q("backfill_unresolved_batch", after_business_id=after[0], after_id=after[1],
                          business_id=self.business_id, limit=size)

        with ExitStack() as stack:
            idle: queue.SimpleQueue[psycopg.Connection] = queue.SimpleQueue()
            for k in range(workers):
                idle.put(stack.enter_context(self.connect(f"convkey-backfill-resolve-{k}")) if self.parallel
                         else self.conn)

            def claim(args: dict[str, Any], cursor: tuple[int | None, int | None]) -> list[dict[str, Any]]:
                conn = idle.get()
                try:
                    return self.retrying("backfill_resolve_batch", conn, scope=self.scope, shared=self.parallel,
                                         cursor_business_id=cursor[0], cursor_id=cursor[1], **args)
                finally:
                    idle.put(conn)

            prep = stack.enter_context(ThreadPoolExecutor(max_workers=1, thread_name_prefix="convkey-normalize"))
            pool = stack.enter_context(ThreadPoolExecutor(max_workers=workers, thread_name_prefix="convkey-resolve"))
            sent: deque[tuple[Future, tuple[int, int], int]] = deque()  # in order: claim, batch end, rows
            committed = after  # the end of the batches that have all committed

            def retire() -> None:
                nonlocal committed
                while sent and sent[0][0].done():
                    future, committed, n = sent.popleft()
                    stats = future.result()[0]["stats"]
                    self.report.rows_read += stats["read"]
                    for kind, k in stats["resolved"].items():
                        self.report.resolved[kind] = self.report.resolved.get(kind, 0) + k
                    self.progress.advance(n)

            rows = fetch(after)
            prepared = prep.submit(self._prepare, rows)
            while rows:
                end = (rows[-1]["business_id"], rows[-1]["id"])
                next_rows = fetch(end)
                args = prepared.result()
                prepared = prep.submit(self._prepare, next_rows)
                while sum(not f.done() for f, _, _ in sent) >= workers or len(sent) >= 4 * workers:
                    wait([f for f, _, _ in sent if not f.done()] or [sent[0][0]], return_when=FIRST_COMPLETED)
                    retire()
                retire()
                sent.append((pool.submit(claim, args, committed if self.parallel else (None, None)), end, len(rows)))
                rows = next_rows
            wait([f for f, _, _ in sent])
            retire()

    def _prepare(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        """A batch's arguments for convkey._backfill_resolve_batch: its keys, the runner's phone
        readings and, unless derive_ahead is off, the identities the runner derived (its grammar,
        ``derive_identities``; a row it leaves out, the batch derives itself: same result)."""
        args: dict[str, Any] = {"business_ids": [r["business_id"] for r in rows], "ids": [r["id"] for r in rows]}
        args["phones"], args["wa_phones"], args["errors"] = normalize_batch(rows, self.region)
        args.update(derived=None, derived_lead_ids=None, derived_wa_ids=None)
        if self.derive_ahead and rows:
            derived = []
            for r, phone, wa_phone, err in zip(rows, args["phones"], args["wa_phones"], args["errors"]):
                ids = derive_identities(r["business_id"], r["lead_id"], r["customer_wa_id"], phone, wa_phone, err)
                derived.append(None if ids is None else (r["business_id"], r["id"], *ids))
            args.update(derived=candidates_literal(derived), derived_lead_ids=[r["lead_id"] for r in rows],
                        derived_wa_ids=[r["customer_wa_id"] for r in rows])
        return args

    def merge_phase(self) -> None:
        if self.parallel:
            # the lanes take rows in no single order: the cursor starts over for the serial pass
            self.q("backfill_restart_phase", scope=self.scope, phase="merge")
        after = self._start("merge")
        total = self.q("backfill_deferred_count", business_id=self.business_id)[0]["n"]
        self.report.deferred = total
        if self.execute and self.analyze and total:
            self.refresh_statistics()
        self.progress.start("merge", total)
        if self.parallel:
            self._merge_lanes()
        # the serial pass: every row (one worker), or the rows no lane took
        while True:
            rows = self.q("backfill_deferred_batch", after_business_id=after[0], after_id=after[1],
                          business_id=self.business_id, limit=min(self.batch_size, MERGE_CHUNK))
            if not rows:
                break
            self._merge_chunk(self.conn, rows)
            after = (rows[-1]["business_id"], rows[-1]["id"])
        self.q("backfill_finish_phase", scope=self.scope, phase="merge")
        self.progress.finish()

    def refresh_statistics(self) -> None:
        """ANALYZE the tables the resolve phase has just filled, before the merge phase plans on them.

        The resolve phase stages every waiting row and writes an identity for nearly every row
        and a key for most conversations, faster than autovacuum comes back to analyze them.
        Planned on the statistics from before, the merge chunk's selections hash-joined every
        waiting row (the planner took ``status = 'deferred'`` for half a percent of the staging
        table, not all of it): 92 ms per 1,000-row chunk instead of 17 at 1,000,000 rows.
        ANALYZE samples a fixed number of rows (0.6 s for the three tables at that size) and
        commits at once (execute only: a dry run writes nothing, statistics included). It
        skips a table this role may not analyze (only its owner, the database's owner or a
        superuser may) and, with SKIP_LOCKED, one whose lock another session holds (a VACUUM,
        an index build): the statistics are an optimization, never a reason to wait or fail.
        The tables analyzed are in the report (``analyzed``)."""
        started = time.monotonic()
        skipped: list[str] = []
        sqlstates: list[str | None] = []  # of the notices of the current statement

        def notice(diag: psycopg.errors.Diagnostic) -> None:
            sqlstates.append(diag.sqlstate)

        self.conn.add_notice_handler(notice)
        try:
            for name in (r["name"] for r in self.q("backfill_stale_statistics")):
                sqlstates.clear()
                self.conn.execute("ANALYZE (SKIP_LOCKED) " + name)
                # 55P03: "skipping analyze of ... lock not available"
                (skipped if "55P03" in sqlstates else self.report.analyzed).append(name)
        finally:
            self.conn.remove_notice_handler(notice)
        logger.info("merge phase: ANALYZE %s in %.1f s%s", ", ".join(self.report.analyzed) or "nothing",
                    time.monotonic() - started, f"; skipped, locked: {', '.join(skipped)}" if skipped else "")

    def _merge_chunk(self, conn: psycopg.Connection, rows: list[dict[str, Any]], *, shared: bool = False) -> None:
        """One chunk of waiting rows: the plain cases set-based (a few rounds), then, except in a
        lane (shared), the rest row by row through the resolver."""
        business_ids, ids = [r["business_id"] for r in rows], [r["id"] for r in rows]
        for _ in range(SIMPLE_ROUNDS if self.simple_merge else 0):
            done = self.retrying("backfill_merge_simple", conn, business_ids=business_ids, ids=ids, shared=shared)[0]
            self._count({"merged": done["merged"], "resolved": done["resolved"]}, set_based=True)
            business_ids, ids = done["rest_business_ids"], done["rest_ids"]
            if not ids or not done["merged"] + done["resolved"]:
                break
        if ids and not shared:
            self._count(self.retrying("backfill_merge_batch", conn, scope=self.scope, business_ids=business_ids,
                                      ids=ids, commit=self.execute)[0]["p_stats"])
        with self.lock:
            self.progress.advance(len(rows) - (len(ids) if shared else 0))

    def _merge_lanes(self) -> None:
        """The set-based part of the merge phase on ``workers`` connections at once, one lane of
        the waiting rows each (convkey._backfill_merge_simple with p_shared: the lanes' chunks run
        side by side, each locking what it claims; the rows come from a _LaneFeed). What a lane
        leaves (rows the resolver decides, rows whose locks another lane or a webhook held, rows
        whose lane changed) waits for the serial pass, which takes it in id order as a one-worker
        merge would. A failing lane stops the others and is raised."""
        feed = _LaneFeed(self, self.workers, lane_rows(self.workers, self.lock_table(), MERGE_CHUNK))
        stop = threading.Event()

        def lane(k: int) -> None:
            with self.connect(f"convkey-backfill-merge-{k}") as conn:
                while not stop.is_set():
                    rows = feed.take(k, conn)
                    if not rows:
                        return
                    self._merge_chunk(conn, rows, shared=True)

        with ThreadPoolExecutor(max_workers=feed.lanes, thread_name_prefix="convkey-merge") as pool:
            futures = [pool.submit(lane, k) for k in range(feed.lanes)]
            try:
                for f in futures:
                    f.result()
            finally:
                stop.set()

    def _count(self, outcomes: dict[str, int], set_based: bool = False) -> None:
        with self.lock:
            for outcome, n in outcomes.items():
                if n:
                    self.report.merge[outcome] = self.report.merge.get(outcome, 0) + n
                    if set_based:
                        self.report.set_based += n

    def run(self) -> Report:
        started = time.monotonic()
        first_merge = self.q("backfill_max_merge_id")[0]["id"]
        if self.do_resolve:
            self.resolve_phase()
        if self.do_merge:
            self.merge_phase()
        else:
            self.report.deferred = self.q("backfill_deferred_count", business_id=self.business_id)[0]["n"]
        totals = self.q("backfill_merge_totals", after_id=first_merge, business_id=self.business_id)[0]
        self.report.group_count = totals["groups"]
        self.report.duplicates_merged = totals["duplicates"]
        self.report.messages_moved = int(totals["messages_moved"])
        for g in self.q("backfill_merges_since", after_id=first_merge, business_id=self.business_id, limit=SAMPLE):
            self.report.groups.append({"business_id": g["business_id"], "primary": g["primary_id"],
                                       "duplicates": g["duplicates"], "messages_moved": int(g["messages_moved"])})
        self.report.unresolvable_count = self.q("backfill_unresolvable_count", business_id=self.business_id)[0]["n"]
        for u in self.q("backfill_unresolvable", business_id=self.business_id, limit=SAMPLE):
            self.report.unresolvable.append({
                "business_id": u["business_id"], "conversation_id": u["conversation_id"], "reason": u["reason"],
                "customer_wa_id": mask(u["customer_wa_id"]) if u["customer_wa_id"] else None,
                "phone_e164": mask(u["phone_e164"]) if u["phone_e164"] else None, "lead_id": u["lead_id"]})
        self.report.seconds = time.monotonic() - started
        return self.report


WAL_COMPRESSION = ("auto", "off", "pglz", "lz4", "zstd")  # --wal-compression


def wal_compression_for(conn: psycopg.Connection, wanted: str) -> str | None:
    """The ``wal_compression`` this run's sessions set, or None to leave the server's.

    The merge phase changes pages all over the message table and its indexes, so most of the
    WAL it writes is full-page images (README, *Server settings for a large backfill*);
    compressing them is a session setting. ``auto`` sets lz4 when the server does not compress
    already, the role may set the parameter (a superuser, or ``GRANT SET ON PARAMETER
    wal_compression``) and the server was built with lz4; otherwise it leaves the server's
    setting. ``off`` leaves it; a method name sets that one (the server refuses a method it
    lacks, 22023, or a role without the right, 42501)."""
    if wanted not in WAL_COMPRESSION:
        raise InvalidIdentifier(f"wal_compression must be one of {', '.join(WAL_COMPRESSION)}, not {wanted!r}")
    if wanted == "off":
        return None
    if wanted != "auto":
        return wanted
    row = conn.cursor(row_factory=dict_row).execute(queries.get("backfill_wal_compression")).fetchone()
    if row["current"] == "off" and row["may_set"] and row["has_lz4"]:
        return "lz4"
    return None


def set_wal_compression(conn: psycopg.Connection, method: str | None) -> None:
    """Set ``method`` (from ``wal_compression_for``) for this session; None leaves the server's."""
    if method:
        conn.execute(queries.get("set_wal_compression"), {"method": method})


def _connect(dsn: str, name: str, *, execute: bool, wal_compression: str | None = None) -> psycopg.Connection:
    conn = psycopg.connect(dsn, autocommit=execute, row_factory=dict_row, application_name=name)
    conn.execute("SET lock_timeout = '2s'")
    conn.execute("SET statement_timeout = '10min'")
    if execute:
        # each batch is re-runnable: a crash loses at most the last batches, never correctness
        conn.execute("SET synchronous_commit = off")
    set_wal_compression(conn, wal_compression)
    return conn


def run_backfill(dsn: str, *, execute: bool = False, business_id: int | None = None, batch_size: int = 10000,
                 default_region: str = "IL", skip_backfill: bool = False, skip_merge: bool = False,
                 progress: Progress | None = None, simple_merge: bool = True, derive_ahead: bool = True,
                 workers: int = 1, wal_compression: str = "auto", analyze: bool = True) -> Report:
    """Run (or dry-run) the backfill; raises on errors that are not the data's fault.

    ``simple_merge=False`` sends every waiting row through the per-row resolver (the reference
    the set-based path is tested against), instead of merging the independent plain cases of each
    chunk set-based first. ``derive_ahead=False`` lets every resolve batch derive its rows'
    identities itself (SQL) instead of taking those the runner derived with its grammar.
    ``workers``: connections each phase runs on at once. 1 (the default) resolves and merges
    every row in id order, exactly as the dry run printed (a dry run, one transaction, always
    runs on one). More resolve batches side by side and run lanes of the waiting rows side by
    side: see ``Backfill._resolve_batches`` and ``Backfill._merge_lanes``.
    ``wal_compression``: see ``wal_compression_for``; the report names the method set.
    ``analyze=False`` leaves the statistics to autovacuum (see ``Backfill.refresh_statistics``).
    """
    if batch_size < 1:
        raise InvalidIdentifier("batch_size must be at least 1")
    if workers < 1:
        raise InvalidIdentifier("workers must be at least 1")
    progress = progress or Progress(enabled=False)
    with _connect(dsn, "convkey-backfill", execute=execute) as conn:
        method = wal_compression_for(conn, wal_compression)
        set_wal_compression(conn, method)
        if method:
            logger.info("wal_compression = %s for this run's sessions", method)
        scope = business_id or 0
        locked = conn.execute(queries.get("backfill_try_lock"), {"scope": scope}).fetchone()["locked"]
        if not locked:
            raise RuntimeError("another convkey backfill is running for this scope; wait for it to finish")
        try:
            job = Backfill(conn, execute=execute, business_id=business_id, batch_size=batch_size,
                           region=default_region, do_resolve=not skip_backfill, do_merge=not skip_merge,
                           progress=progress, simple_merge=simple_merge, derive_ahead=derive_ahead,
                           workers=workers, analyze=analyze,
                           connect=lambda name: _connect(dsn, name, execute=execute, wal_compression=method))
            job.report.wal_compression = method
            report = job.run()
        finally:
            if not execute:
                conn.rollback()
            conn.execute(queries.get("backfill_unlock"), {"scope": scope})
            if not execute:
                conn.commit()
    return report


def print_report(report: Report, out: TextIO = sys.stdout, as_json: bool = False) -> None:
    d = report.as_dict()
    if as_json:
        json.dump(d, out, indent=2, sort_keys=True)
        out.write("\n")
        return
    mode = "DRY RUN (nothing was written; run with --execute to apply)" if not report.execute else "EXECUTED"
    w = out.write
    w(f"convkey backfill: {mode}\n")
    w(f"  legacy rows read:        {d['rows_read']}\n")
    kinds = ", ".join(f"{k} {n}" for k, n in d["resolved_by_kind"].items()) or "none"
    w(f"  resolved with a key:     {sum(d['resolved_by_kind'].values())} ({kinds})\n")
    w(f"  sharing an identity:     {d['deferred_to_merge']} (merge phase)\n")
    for outcome, n in d["merge_outcomes"].items():
        w(f"    {outcome:<22} {n}\n")
    if d["merge_set_based"]:
        w(f"    (set-based:            {d['merge_set_based']} of them)\n")
    w(f"  duplicate groups merged: {d['duplicate_groups']} ({d['duplicates_merged']} rows), "
      f"messages moved: {d['messages_moved']}\n")
    for g in d["duplicate_groups_sample"]:
        w(f"    business {g['business_id']}: primary {g['primary']} <- {g['duplicates']} "
          f"({g['messages_moved']} messages)\n")
    if d["duplicate_groups"] > len(d["duplicate_groups_sample"]):
        w(f"    ... {d['duplicate_groups'] - len(d['duplicate_groups_sample'])} more "
          "(convkey.conversation_merge, reason 'backfill')\n")
    w(f"  unresolvable rows:       {d['unresolvable']}\n")
    for u in d["unresolvable_sample"]:
        w(f"    business {u['business_id']} conversation {u['conversation_id']}: {u['reason']} "
          f"(customer_wa_id {u['customer_wa_id']}, phone {u['phone_e164']})\n")
    w(f"  retries: {d['retries']}, {d['seconds']} s"
      f"{', wal_compression ' + d['wal_compression'] if d['wal_compression'] else ''}"
      f"{', analyzed ' + ', '.join(d['analyzed']) if d['analyzed'] else ''}\n")


def exit_code(report: Report) -> int:
    """0 done; 1 finished but unresolvable rows remain."""
    return 1 if report.unresolvable_count else 0
