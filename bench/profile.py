"""Where the time of a convkey call goes, from the server's own statistics.

Runs last, on the own throwaway cluster only: restarts it with pg_stat_statements preloaded
(track = all, so the statements PL/pgSQL runs inside the functions are counted too, and
track_planning = on, so a statement that is planned again on every call shows) and
track_functions = all, then runs each convkey workload with one client and reports per
top-level call: per-function self/total time and the nested statements by time. The tracking
itself adds overhead; read the shares, not the absolute numbers. The same is done once more with
every applicable proposal of bench/proposals.py installed.
"""

from __future__ import annotations

import re

from bench import get_or_create, proposals, webhook
from bench.stats import Section, Table

KEY = "profile"
TITLE = "Profile: where a convkey call spends its time"


def _short(query: str, width: int = 95) -> str:
    q = re.sub(r"\s+", " ", query).strip()
    return (q[: width - 1] + "…" if len(q) > width else q).replace("|", "\\|")


def profile_workload(ctx, workload, transactions: int, label: str) -> list[Table]:
    env = ctx.env
    env.sql("SELECT pg_stat_statements_reset()")
    env.sql("SELECT pg_stat_reset()")
    saved = ctx.runner.duration, ctx.runner.transactions
    ctx.runner.transactions = transactions
    try:
        tps = ctx.runner.tps(workload, 1)
    finally:
        ctx.runner.duration, ctx.runner.transactions = saved
    top = env.sql("""
        SELECT calls, total_exec_time, query FROM pg_stat_statements
         WHERE toplevel AND query ~* 'convkey\\.(record_message|get_or_create_conversation)'
         ORDER BY calls DESC LIMIT 1""")
    if not top:
        return [Table(["note"], [["no top-level call found in pg_stat_statements"]], title=label)]
    calls, total_ms, _ = top[0]
    per_call_us = total_ms * 1000 / calls
    funcs = env.sql("""
        SELECT schemaname || '.' || funcname, calls, self_time, total_time FROM pg_stat_user_functions
         WHERE schemaname = 'convkey' ORDER BY self_time DESC LIMIT 14""")
    frows = [[name, f"{c / calls:.2f}", f"{s * 1000 / calls:,.1f}", f"{t * 1000 / calls:,.1f}",
              f"{s * 1000 / calls / per_call_us:.0%}"] for name, c, s, t in funcs]
    ftable = Table(["function", "calls per call", "self us", "total us", "self share"], frows,
                   title=f"{label}: functions (track_functions), per top-level call; top-level "
                         f"{per_call_us:,.0f} us executor time, {tps:,.0f} calls/s with tracking on")
    stmts = env.sql("""
        SELECT calls, plans, total_exec_time, total_plan_time, query FROM pg_stat_statements
         WHERE NOT toplevel ORDER BY total_exec_time + total_plan_time DESC LIMIT 12""")
    srows = [[f"{c / calls:.2f}", f"{p / calls:.2f}", f"{pt * 1000 / calls:,.1f}", f"{et * 1000 / calls:,.1f}",
              f"`{_short(q)}`"] for c, p, et, pt, q in stmts]
    stable = Table(["runs", "plans", "planning us", "execution us", "nested statement (per top-level call)"], srows,
                   title=f"{label}: nested statements (pg_stat_statements track=all), per top-level call")
    return [ftable, stable]


def run(ctx) -> Section:
    env = ctx.env
    if not env.own_cluster:
        return Section(KEY, TITLE, "Skipped: profiling restarts the server with pg_stat_statements preloaded, "
                                   "which only the bench's own throwaway cluster allows (run without --dsn).")
    env.restart_with({"shared_preload_libraries": "pg_stat_statements"})
    env.sql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    for name, value in (("pg_stat_statements.track", "all"), ("pg_stat_statements.track_planning", "on"),
                        ("track_functions", "all")):
        env.sql(f"ALTER SYSTEM SET {name} = '{value}'")
    env.sql("SELECT pg_reload_conf()")
    env.conn.close()  # a new session sees the reloaded settings
    ctx.ensure_seeded()
    n = 20 if ctx.smoke else 2000
    ws = {w.name: w for w in webhook.workloads(ctx.people) + get_or_create.workloads(ctx.people)}
    tables: list[Table] = []
    for name in ("convkey_a", "convkey_b", "convkey_c", "goc_convkey"):
        ctx.log(f"  profiling {name}")
        tables += profile_workload(ctx, ws[name], n, ws[name].label)
    originals, stages, status = proposals.install_all(env)
    try:
        if stages:
            for name in ("convkey_a", "goc_convkey"):
                ctx.log(f"  profiling {name} with {stages}")
                tables += profile_workload(ctx, ws[name], n, f"{ws[name].label}, with {stages}")
    finally:
        proposals.restore(env, originals)
    text = ("One client, " + str(n) + " calls per workload, pg_stat_statements track=all + track_planning, "
            "track_functions=all (these add overhead: compare shares). All columns are per top-level call; "
            "plans = runs means the statement is planned again on every execution instead of using a cached "
            "generic plan. Rows with 0 runs are PL/pgSQL simple expressions (planned once per session, "
            "evaluated without the executor).")
    return Section(KEY, TITLE, text, tables)
