"""Part 3: ``convkey backfill --execute`` over legacy rows, against the set-based floor.

The data (bench/sql/backfill_data.sql, set-based and deterministic) is made once per size in a
template database: N legacy conversations of people of whom a tenth have 2-3 rows under
different identifier forms, some LID-only with their LID-phone link recorded by
convkey.link_identity, leads on 3 people in 10, a few rows per thousand naming nobody, and 5
messages per conversation. Every repetition clones the template (CREATE DATABASE ... TEMPLATE),
so each starts from identical data:

- convkey: the real CLI in a subprocess, ``convkey backfill --execute --json --workers 2
  --dsn <clone>`` (each phase on two connections, one per core; --backfill-workers):
  wall time from spawn to exit, the runner's peak RSS and CPU (os.wait4's rusage of that child),
  each phase's span (convkey.backfill_cursor), and the --json report of what it did. Then cheap
  checks that it did it right: no message lost, none left in a tombstone, every live
  conversation keyed or listed unresolvable, one live conversation per person.
- floor: on another clone, ONE UPDATE (FLOOR_UPDATE below) that computes every row's key with
  convkey's SQL grammar and writes it, on a copy of the conversations made like convkey's table
  (the template holds it): no phonenumbers, no identities, no merging, no batches.
- required writes: on a third clone, the rows that convkey run changed, written again by four
  set-based statements that know the answer (REQUIRED_WRITES below, the answer copied from the
  run's clone): no grammar, no resolution, no batches, no triggers or foreign-key checks. Any
  backfill that leaves the same result writes at least this much, so floor / required writes is
  the best ratio any implementation can reach: the ceiling of the target.
- WAL: every side's WAL bytes and full-page images (pg_stat_wal before and after). The floor and
  the required writes set the wal_compression that `convkey backfill` sets for its own sessions
  (lz4 when the server does not compress and the role may: convkey.backfill.wal_compression_for),
  so that all sides write their full-page images alike.
- configured server (own cluster only): at the large size, convkey and the floor again, side by
  side, after a restart with CONFIGURED (a buffer cache and a checkpoint distance sized for the
  data), then a restart back to the defaults. The target is judged at PostgreSQL's defaults.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from convkey.backfill import set_wal_compression, wal_compression_for
from convkey.migrate import migrate

from bench.env import SQL_DIR
from bench.pgbench import server_cpu_seconds
from bench.stats import Check, Section, Summary, Table, ratios

KEY = "backfill"
TITLE = "3. Backfill: legacy rows resolved and merged"

ROWS, SMALL = 1_000_000, 100_000
SMOKE_ROWS, SMOKE_SMALL = 2_000, 500
WORKERS = 2  # convkey backfill --workers: one per core of the 2-core bench machine
RSS_LIMIT_MB = 300.0
TARGET = 4.0           # convkey within 4x the floor's wall time
# "Flat": 100k peak RSS / 1M peak RSS >= 2/3, the 1M peak at most 1.5x the 100k peak. Bounded caches
# (the runner's phone cache, 65,536 entries) may fill between the two sizes; memory that grows with
# the rows shows up as 10x.
FLAT = 2 / 3
# The server settings of the configured pass (own cluster only): the same large-size comparison,
# side by side, after a restart with a buffer cache and a checkpoint distance sized for the data
# (1.6 GB of messages and indexes), then a restart back to PostgreSQL's defaults. The target is
# judged at the defaults; this pass shows how much of the gap is the server's configuration.
CONFIGURED = {"shared_buffers": "2GB", "max_wal_size": "8GB"}
LINK_CHUNK = 1000      # link_identity calls per transaction (each holds a few advisory locks)
AVG_ROWS_PER_PERSON = 1.15

# The floor: every row's key computed with convkey's grammar in one statement. The lead key when
# the row has a lead, else the phone or LID that convkey._parse_wa_id reads from customer_wa_id
# (the function the backfill's identities come from), spelled as the backfill spells keys, and
# the phone into phone_e164 as the backfill does. Rows the SQL grammar cannot read (human national
# formats, which convkey normalizes with phonenumbers in the runner, and garbage) keep NULL unless
# they have a lead; groups and broadcasts get no key. Duplicates get the same key (the copy's
# (business_id, canonical_key) index is not unique): no identities, no merging.
FLOOR_UPDATE = r"""
UPDATE bench_backfill.floor_conversation c
   SET (canonical_key, phone_e164) = (
           SELECT CASE WHEN c.lead_id IS NOT NULL THEN format('lead:%s:%s', c.business_id, c.lead_id)
                       WHEN p.kind = 'pn' THEN format('phone:%s:%s', c.business_id, p.phone_e164)
                       WHEN p.kind = 'lid' THEN format('lid:%s:%s', c.business_id, p.lid)
                  END,
                  p.phone_e164
             FROM (VALUES (1)) AS one
             LEFT JOIN LATERAL (SELECT * FROM convkey._parse_wa_id(c.customer_wa_id, 'customer_wa_id')
                                 WHERE c.customer_wa_id ~ '@|^\s*\+') AS p ON true),
       updated_at = now()
 WHERE c.canonical_key IS NULL AND c.merged_into_id IS NULL
   AND (c.customer_wa_id ~ '@|^\s*\+' OR c.lead_id IS NOT NULL)
"""

LINKS = """
SELECT count(convkey.link_identity(1, l.lid_jid, l.phone_jid, 'history'))
  FROM bench_backfill.link l WHERE l.n BETWEEN %(lo)s AND %(hi)s
"""

DATASET = """
SELECT (SELECT count(*) FROM bench_backfill.legacy_row),
       (SELECT count(DISTINCT p) FROM bench_backfill.legacy_row),
       (SELECT count(*) FROM (SELECT p FROM bench_backfill.legacy_row GROUP BY p HAVING count(*) > 1) AS m),
       (SELECT count(*) FROM bench_backfill.legacy_row r
         WHERE r.form = 5 AND NOT EXISTS (SELECT 1 FROM bench_backfill.legacy_row o WHERE o.p = r.p AND o.form <> 5)),
       (SELECT count(*) FROM bench_backfill.link),
       (SELECT count(*) FROM bench_backfill.legacy_row WHERE lead_id IS NOT NULL),
       (SELECT count(*) FROM bench_backfill.legacy_row WHERE p IS NULL),
       (SELECT count(*) FROM convkey.whatsapp_message)
"""

# After a convkey run: the numbers the checks compare (all cheap: counts and index probes).
VERIFY = """
SELECT (SELECT count(*) FROM convkey.whatsapp_message),
       (SELECT count(*) FROM convkey.whatsapp_conversation WHERE merged_into_id IS NULL),
       (SELECT count(*) FROM convkey.whatsapp_conversation WHERE merged_into_id IS NULL AND canonical_key IS NOT NULL),
       (SELECT count(*) FROM convkey.whatsapp_conversation c
         WHERE c.merged_into_id IS NULL AND c.canonical_key IS NULL
           AND NOT EXISTS (SELECT 1 FROM convkey.backfill_row r WHERE r.business_id = c.business_id
                              AND r.conversation_id = c.id AND r.status = 'unresolvable')),
       (SELECT count(*) FROM convkey.whatsapp_conversation c
         WHERE c.merged_into_id IS NOT NULL
           AND EXISTS (SELECT 1 FROM convkey.whatsapp_message m
                        WHERE m.business_id = c.business_id AND m.conversation_id = c.id)),
       (SELECT count(*) FROM convkey.whatsapp_conversation WHERE merged_into_id IS NOT NULL),
       (SELECT count(*) FROM convkey.identity)
"""

PHASES = "SELECT phase, extract(epoch FROM finished_at - started_at) FROM convkey.backfill_cursor"

# The conversation columns a backfill may change (updated_at aside).
CHANGED = ("canonical_key, phone_e164, lead_id, merged_into_id, is_open, summary_created, session_started_at, "
           "last_message_at, last_customer_message_at, last_read_at, push_name, customer_wa_id, lead_name")

# The answer of a convkey run, read from its clone: every conversation it keyed or merged away as
# it left it, every identity, every message it moved (where it ended), every audit row.
ANSWER = {
    "conversation": f"""
        SELECT business_id, id, {CHANGED}
          FROM convkey.whatsapp_conversation WHERE canonical_key IS NOT NULL OR merged_into_id IS NOT NULL""",
    "identity": "SELECT * FROM convkey.identity",
    "message": """
        SELECT DISTINCT m.business_id, m.id, m.conversation_id
          FROM convkey.conversation_merge g CROSS JOIN LATERAL unnest(g.moved_message_ids) AS x(id)
          JOIN convkey.whatsapp_message m ON m.business_id = g.business_id AND m.id = x.id""",
    "merge": "SELECT * FROM convkey.conversation_merge",
}

# The required writes: that answer written into a fresh clone of the template, one statement per
# table, in one transaction, with session_replication_role = replica (no triggers, no foreign-key
# checks; the unique indexes still hold).
REQUIRED_WRITES = [
    f"""UPDATE convkey.whatsapp_conversation c
           SET ({CHANGED}, updated_at) = ({", ".join("a." + c.strip() for c in CHANGED.split(","))}, now())
          FROM bench_answer.conversation a
        WHERE c.business_id = a.business_id AND c.id = a.id""",
    """INSERT INTO convkey.identity SELECT * FROM bench_answer.identity
       ON CONFLICT (business_id, kind, value) DO UPDATE
          SET conversation_id = EXCLUDED.conversation_id, pending_person_id = EXCLUDED.pending_person_id,
              source = EXCLUDED.source, updated_at = EXCLUDED.updated_at""",
    """UPDATE convkey.whatsapp_message m SET conversation_id = a.conversation_id
         FROM bench_answer.message a
        WHERE m.business_id = a.business_id AND m.id = a.id""",
    "INSERT INTO convkey.conversation_merge OVERRIDING SYSTEM VALUE SELECT * FROM bench_answer.merge",
]


def add_arguments(parser) -> None:
    """This module's options of ``python -m bench``."""
    parser.add_argument("--backfill-rows", type=int, default=None,
                        help=f"part 3: legacy conversations, default {ROWS:,} (--smoke {SMOKE_ROWS:,})")
    parser.add_argument("--backfill-small", type=int, default=None,
                        help=f"part 3: the small size (RSS flatness), default {SMALL:,} (--smoke {SMOKE_SMALL:,})")
    parser.add_argument("--backfill-workers", type=int, default=WORKERS,
                        help=f"part 3: convkey backfill --workers, default {WORKERS} (1: the serial backfill)")
    parser.add_argument("--backfill-reps", type=int, default=None,
                        help="part 3: convkey runs at the large size, default --reps (each run about 3 "
                             "minutes at 1,000,000 rows with 2 workers, 4 serial)")


@dataclass
class Dataset:
    template: str
    rows: int
    people: int = 0
    multi: int = 0
    lid_only: int = 0
    links: int = 0
    lead_rows: int = 0
    broken: int = 0
    messages: int = 0
    seconds: float = 0.0


@dataclass
class Run:
    seconds: float
    rss_mb: float
    cpu: float
    server_cpu: float | None
    phases: dict[str, float]
    report: dict
    verified: dict[str, int]
    # the required writes of this run's answer, wall s (None: not measured, e.g. not a superuser)
    required: float | None = None
    # WAL written during the run, cluster-wide (pg_stat_wal): bytes and full-page images
    wal: tuple[int, int] | None = None
    required_wal: tuple[int, int] | None = None


@dataclass
class Point:
    """Everything measured at one size."""

    data: Dataset
    convkey: list[Run] = field(default_factory=list)
    serial: list[Run] = field(default_factory=list)  # --workers 1 (the default), when convkey ran with more
    # --wal-compression off (the server's setting), when convkey's sessions compress their WAL
    uncompressed: list[Run] = field(default_factory=list)
    # --skip-analyze: the merge phase planned on the statistics from before the resolve phase
    stale: list[Run] = field(default_factory=list)
    floor: list[float] = field(default_factory=list)
    floor_server_cpu: list[float] = field(default_factory=list)
    floor_wal: list[tuple[int, int]] = field(default_factory=list)
    floor_keyed: int = 0


class Databases:
    """The databases of this module on the bench server, created and dropped by name."""

    def __init__(self, env):
        self.env = env
        self.prefix = f"{env.dbname}_bf"
        self.admin_dsn = env.admin_dsn or env.dsn_for("postgres")
        self.made: set[str] = set()

    def dsn(self, name: str) -> str:
        return self.env.dsn_for(name)

    def _admin(self, sql: str) -> None:
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(sql)

    def create(self, name: str, template: str | None = None) -> str:
        self.drop(name)
        sql = f'CREATE DATABASE "{name}"'
        if template:
            # FILE_COPY: copies the files after a checkpoint instead of WAL-logging every page
            sql += f' TEMPLATE "{template}" STRATEGY FILE_COPY'
        for attempt in range(60):
            try:
                self._admin(sql)
                break
            except psycopg.errors.ObjectInUse:  # a lingering session (autovacuum) on the template
                if attempt == 59:
                    raise
                time.sleep(0.5)
        self.made.add(name)
        return name

    def drop(self, name: str) -> None:
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.made.discard(name)

    def freeze(self, name: str) -> None:
        """No more sessions on a finished template, so clones never wait for one."""
        self._admin(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')

    def checkpoint(self) -> None:
        try:
            self._admin("CHECKPOINT")
        except psycopg.Error:
            pass

    def wal(self) -> tuple[int, int] | None:
        """The cluster's WAL written so far: bytes and full-page images (None: unreadable)."""
        try:
            with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
                return conn.execute("SELECT wal_bytes::bigint, wal_fpi FROM pg_stat_wal").fetchone()
        except psycopg.Error:
            return None

    def drop_all(self) -> None:
        for name in sorted(self.made):
            self.drop(name)


def convkey_command() -> list[str]:
    script = Path(sys.executable).with_name("convkey")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "convkey"]


def data_statements() -> list[str]:
    text = (SQL_DIR / "backfill_data.sql").read_text(encoding="utf-8")
    return [s for s in text.split(";\n\n") if s.strip()]


def build(ctx, dbs: Databases, base: str, rows: int) -> Dataset:
    """The template of one size: the legacy rows, their messages and links, the floor's copy."""
    t0 = time.monotonic()
    broken = max(3, rows // 1000)
    people = int((rows - broken) / AVG_ROWS_PER_PERSON) + 1000
    if people >= 10_000_000:
        raise ValueError("--backfill-rows: at most about 11 million rows (7-digit phone numbers)")
    name = dbs.create(f"{dbs.prefix}_{rows}", template=base)
    params = {"people": people, "rows": rows, "broken": broken}
    with psycopg.connect(dbs.dsn(name), autocommit=True) as conn:
        try:  # generated rows are consistent by construction: skip 5 foreign-key checks per row
            conn.execute("SET session_replication_role = replica")
        except psycopg.Error:
            pass
        for stmt in data_statements():
            conn.execute(stmt, params)
        conn.execute("RESET session_replication_role")
        conn.execute("ANALYZE")
        n = conn.execute("SELECT count(*) FROM bench_backfill.link").fetchone()[0]
        for i, lo in enumerate(range(1, n + 1, LINK_CHUNK)):
            conn.execute(LINKS, {"lo": lo, "hi": lo + LINK_CHUNK - 1})
            if i in (0, 1, 3) or i % 10 == 9:  # the identity table grows from empty: plans need its size
                conn.execute("ANALYZE convkey.identity")
        conn.execute("VACUUM ANALYZE")
        got = conn.execute(DATASET).fetchone()
    dbs.freeze(name)
    data = Dataset(name, *got)
    data.seconds = time.monotonic() - t0
    ctx.log(f"    backfill data {rows:,} rows: {data.people:,} people, {data.links:,} links, "
            f"{data.messages:,} messages in {data.seconds:.0f}s")
    return data


def run_convkey(ctx, dbs: Databases, data: Dataset, workers: int, required: bool = False,
                extra: tuple[str, ...] = ()) -> Run:
    """One convkey run on a clone; required: also the required writes of its answer; extra: more
    arguments for `convkey backfill`."""
    clone = dbs.create(f"{dbs.prefix}_run", template=data.template)
    try:
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            with _metered(ctx, dbs) as meter:
                proc = subprocess.Popen(convkey_command() + ["backfill", "--execute", "--json", "--workers",
                                                             str(workers), "--dsn", dbs.dsn(clone), *extra],
                                        stdout=out, stderr=err)
                _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage: peak RSS and CPU
            proc.returncode = os.waitstatus_to_exitcode(status)
            out.seek(0)
            err.seek(0)
            stdout, stderr = out.read().decode(), err.read().decode(errors="replace")
        if proc.returncode not in (0, 1):  # 1: finished, unresolvable rows remain (the broken rows)
            raise RuntimeError(f"convkey backfill exited {proc.returncode}: {stderr.strip()[-2000:]}")
        report = json.loads(stdout)
        with psycopg.connect(dbs.dsn(clone), autocommit=True) as conn:
            phases = {p: float(s) for p, s in conn.execute(PHASES).fetchall() if s is not None}
            verified = verify(conn, data, report)
            writes = run_required_writes(ctx, dbs, data, conn, verified) if required else None
    finally:
        dbs.drop(clone)
    return Run(meter.seconds, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime, meter.cpu, phases, report,
               verified, None if writes is None else writes.seconds, meter.wal,
               None if writes is None else writes.wal)


def run_required_writes(ctx, dbs: Databases, data: Dataset, answer_conn, verified: dict[str, int]) -> Meter | None:
    """Wall time and WAL of REQUIRED_WRITES on a fresh clone, with the answer of the run on
    answer_conn's database; the clone is then checked to hold what the run left (same counts).
    None when the server refuses session_replication_role (not a superuser)."""
    clone = dbs.create(f"{dbs.prefix}_required", template=data.template)
    try:
        with psycopg.connect(dbs.dsn(clone), autocommit=True) as conn:
            try:
                conn.execute("SET session_replication_role = replica")
            except psycopg.Error as exc:
                ctx.log(f"    required writes not measured: {exc.sqlstate} {str(exc).strip()}")
                return None
            conn.execute("RESET session_replication_role")
            _compress_like_convkey(conn)
            conn.execute("CREATE SCHEMA bench_answer")
            for name, query in ANSWER.items():
                conn.execute(f"CREATE UNLOGGED TABLE bench_answer.{name} AS {query} WITH NO DATA")
                with answer_conn.cursor().copy(f"COPY ({query}) TO STDOUT (FORMAT binary)") as out, \
                        conn.cursor().copy(f"COPY bench_answer.{name} FROM STDIN (FORMAT binary)") as into:
                    for chunk in out:
                        into.write(chunk)
                conn.execute(f"ANALYZE bench_answer.{name}")
            with _metered(ctx, dbs) as meter, conn.transaction():
                conn.execute("SET LOCAL session_replication_role = replica")
                for statement in REQUIRED_WRITES:
                    conn.execute(statement)
            messages, _, keyed, _, in_tombstones, tombstones, identities = conn.execute(VERIFY).fetchone()
    finally:
        dbs.drop(clone)
    got = {"messages": messages, "keyed": keyed, "tombstones": tombstones, "identities": identities}
    want = {k: verified[k] for k in got}
    if got != want or in_tombstones:
        raise RuntimeError(f"required writes left {got} ({in_tombstones} tombstones with messages), "
                           f"the convkey run {want}")
    return meter


def verify(conn, data: Dataset, report: dict) -> dict[str, int]:
    """Cheap checks of the result; raises when the backfill lost or misplaced anything."""
    messages, live, keyed, unlisted, tombstones_with_messages, tombstones, identities = conn.execute(VERIFY).fetchone()
    problems = []
    if messages != data.messages:
        problems.append(f"{data.messages - messages} messages lost")
    if unlisted:
        problems.append(f"{unlisted} live conversations neither keyed nor listed unresolvable")
    if tombstones_with_messages:
        problems.append(f"{tombstones_with_messages} merged-away conversations still hold messages")
    if keyed != data.people or live - keyed != data.broken or report["unresolvable"] != data.broken:
        problems.append(f"{keyed} keyed live conversations for {data.people} people, {live - keyed} unkeyed "
                        f"and {report['unresolvable']} reported unresolvable for {data.broken} rows naming nobody")
    if problems:
        raise RuntimeError("backfill result is wrong: " + "; ".join(problems))
    return {"messages": messages, "live": live, "keyed": keyed, "tombstones": tombstones, "identities": identities}


def run_floor(ctx, dbs: Databases, data: Dataset) -> tuple[Meter, int]:
    """The floor on a clone: its meter and the rows it keyed."""
    clone = dbs.create(f"{dbs.prefix}_floor", template=data.template)
    try:
        with psycopg.connect(dbs.dsn(clone), autocommit=True) as conn:
            _compress_like_convkey(conn)
            with _metered(ctx, dbs) as meter:
                conn.execute(FLOOR_UPDATE)
            keyed = conn.execute("SELECT count(canonical_key) FROM bench_backfill.floor_conversation").fetchone()[0]
    finally:
        dbs.drop(clone)
    return meter, keyed


def _compress_like_convkey(conn: psycopg.Connection) -> None:
    """The wal_compression `convkey backfill` sets for its sessions (the same decision on the same
    server), so that every side writes its full-page images alike."""
    set_wal_compression(conn, wal_compression_for(conn, "auto"))


@dataclass
class Meter:
    """What one side cost: wall s, server CPU s and WAL (bytes, full-page images); None: unreadable."""

    seconds: float = 0.0
    cpu: float | None = None
    wal: tuple[int, int] | None = None


@contextmanager
def _metered(ctx, dbs: Databases) -> Iterator[Meter]:
    """Meters the block, after a CHECKPOINT (so no side pays for the writes of the one before)."""
    dbs.checkpoint()
    meter = Meter()
    cpu0, wal0 = _server_cpu(ctx), dbs.wal()
    t0 = time.perf_counter()
    yield meter
    meter.seconds = time.perf_counter() - t0
    cpu1, wal1 = _server_cpu(ctx), dbs.wal()
    meter.cpu = None if cpu0 is None or cpu1 is None else cpu1 - cpu0
    meter.wal = None if wal0 is None or wal1 is None else (wal1[0] - wal0[0], wal1[1] - wal0[1])


def _server_cpu(ctx) -> float | None:
    cluster = ctx.env.cluster
    return server_cpu_seconds(cluster.datadir) if cluster is not None else None


def workers_of(ctx) -> int:
    return getattr(getattr(ctx, "args", None), "backfill_workers", None) or WORKERS


def sizes(ctx) -> tuple[int, int, int]:
    args = getattr(ctx, "args", None)
    large = getattr(args, "backfill_rows", None) or (SMOKE_ROWS if ctx.smoke else ROWS)
    small = getattr(args, "backfill_small", None) or (SMOKE_SMALL if ctx.smoke else SMALL)
    reps = getattr(args, "backfill_reps", None) or ctx.reps
    return min(small, large), large, reps


def measure(ctx, dbs: Databases, data: Dataset, reps: int, floor_reps: int, configured: bool = False,
            compressed: bool = False) -> Point:
    """Every side at one size, side by side; configured: convkey and the floor only (the
    configured pass), without the required writes; compressed: convkey compresses its WAL, so
    it also runs with --wal-compression off."""
    point = Point(data)
    workers = workers_of(ctx)
    sides = ["convkey", "serial", "floor"] if workers > 1 and not configured else ["convkey", "floor"]
    if compressed and not configured:
        sides.insert(1, "uncompressed")
    if not configured:
        sides.insert(1, "stale")
    for rep in range(max(reps, floor_reps)):
        order = sides[rep % len(sides):] + sides[:rep % len(sides)]
        for side in order:
            if side == "convkey" and rep < reps:
                # the answer is the same for every worker count: its required writes are measured once a rep
                point.convkey.append(run_convkey(ctx, dbs, data, workers, required=not configured))
            elif side == "serial" and rep < reps:
                point.serial.append(run_convkey(ctx, dbs, data, 1))
            elif side == "uncompressed" and rep < reps:
                point.uncompressed.append(run_convkey(ctx, dbs, data, workers, extra=("--wal-compression", "off")))
            elif side == "stale" and rep < reps:
                point.stale.append(run_convkey(ctx, dbs, data, workers, extra=("--skip-analyze",)))
            elif side == "floor" and rep < floor_reps:
                meter, point.floor_keyed = run_floor(ctx, dbs, data)
                point.floor.append(meter.seconds)
                if meter.cpu is not None:
                    point.floor_server_cpu.append(meter.cpu)
                if meter.wal is not None:
                    point.floor_wal.append(meter.wal)
        done = point.convkey[-1] if rep < reps else None
        ctx.log(f"    backfill {data.rows:,} rows{' (configured server)' if configured else ''} rep {rep + 1}: "
                + (f"convkey {done.seconds:.1f}s (peak RSS {done.rss_mb:.0f} MB), " if done else "")
                + (f"serial {point.serial[-1].seconds:.1f}s, " if done and point.serial else "")
                + (f"uncompressed {point.uncompressed[-1].seconds:.1f}s, " if done and point.uncompressed else "")
                + (f"--skip-analyze {point.stale[-1].seconds:.1f}s, " if done and point.stale else "")
                + (f"required writes {done.required:.1f}s, " if done and done.required is not None else "")
                + (f"floor {point.floor[-1]:.1f}s" if rep < floor_reps else ""))
    return point


def run(ctx) -> Section:
    small, large, large_reps = sizes(ctx)
    dbs = Databases(ctx.env)
    try:
        base = dbs.create(f"{dbs.prefix}_base")
        migrate(dbs.dsn(base))
        dbs.freeze(base)
        points = []
        configured = None
        with psycopg.connect(dbs.admin_dsn) as conn:
            compressed = wal_compression_for(conn, "auto") is not None
        for rows, reps in ((small, ctx.reps), (large, large_reps)) if small < large else ((large, large_reps),):
            data = build(ctx, dbs, base, rows)
            points.append(measure(ctx, dbs, data, reps, ctx.reps, compressed=compressed))
            if rows == large:
                configured = measure_configured(ctx, dbs, data, large_reps)
            dbs.drop(data.template)
    finally:
        dbs.drop_all()
    return report(ctx, points, large_reps, configured)


def measure_configured(ctx, dbs: Databases, data: Dataset, reps: int) -> Point | None:
    """The large size again, convkey and the floor side by side, on the server restarted with
    CONFIGURED; then restarted with PostgreSQL's defaults. None on a --dsn server (no restart)."""
    if not ctx.env.own_cluster:
        return None
    ctx.log(f"    restarting the server with {', '.join(f'{k}={v}' for k, v in CONFIGURED.items())}")
    try:
        ctx.env.restart_with({k: f"'{v}'" for k, v in CONFIGURED.items()})
        got = {k: ctx.env.value(f"SHOW {k}") for k in CONFIGURED}
        if got != CONFIGURED:
            raise RuntimeError(f"the server restarted with {got}, not {CONFIGURED}")
        return measure(ctx, dbs, data, reps, reps, configured=True)
    finally:
        ctx.env.restart_with({k: "DEFAULT" for k in CONFIGURED})


def _serial_rows(points: list[Point]) -> list[list[str]]:
    """The default serial backfill, run side by side with the workers: its wall time, phases and ratios."""
    if not all(p.serial for p in points):
        return []
    return [
        ["convkey backfill --execute, serial (--workers 1, the default), wall s"]
        + [_secs([r.seconds for r in p.serial]) for p in points],
        ["  its resolve phase, s"] + [_secs([r.phases.get("resolve", 0) for r in p.serial]) for p in points],
        ["  its merge phase, s"] + [_secs([r.phases.get("merge", 0) for r in p.serial]) for p in points],
        ["  serial / floor, wall time"] + [_paired([r.seconds for r in p.serial], p.floor).ratio()
                                            for p in points],
        ["  workers / serial, wall time (resolve phase; merge phase)"]
        + [ratios([r.seconds for r in p.convkey], [r.seconds for r in p.serial]).ratio()
           + " (" + ratios([r.phases.get("resolve", 0) for r in p.convkey],
                           [r.phases.get("resolve", 0) for r in p.serial]).ratio()
           + "; " + ratios([r.phases.get("merge", 0) for r in p.convkey],
                           [r.phases.get("merge", 0) for r in p.serial]).ratio() + ")" for p in points],
    ]


def _variant_rows(points: list[Point], runs: Callable[[Point], list[Run]], command: str,
                  name: str) -> list[list[str]]:
    """convkey run another way (``runs(p)`` at each point), side by side with its default: the
    variant's wall time and merge phase, its ratio to the floor, and convkey's to it."""
    return [
        [f"{command}, wall s"] + [_secs([r.seconds for r in runs(p)]) for p in points],
        ["  its merge phase, s"] + [_secs([r.phases.get("merge", 0) for r in runs(p)]) for p in points],
        [f"  {name} / floor, wall time"] + [_paired([r.seconds for r in runs(p)], p.floor).ratio() for p in points],
        [f"  convkey / {name}, wall time (merge phase)"]
        + [ratios([r.seconds for r in p.convkey], [r.seconds for r in runs(p)]).ratio()
           + " (" + ratios([r.phases.get("merge", 0) for r in p.convkey],
                           [r.phases.get("merge", 0) for r in runs(p)]).ratio() + ")" for p in points],
    ]


def _uncompressed_rows(points: list[Point], flag: str) -> list[list[str]]:
    """convkey with --wal-compression off, side by side with convkey's default: what compressing
    the run's own full-page images saves."""
    if not all(p.uncompressed for p in points):
        return []
    def wal(runs: list[Run]) -> str:
        wals = [r.wal for r in runs]
        return "not measured" if None in wals else " / ".join(_wal_medians(wals))
    return _variant_rows(points, lambda p: p.uncompressed,
                         f"convkey backfill --execute{flag} --wal-compression off (the server's setting)",
                         "uncompressed") + [
        ["  its WAL, MB / full-page images (convkey's default in parentheses)"]
        + [f"{wal(p.uncompressed)} ({wal(p.convkey)})" for p in points],
    ]


def _stale_rows(points: list[Point], flag: str) -> list[list[str]]:
    """convkey with --skip-analyze, side by side with convkey's default: what analyzing the tables
    the resolve phase filled saves the merge phase (before/after of that change)."""
    if not all(p.stale for p in points):
        return []
    return _variant_rows(points, lambda p: p.stale,
                         f"convkey backfill --execute{flag} --skip-analyze (statistics from before the resolve "
                         "phase)", "--skip-analyze")


def _mb(values: list[float]) -> str:
    s = Summary(values)
    return f"{s.median:,.0f} ({s.min:,.0f}-{s.max:,.0f})"


def _secs(values: list[float]) -> str:
    s = Summary(values)
    return f"{s.median:,.1f} ({s.min:,.1f}-{s.max:,.1f})"


def _wal_text(point: Point, required: bool = True) -> tuple[str, str, str]:
    """The sides whose WAL every run measured ("convkey / floor / required writes", or fewer), and
    their medians of WAL MB and of full-page images, in the same form ("" each: none measured)."""
    sides = {"convkey": [r.wal for r in point.convkey], "floor": point.floor_wal}
    if required:
        sides["required writes"] = [r.required_wal for r in point.convkey]
    shown = {name: _wal_medians(wals) for name, wals in sides.items() if wals and None not in wals}
    return (" / ".join(shown), " / ".join(mb for mb, _ in shown.values()),
            " / ".join(fpi for _, fpi in shown.values()))


def _wal_medians(wals: list[tuple[int, int]]) -> tuple[str, str]:
    """Medians of WAL written, MB, and of its full-page images, as shown."""
    return (f"{Summary([w[0] / 1e6 for w in wals]).median:,.0f}", f"{Summary([w[1] for w in wals]).median:,.0f}")


def _configured_table(big: Point, configured: Point, flag: str) -> Table:
    """The large size at PostgreSQL's defaults and on the configured server, side by side."""
    def rows_of(p: Point) -> list[str]:
        conv = [r.seconds for r in p.convkey]
        _, wal_mb, fpi = _wal_text(p, required=False)
        return [_secs(conv), _secs(p.floor), _paired(conv, p.floor).ratio(),
                _secs([r.phases.get("resolve", 0) for r in p.convkey]),
                _secs([r.phases.get("merge", 0) for r in p.convkey]), wal_mb, fpi]
    walled = _wal_text(big, required=False)[0]  # the sides whose WAL was measured
    names = [f"convkey backfill --execute{flag}, wall s",
             "floor, wall s", "convkey / floor, wall time", "  resolve phase, s", "  merge phase, s",
             f"WAL written, MB: {walled}", f"  full-page images in it: {walled}"]
    settings = ", ".join(f"{k}={v}" for k, v in CONFIGURED.items())
    return Table([f"{big.data.rows:,} rows, median (min-max)", "PostgreSQL's defaults (the target's run)", settings],
                 [[n, a, b] for n, a, b in zip(names, rows_of(big), rows_of(configured))],
                 title="The same comparison on a server configured for the data (restarted with the settings, "
                       "then back to the defaults)")


def report(ctx, points: list[Point], large_reps: int, configured: Point | None = None) -> Section:
    heads = ["median (min-max)"] + [f"{p.data.rows:,} rows" for p in points]
    conv_s = {p.data.rows: [r.seconds for r in p.convkey] for p in points}
    flag = f" --workers {workers_of(ctx)}" if workers_of(ctx) > 1 else ""
    main_rows = [
        [f"convkey backfill --execute{flag}, wall s"] + [_secs(conv_s[p.data.rows]) for p in points],
        ["floor (one UPDATE), wall s"] + [_secs(p.floor) for p in points],
        ["convkey rows/s"] + [Summary([p.data.rows / s for s in conv_s[p.data.rows]]).rate() for p in points],
        ["floor rows/s"] + [Summary([p.data.rows / s for s in p.floor]).rate() for p in points],
        ["convkey / floor, wall time"] + [_paired(conv_s[p.data.rows], p.floor).ratio() for p in points],
        ["  resolve phase, s"] + [_secs([r.phases.get("resolve", 0) for r in p.convkey]) for p in points],
        ["  merge phase, s"] + [_secs([r.phases.get("merge", 0) for r in p.convkey]) for p in points],
        ["  runner CPU (user+sys), s"] + [_secs([r.cpu for r in p.convkey]) for p in points],
    ]
    if all(r.server_cpu is not None for p in points for r in p.convkey) and all(p.floor_server_cpu for p in points):
        main_rows += [
            ["  server CPU, convkey, s"] + [_secs([r.server_cpu for r in p.convkey]) for p in points],
            ["  server CPU, floor, s"] + [_secs(p.floor_server_cpu) for p in points],
        ]
    if all(_required(p) for p in points):
        main_rows += [
            ["required writes (the run's answer, set-based), wall s"] + [_secs(_required(p)) for p in points],
            ["  required writes / floor, wall time"] + [_paired(_required(p), p.floor).ratio() for p in points],
            ["  convkey / required writes, wall time"] + [ratios(conv_s[p.data.rows], _required(p)).ratio()
                                                           for p in points],
        ]
    wal = [_wal_text(p) for p in points]
    if wal[0][0] and all(w[0] == wal[0][0] for w in wal):
        main_rows += [
            [f"WAL written, MB: {wal[0][0]}"] + [w[1] for w in wal],
            ["  full-page images in it"] + [w[2] for w in wal],
        ]
    main_rows += [
        *_serial_rows(points),
        *_uncompressed_rows(points, flag),
        *_stale_rows(points, flag),
        ["runner peak RSS, MB"] + [_mb([r.rss_mb for r in p.convkey]) for p in points],
        ["repetitions convkey / floor"] + [f"{len(p.convkey)} / {len(p.floor)}" for p in points],
    ]
    tables = [Table(heads, main_rows)]
    if configured is not None:
        tables.append(_configured_table(points[-1], configured, flag))

    big = points[-1]
    r0 = big.convkey[0].report
    merge = r0.get("merge_outcomes", {})
    did = [
        ["legacy rows read", f"{r0['rows_read']:,}"],
        ["keyed in the resolve phase (set-based)", ", ".join(f"{k} {n:,}" for k, n in r0["resolved_by_kind"].items())],
        ["deferred to the merge phase (share an identity)", f"{r0['deferred_to_merge']:,}"],
        ["merge phase outcomes", (", ".join(f"{k} {n:,}" for k, n in merge.items()) or "none")
         + f" ({r0.get('merge_set_based', 0):,} of them set-based)"],
        ["duplicate groups merged / messages moved", f"{r0['duplicate_groups']:,} / {r0['messages_moved']:,}"],
        ["unresolvable (listed with the reason)", f"{r0['unresolvable']:,}"],
        ["after: messages (before: the same)", f"{big.convkey[0].verified['messages']:,}"],
        ["after: live conversations, keyed / people in the data",
         f"{big.convkey[0].verified['keyed']:,} / {big.data.people:,}"],
        ["after: tombstones / identities", f"{big.convkey[0].verified['tombstones']:,} / "
                                           f"{big.convkey[0].verified['identities']:,}"],
        ["floor: rows given a key", f"{big.floor_keyed:,} of {big.data.rows:,}"],
    ]
    tables.append(Table([f"what the backfill did ({big.data.rows:,} rows, first run, its --json report)", ""], did))
    tables.append(Table(["data set"] + [f"{p.data.rows:,} rows" for p in points], [
        ["people / with 2-3 rows / LID-only"] + [f"{p.data.people:,} / {p.data.multi:,} / {p.data.lid_only:,}"
                                                   for p in points],
        ["LID-phone links recorded (link_identity)"] + [f"{p.data.links:,}" for p in points],
        ["rows with a lead / naming nobody"] + [f"{p.data.lead_rows:,} / {p.data.broken:,}" for p in points],
        ["messages"] + [f"{p.data.messages:,}" for p in points],
        ["template built in, s"] + [f"{p.data.seconds:,.0f}" for p in points],
    ]))

    checks = [Check(f"floor / convkey wall time at {big.data.rows:,} rows (convkey within {TARGET:g}x the floor)",
                    _paired(big.floor, conv_s[big.data.rows]), 1 / TARGET,
                    _paired(big.floor, _required(big)) if _required(big) else None,
                    "floor / required writes (the result's rows written set-based, answer known)")]
    if big.serial:
        checks.append(Check(f"floor / convkey wall time at {big.data.rows:,} rows, serial (--workers 1, the "
                            "default)", _paired(big.floor, [r.seconds for r in big.serial]), 1 / TARGET))
    for p in points:
        checks.append(Check(f"{RSS_LIMIT_MB:g} MB / runner peak RSS at {p.data.rows:,} rows",
                            Summary([RSS_LIMIT_MB / r.rss_mb for r in p.convkey]), 1.0))
    if len(points) == 2:
        flat = Summary([Summary([r.rss_mb for r in points[0].convkey]).median / r.rss_mb for r in big.convkey])
        checks.append(Check(f"peak RSS at {points[0].data.rows:,} / at {big.data.rows:,} rows (flat)", flat, FLAT))

    reps_text = (f"convkey ran {'once' if large_reps == 1 else f'{large_reps} times'} at {big.data.rows:,} rows"
                 + (f" (--backfill-reps; the floor and the {points[0].data.rows:,}-row point are repeated "
                    f"{ctx.reps} times, and the ratio's range there is the floor's)" if large_reps == 1 < ctx.reps
                    else ", each repetition with every side in turn, the order rotating") + ".")
    text = (
        "Legacy conversations made set-based in a template database (bench/sql/backfill_data.sql): a tenth of "
        "the people have 2-3 rows under different identifier forms (phone JID, device JID, +E164, national "
        "format, c.us, LID JID), one in 20 of the others is LID-only, every person with a LID row has its "
        "LID-phone link recorded with convkey.link_identity (a history sync), 3 in 10 have a lead, 1 row in "
        "1,000 names nobody (groups, broadcasts, garbage), 5 messages per conversation written in time order; "
        "then VACUUM ANALYZE. Each run gets its own clone of the template (CREATE DATABASE ... TEMPLATE), "
        "after a CHECKPOINT. **convkey**: `convkey backfill --execute --json --workers "
        f"{workers_of(ctx)} --dsn <clone>` in a subprocess (default batch size; the resolve batches and the "
        "set-based merge on that many connections), wall time from spawn to exit; peak RSS and CPU are that child's rusage "
        "(os.wait4); phase spans from convkey.backfill_cursor. After each run the clone is checked: every "
        "message kept and none in a merged-away conversation, every live conversation keyed or listed "
        "unresolvable, one live conversation per person. **serial** (when the above runs more than one "
        "worker): the same command with --workers 1, the default, which resolves and merges in id order "
        "exactly as the dry run prints; it runs in every repetition, side by side, and is checked the same way. **floor**: one UPDATE on a copy of the conversations "
        "(same columns, checks and indexes, but (business_id, canonical_key) not unique, no triggers): each "
        "row's key from convkey._parse_wa_id (the lead key when it has a lead) and its phone, in one "
        "transaction; it does not normalize human formats (phonenumbers), writes no identities and merges "
        "nothing. **required writes**: after each convkey run, its answer (every conversation it keyed or "
        "merged away, every identity, every moved message's conversation, every audit row) is copied to a "
        "fresh clone and written there by four set-based statements in one transaction, with "
        "session_replication_role = replica (no triggers, no foreign-key checks; the unique indexes hold); "
        "the clone is then checked to hold the same counts. It computes nothing, so any backfill that leaves "
        "the same result takes at least its time: floor / required writes is the ceiling of the target. "
        "The target reads \"convkey <= 4x the floor\", checked as floor / convkey >= 0.25; peak RSS "
        "< 300 MB as 300 MB / peak >= 1, and flat as the small size's peak / the large size's >= 0.67 (bounded "
        "caches may fill in between; what grows with the rows shows as 10x). WAL written: pg_stat_wal before "
        "and after each side (the whole cluster; nothing else runs), with its full-page images: the first "
        "change of a page after a checkpoint logs the whole page, so random writes under the default "
        "checkpoint distance (max_wal_size 1GB) log many. "
        f"wal_compression: {r0.get('wal_compression') or 'the server setting'} in every side's sessions (convkey "
        "backfill sets lz4 for its own sessions when the server does not compress and the role may; the floor "
        "and the required writes set the same). **uncompressed** (when convkey's sessions compress): the "
        "convkey command with --wal-compression off, in every repetition, side by side, checked the same way. "
        "**--skip-analyze** (before/after of the statistics step): the convkey command without the ANALYZE "
        "the merge phase starts with (of the staging table, the identities and the conversations the resolve "
        "phase has just filled), so the merge phase plans on the statistics of the template, as it did "
        "before that step was added; in every repetition, side by side, checked the same way. "
        + ("**Configured server**: at the large size only, the server is then restarted with "
           + ", ".join(f"{k}={v}" for k, v in CONFIGURED.items())
           + " (room for the 1.6 GB of messages and indexes the merges touch, and checkpoints far enough "
             "apart), convkey and the floor run side by side as above, and the server is restarted with "
             "PostgreSQL's defaults for the rest of the bench; the target is judged at the defaults. "
           if configured is not None else "")
        + reps_text)
    section = Section(KEY, TITLE, text, tables, checks)
    if not checks[0].met:
        section.findings.append(where_the_time_goes(big))
    return section


def where_the_time_goes(point: Point) -> str:
    """The phase split of the first large run, for a missed target."""
    run0 = point.convkey[0]
    resolve, merge = run0.phases.get("resolve", 0.0), run0.phases.get("merge", 0.0)
    deferred = run0.report["deferred_to_merge"]
    set_based = run0.report.get("merge_set_based", 0)
    per_row = f", {merge / deferred * 1000:.1f} ms per row on average" if deferred else ""
    return (f"Where the time goes ({point.data.rows:,} rows, first run): resolve phase {resolve:,.0f} s for "
            f"{run0.report['rows_read']:,} rows ({resolve / max(run0.report['rows_read'], 1) * 1e6:,.0f} us per row), "
            f"merge phase {merge:,.0f} s for {deferred:,} deferred rows ({set_based:,} merged set-based, a chunk "
            f"per transaction; the others one transaction each){per_row}; "
            f"the runner itself used {run0.cpu:,.0f} s of CPU"
            + (f"; the run wrote {run0.wal[0] / 1e6:,.0f} MB of WAL, {run0.wal[1]:,} full-page images "
               f"(the floor {point.floor_wal[0][0] / 1e6:,.0f} MB, {point.floor_wal[0][1]:,})"
               if run0.wal and point.floor_wal else "") + ".")


def _required(point: Point) -> list[float]:
    """The required-writes times of a size's convkey runs ([] when any was not measured)."""
    times = [r.required for r in point.convkey]
    return times if None not in times else []


def _paired(numerator: list[float], denominator: list[float]) -> Summary:
    """Per-repetition ratios; with one run on a side, that run against each of the other's."""
    if len(numerator) == len(denominator):
        return ratios(numerator, denominator)
    if len(numerator) == 1:
        return Summary([numerator[0] / d for d in denominator if d > 0])
    if len(denominator) == 1:
        return Summary([n / denominator[0] for n in numerator])
    k = min(len(numerator), len(denominator))
    return ratios(numerator[:k], denominator[:k])
