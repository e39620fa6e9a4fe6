"""Before/after: convkey's SQL as of an earlier revision vs the working tree, side by side.

A change made for a target is recorded by measuring it, not by quoting old numbers: this module
exports ``sql/`` and ``functions/`` of a baseline revision from git (``git archive``, default
BASELINE_REV, the last commit before the hot-path changes of issue 7), migrates one database with
them and one with the working tree's, seeds both alike, and runs the webhook (a) and get-or-create
scripts of parts 1 and 2 against both, alternating the order in each repetition. Skipped outside a
git checkout or when the revision is unknown.
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
TITLE = "Before/after: the SQL of an earlier revision vs the working tree"
ROOT = Path(__file__).resolve().parents[1]
# ce37a38: main before the phone-length bit masks, the one-row _parse_wa_id and the read-first
# get_or_create (see the table of changes in the section text).
BASELINE_REV = "ce37a38"
NAMES = {"before": "convkey_bench_before", "after": "convkey_bench_after"}
SEED_SQL = """
SELECT count(*) FROM generate_series(%(lo)s::int, %(hi)s::int) AS p,
       LATERAL convkey.record_message(1, '97250' || lpad(p::text, 7, '0') || '@s.whatsapp.net', 'in',
                                      'seed-' || p, 'hello', p_sent_at => now() - interval '1 day') AS m
"""
CHANGES = [
    ("phone lengths: one constant bit-mask array instead of a CASE over ~230 calling codes",
     "functions/post-apply-01_phone_reference.sql (runner/convkey/gen_reference_sql.py)"),
    ("_parse_wa_id returns one row (assigned as an expression), not a set (a query and a tuplestore)",
     "functions/post-apply-10_parse_wa_id.sql, 13_identity_of.sql, 20_call_identities.sql"),
    ("get_or_create reads the row once and writes customer_wa_id only when it changed",
     "functions/post-apply-31_get_or_create_conversation.sql"),
]


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


def _drop(env) -> None:
    for name in NAMES.values():
        env.sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run(ctx) -> Section:
    env = ctx.env
    with tempfile.TemporaryDirectory(prefix="convkey-bench-history-") as tmp:
        dirs = export(BASELINE_REV, Path(tmp))
        if dirs is None:
            return Section(KEY, TITLE, f"Skipped: revision {BASELINE_REV} cannot be read with git here "
                                       "(the benchmark runs from a git checkout of the repository).")
        _drop(env)
        try:
            dsn = {label: env.dsn_for(name) for label, name in NAMES.items()}
            for label, name in NAMES.items():
                env.sql(f'CREATE DATABASE "{name}"')
                migrate(dsn[label], dirs=dirs if label == "before" else None)
                with psycopg.connect(dsn[label], autocommit=True) as conn:
                    for lo in range(1, ctx.people + 1, 500):  # small transactions, as the main seed
                        conn.execute(SEED_SQL, {"lo": lo, "hi": min(ctx.people, lo + 499)})
                    conn.execute("VACUUM ANALYZE")
            ctx.log(f"  history: {BASELINE_REV} and the working tree migrated and seeded ({ctx.people} people each)")
            return _measure(ctx, dsn)
        finally:
            _drop(env)


def _measure(ctx, dsn: dict[str, str]) -> Section:
    defines = {"people": ctx.people}
    kinds = [("a", "(a) record_message, existing person", "webhook_convkey_existing.sql"),
             ("goc", "get_or_create, existing person", "goc_convkey.sql")]
    ws = [Workload(f"{k}:{label}", f"{text}: {BASELINE_REV if label == 'before' else 'working tree'}", script,
                   defines) for k, text, script in kinds for label in ("before", "after")]
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
        rows.append([f"ratio after / before, {text}"]
                    + [ratios(results[c][f"{k}:after"], results[c][f"{k}:before"]).ratio() for c in levels]
                    + [cpu_ratio(ctx.runner, f"{k}:after", f"{k}:before", levels[-1])])
    tables = [Table(["calls/s, median (min-max)"] + heads + [f"by CPU per call, {levels[-1]} clients"], rows),
              Table(["change", "files"], [list(c) for c in CHANGES], title="Changes between the two")]
    cpu = cpu_table(ctx.runner, ws, levels)
    if cpu is not None:
        tables.append(cpu)
    text = (f"Two databases of the bench server: one migrated with `sql/` and `functions/` of revision "
            f"{BASELINE_REV} (`git archive`), one with the working tree's; {ctx.people} people seeded alike in "
            "each; the scripts of parts 1 (a) and 2 run against both, side by side, the order alternating between "
            "repetitions.")
    return Section(KEY, TITLE, text, tables)
