"""Part 5: what the Python runner adds to the webhook call.

``convkey.Client.record_message`` (one Client, a pool of 8 connections opened before timing)
called from 1 and 8 threads, against pgbench running the runner's own named query
(``record_message`` from convkey/queries.sql, placeholders filled with the same values) with 1
and 8 clients. Both do call (a): a new message of a random existing person.
"""

from __future__ import annotations

import random
import re
import tempfile
import threading
import time
from pathlib import Path

from bench.pgbench import Workload, warm_up
from bench.stats import Section, Summary, Table, ratios

KEY = "python_path"
TITLE = "5. Python path: convkey.Client.record_message vs the same SQL through pgbench"

PGBENCH_VALUES = {
    "business_id": "1",
    "customer_wa_id": "('97250' || lpad(:p::text, 7, '0') || '@s.whatsapp.net')",
    "direction": "'in'",
    "provider_message_id": "('pg-' || :run || '-' || :client_id || '-' || :n)",
    "body": "'hello'",
    "provider": "'baileys'",
    "lead_id": "NULL",
    "phone_e164": "NULL",
    "sent_at": "now()",
    "source": "NULL",
}


def pgbench_script(directory: Path) -> Path:
    """The runner's record_message query as a pgbench script."""
    from convkey import queries

    sql = queries.get("record_message")
    names = set(re.findall(r"%\((\w+)\)s", sql))
    missing = names - PGBENCH_VALUES.keys()
    if missing:
        raise RuntimeError(f"queries.sql record_message has parameters the bench does not know: {sorted(missing)}")
    sql = re.sub(r"%\((\w+)\)s", lambda m: PGBENCH_VALUES[m.group(1)], sql)
    path = directory / "python_path_pgbench.sql"
    path.write_text("-- 5: the runner's named query record_message, from pgbench\n"
                    "\\set p random(1, :people)\n\\set n :n + 1\n" + sql.rstrip().rstrip(";") + ";\n",
                    encoding="utf-8")
    return path


def python_rate(client, threads: int, seconds: float, people: int, run: int) -> tuple[float, float]:
    """(calls/s, client CPU us per call) of ``threads`` threads calling record_message for ``seconds``."""
    counts = [0] * threads
    barrier = threading.Barrier(threads + 1)
    stop = [0.0]

    def worker(tid: int) -> None:
        r = random.Random(run * 1000 + tid)
        barrier.wait()
        n = 0
        while time.perf_counter() < stop[0]:
            p = r.randint(1, people)
            client.record_message(1, f"97250{p:07d}@s.whatsapp.net", "in", f"py-{run}-{tid}-{n}", "hello")
            n += 1
        counts[tid] = n

    ts = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(threads)]
    for t in ts:
        t.start()
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    stop[0] = t0 + seconds
    barrier.wait()
    for t in ts:
        t.join()
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    calls = sum(counts)
    return calls / elapsed, (cpu / calls * 1e6) if calls else float("nan")


def run(ctx) -> Section:
    from convkey import Client

    ctx.ensure_seeded()
    with tempfile.TemporaryDirectory(prefix="convkey-bench-py-") as tmp:
        return _run(ctx, Client, Path(tmp))


def _run(ctx, Client, tmp: Path) -> Section:
    wl = Workload("pgbench_rm", "pgbench, runner's query", pgbench_script(tmp), {"people": ctx.people})
    levels = [c for c in (1, 8) if c <= max(ctx.clients)] or [1]
    seconds = ctx.python_duration
    py: dict[int, list[float]] = {c: [] for c in levels}
    cpu: dict[int, list[float]] = {c: [] for c in levels}
    pg: dict[int, list[float]] = {c: [] for c in levels}
    run_no = 0
    with Client(ctx.env.dsn, min_size=8, max_size=8) as client:
        # warm up: every pooled connection prepares its statements
        python_rate(client, 8, min(0.5, seconds), ctx.people, run_no)
        warm_up(ctx.runner, [wl])
        for c in levels:
            for rep in range(ctx.reps):
                order = ["py", "pg"] if rep % 2 == 0 else ["pg", "py"]
                for which in order:
                    if which == "py":
                        ctx.env.checkpoint()
                        run_no += 1
                        rate, us = python_rate(client, c, seconds, ctx.people, run_no)
                        py[c].append(rate)
                        cpu[c].append(us)
                    else:
                        pg[c].append(ctx.runner.tps(wl, c))
                ctx.log(f"    python path c={c} rep {rep + 1}/{ctx.reps}: Client {py[c][-1]:,.0f}/s, "
                        f"pgbench {pg[c][-1]:,.0f}/s")
    heads = [f"{c} thread{'s' if c > 1 else ''} / client{'s' if c > 1 else ''}" for c in levels]
    rows = [
        ["convkey.Client.record_message, calls/s"] + [Summary(py[c]).rate() for c in levels],
        ["pgbench, same SQL, calls/s"] + [Summary(pg[c]).rate() for c in levels],
        ["ratio Client / pgbench"] + [ratios(py[c], pg[c]).ratio() for c in levels],
        ["Python CPU per call, us (median)"] + [f"{Summary(cpu[c]).median:,.0f}" for c in levels],
    ]
    text = ("One `convkey.Client` (psycopg_pool, min_size = max_size = 8, prepared statements) shared by the "
            "threads; each call normalizes its input, takes a pooled connection, runs the named query and "
            "returns a dict. pgbench sends the same query text (placeholders filled in SQL, sent_at = now()). "
            "The Python process competes with the server for the same cores.")
    return Section(KEY, TITLE, text, [Table(["median (min-max)"] + heads, rows)])
