"""Before/after: convkey's SQL as of earlier revisions vs the working tree, side by side.

A change made for a target is recorded by measuring it, not by quoting old numbers: this module
exports ``sql/`` and ``functions/`` of each baseline revision from git (``git archive``, BASELINES:
the last commit before each round of hot-path changes of issue 7), migrates one database with each
and one with the working tree's, seeds them alike, and runs the webhook (a), (b) and get-or-create
scripts of parts 1 and 2 against all of them, the order alternating between repetitions. A
baseline git cannot read here is left out; with none, the section is skipped.
"""

from __future__ import annotations

import io
import subprocess
import tarfile
import tempfile
from pathlib import Path

import psycopg

from bench.pgbench import Target, Workload, cpu_ratio, cpu_table, warm_up
from bench.stats import Section, Summary, Table, ratios
from convkey.migrate import migrate

KEY = "history"
TITLE = "Before/after: the SQL of earlier revisions vs the working tree"
ROOT = Path(__file__).resolve().parents[1]
# Each baseline with the changes made after it (the section's table of changes), oldest first.
BASELINES = [
    ("ce37a38", [
        ("phone lengths: one constant bit-mask array instead of a CASE over ~230 calling codes",
         "functions/post-apply-01_phone_reference.sql (runner/convkey/gen_reference_sql.py)"),
        ("_parse_wa_id returns one row (assigned as an expression), not a set (a query and a tuplestore)",
         "functions/post-apply-10_parse_wa_id.sql, 13_identity_of.sql, 20_call_identities.sql"),
        ("get_or_create reads the row once and writes customer_wa_id only when it changed",
         "functions/post-apply-31_get_or_create_conversation.sql"),
    ]),
    ("cdca13b", [
        ("grammar patterns without bounded repetitions ({1,32}) or capture groups (regexp_match), "
         "the lengths checked apart",
         "functions/post-apply-01 (generated), 04, 05, 06, 07, 10, 29"),
    ]),
    ("686c05d", [
        ("argument checks assigned (p_x := convkey._check_x(p_x)), a PL/pgSQL expression, instead of "
         "PERFORM, a query through SPI (proposal P3)",
         "functions/post-apply-03, 07, 09 (return their argument), 20, 31, 33, 34"),
        ("_lock_conversations keeps a generic plan instead of planning again on every call (proposal P5)",
         "functions/post-apply-25_lock_conversations.sql"),
    ]),
]
AFTER = "after"  # the working tree's database and workloads
SEED_SQL = """
SELECT count(*) FROM generate_series(%(lo)s::int, %(hi)s::int) AS p,
       LATERAL convkey.record_message(1, '97250' || lpad(p::text, 7, '0') || '@s.whatsapp.net', 'in',
                                      'seed-' || p, 'hello', p_sent_at => now() - interval '1 day') AS m
"""


def export(rev: str, into: Path) -> tuple[Path, Path] | None:
    """sql/ and functions/ of ``rev`` under ``into``; None when git or the revision is missing."""
    try:
        proc = subprocess.run(["git", "archive", "--format=tar", rev, "sql", "functions"], cwd=ROOT,
                              capture_output=True, check=False)
    except FileNotFoundError:
        return None
    if proc.returncode != 0:
        return None
    with tarfile.open(fileobj=io.BytesIO(proc.stdout)) as tar:
        tar.extractall(into, filter="data")
    return into / "sql", into / "functions"


def _dbname(label: str) -> str:
    return "convkey_bench_" + label


def _drop(env, labels: list[str]) -> None:
    for label in labels:
        env.sql(f'DROP DATABASE IF EXISTS "{_dbname(label)}" WITH (FORCE)')


def run(ctx) -> Section:
    env = ctx.env
    with tempfile.TemporaryDirectory(prefix="convkey-bench-history-") as tmp:
        dirs = {rev: export(rev, Path(tmp) / rev) for rev, _ in BASELINES}
        dirs = {rev: d for rev, d in dirs.items() if d is not None}
        if not dirs:
            return Section(KEY, TITLE, f"Skipped: revisions {', '.join(r for r, _ in BASELINES)} cannot be read "
                                       "with git here (the benchmark runs from a git checkout of the repository).")
        labels = list(dirs) + [AFTER]
        _drop(env, labels)
        try:
            dsn = {label: env.dsn_for(_dbname(label)) for label in labels}
            for label in labels:
                env.sql(f'CREATE DATABASE "{_dbname(label)}"')
                migrate(dsn[label], dirs=dirs.get(label))
                with psycopg.connect(dsn[label], autocommit=True) as conn:
                    for lo in range(1, ctx.people + 1, 500):  # small transactions, as the main seed
                        conn.execute(SEED_SQL, {"lo": lo, "hi": min(ctx.people, lo + 499)})
                    conn.execute("VACUUM ANALYZE")
            ctx.log(f"  history: {', '.join(dirs)} and the working tree migrated and seeded ({ctx.people} people each)")
            return _measure(ctx, dsn, labels)
        finally:
            _drop(env, labels)


def _measure(ctx, dsn: dict[str, str], labels: list[str]) -> Section:
    defines = {"people": ctx.people}
    kinds = [("a", "(a) record_message, existing person", "webhook_convkey_existing.sql"),
             ("b", "(b) record_message, new person", "webhook_convkey_new.sql"),
             ("goc", "get_or_create, existing person", "goc_convkey.sql")]
    ws = [Workload(f"{k}:{label}", f"{text}: {'working tree' if label == AFTER else label}", script, defines)
          for k, text, script in kinds for label in labels]
    target = Target(ctx.env)
    saved = ctx.runner.env
    ctx.runner.env = target
    levels = sorted({c for c in ctx.clients if c in (1, max(ctx.clients))})
    results: dict[int, dict[str, list[float]]] = {c: {w.name: [] for w in ws} for c in levels}
    try:
        for w in ws:
            target.dsn = dsn[w.name.split(":")[1]]
            warm_up(ctx.runner, [w])
        for c in levels:
            for rep in range(ctx.reps):
                for w in (ws if rep % 2 == 0 else ws[::-1]):  # the order alternates between repetitions
                    target.dsn = dsn[w.name.split(":")[1]]
                    results[c][w.name].append(ctx.runner.tps(w, c))
                ctx.log(f"    history c={c} rep {rep + 1}/{ctx.reps}: "
                        + ", ".join(f"{w.name} {results[c][w.name][-1]:,.0f}" for w in ws))
    finally:
        ctx.runner.env = saved
    heads = [f"{c} client{'s' if c > 1 else ''}" for c in levels]
    rows = [[w.label] + [Summary(results[c][w.name]).rate() for c in levels] + [""] for w in ws]
    for k, text, _ in kinds:
        for before in labels[:-1]:
            rows.append([f"ratio working tree / {before}, {text}"]
                        + [ratios(results[c][f"{k}:{AFTER}"], results[c][f"{k}:{before}"]).ratio() for c in levels]
                        + [cpu_ratio(ctx.runner, f"{k}:{AFTER}", f"{k}:{before}", levels[-1])])
    changes = [[f"after {rev}", change, files] for rev, made in BASELINES if rev in labels for change, files in made]
    tables = [Table(["calls/s, median (min-max)"] + heads + [f"by CPU per call, {levels[-1]} clients"], rows),
              Table(["since", "change", "files"], changes, title="Changes after each baseline")]
    cpu = cpu_table(ctx.runner, ws, levels)
    if cpu is not None:
        tables.append(cpu)
    text = (f"Databases of the bench server migrated with `sql/` and `functions/` of revisions "
            f"{', '.join(labels[:-1])} (`git archive`) and one with the working tree's; {ctx.people} people seeded "
            "alike in each; the scripts of parts 1 (a), 1 (b) and 2 run against all of them, side by side, the order "
            "alternating between repetitions.")
    return Section(KEY, TITLE, text, tables)
