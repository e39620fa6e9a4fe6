"""Proxy: ``convkey.record_message`` through a PL/Proxy proxy to 2 shards vs directly to one database.

Four databases of the bench server, made and dropped by this module: one database ("direct"), two
shards and a proxy in front of them (``convkey shards add``: 4 partitions, 0 and 2 on shard A, 1
and 3 on shard B; proxy/ migrations). The businesses 1..16 are seeded alike in the direct database
and, each on the shard of its partition, in the shards; then the same pgbench script (a new message
of an existing person of a random business) runs against the direct database and against the
proxy, side by side. Both shards share the bench server (and its 2 cores) with the proxy: this
measures what the extra hop costs, not what more machines would add.
"""

from __future__ import annotations

import psycopg

from bench.pgbench import Target, Workload, cpu_ratio, cpu_table, warm_up
from bench.stats import Section, Summary, Table, ratios
from convkey import shards
from convkey.migrate import migrate

KEY = "proxy"
TITLE = "Proxy: record_message through PL/Proxy to 2 shards vs one database"
BUSINESSES = 16
PARTITIONS = 4
NAMES = ("convkey_bench_direct", "convkey_bench_shard_a", "convkey_bench_shard_b", "convkey_bench_proxy")

SEED_SQL = """
SELECT count(*) FROM generate_series(1, %(people)s) p,
       LATERAL convkey.record_message(%(business)s, '97250' || lpad(p::text, 7, '0') || '@s.whatsapp.net', 'in',
                                      'seed-' || p, 'hello') m
"""


def _drop(env) -> None:
    for name in NAMES:
        env.sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run(ctx) -> Section:
    env = ctx.env
    if not env.value("SELECT count(*) FROM pg_available_extensions WHERE name = 'plproxy'"):
        return Section(KEY, TITLE, "Skipped: the plproxy extension is not installed on the bench server "
                                   "(Debian: apt-get install postgresql-15-plproxy).")
    people = max(10, ctx.people // BUSINESSES)
    _drop(env)
    try:
        for name in NAMES:
            env.sql(f'CREATE DATABASE "{name}"')
        direct, a, b, proxy = (env.dsn_for(n) for n in NAMES)
        migrate(direct)
        shards.add_shard(proxy, a, partitions_count=PARTITIONS)
        shards.add_shard(proxy, b)
        for business in range(1, BUSINESSES + 1):
            home = a if shards.partition_of(business, PARTITIONS) % 2 == 0 else b
            for dsn in (direct, home):
                with psycopg.connect(dsn, autocommit=True) as conn:
                    conn.execute(SEED_SQL, {"people": people, "business": business})
        for dsn in (direct, a, b):
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute("VACUUM ANALYZE")
        ctx.log(f"  proxy: seeded {BUSINESSES} businesses x {people} people in the direct database and the shards")
        return _measure(ctx, direct, proxy, people)
    finally:
        _drop(env)


def _measure(ctx, direct: str, proxy: str, people: int) -> Section:
    defines = {"businesses": BUSINESSES, "people": people}
    ws = [Workload("proxy_direct", "one database, directly", "proxy_record_message.sql", defines),
          Workload("proxy_proxy", "through the proxy (2 shards)", "proxy_record_message.sql", defines)]
    dsn_of = {"proxy_direct": direct, "proxy_proxy": proxy}
    target = Target(ctx.env)
    saved = ctx.runner.env
    ctx.runner.env = target
    try:
        for w in ws:
            target.dsn = dsn_of[w.name]
            warm_up(ctx.runner, [w])
        results: dict[int, dict[str, list[float]]] = {}
        for clients in ctx.clients:
            ctx.log(f"  proxy, {clients} client(s)")
            res: dict[str, list[float]] = {w.name: [] for w in ws}
            for rep in range(ctx.reps):
                for w in (ws if rep % 2 == 0 else ws[::-1]):  # the order alternates between repetitions
                    target.dsn = dsn_of[w.name]
                    res[w.name].append(ctx.runner.tps(w, clients))
                ctx.log(f"    c={clients} rep {rep + 1}/{ctx.reps}: "
                        + ", ".join(f"{w.name} {res[w.name][-1]:,.0f}" for w in ws))
            results[clients] = res
    finally:
        ctx.runner.env = saved
    cl = sorted(results)
    heads = [f"{c} client{'s' if c > 1 else ''}" for c in cl]
    rows = [[w.label] + [Summary(results[c][w.name]).rate() for c in cl] for w in ws]
    rows.append(["ratio proxy / direct"] + [ratios(results[c]["proxy_proxy"], results[c]["proxy_direct"]).ratio()
                                            for c in cl])
    if any(cpu_ratio(ctx.runner, "proxy_proxy", "proxy_direct", c) for c in cl):
        rows.append(["ratio predicted by CPU per call"] + [cpu_ratio(ctx.runner, "proxy_proxy", "proxy_direct", c)
                                                           for c in cl])
    tables = [Table(["record_message calls/s, median (min-max)"] + heads, rows)]
    cpu = cpu_table(ctx.runner, ws, cl)
    if cpu is not None:
        tables.append(cpu)
    text = (
        f"`SELECT * FROM convkey.record_message(b, '97250xxxxxxx@s.whatsapp.net', 'in', <new id>, 'hello')` for a "
        f"random business of {BUSINESSES} and a random one of its {people} pre-created people, "
        "(bench/scripts/proxy_record_message.sql) against one database, and against a proxy database whose "
        "PL/Proxy function of the same name runs it on the shard of the business (4 partitions on 2 shards; "
        "`RUN ON convkey._business_hash(b)`). Proxy and shards are databases of the bench server: each call "
        "through the proxy costs a second backend and a second round trip on the same 2 cores, which is what "
        "the ratio shows; on separate machines the shards add capacity instead."
    )
    return Section(KEY, TITLE, text, tables)
