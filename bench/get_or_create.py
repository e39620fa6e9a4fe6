"""Part 2: read-mostly get-or-create of an existing person.

``convkey.get_or_create_conversation(1, '<phone JID>')`` against a minimal select-first PL/pgSQL
function on a one-table schema (bench_min, see bench/sql/baselines.sql). Both find an existing
row and write nothing, so no commit flush: this measures the CPU cost of the call.
"""

from __future__ import annotations

from bench.pgbench import Workload, cpu_ratio, cpu_table, side_by_side, warm_up
from bench.stats import Check, Section, Summary, Table, ratios

KEY = "get_or_create"
TITLE = "2. Read-mostly get-or-create of an existing person"
TARGET = 0.9


def workloads(people: int) -> list[Workload]:
    d = {"people": people}
    return [
        Workload("goc_convkey", "convkey.get_or_create_conversation", "goc_convkey.sql", d),
        Workload("goc_min", "minimal select-first function", "goc_min.sql", d),
        Workload("goc_validated", "minimal + convkey's input validation (reference)", "goc_validated.sql", d),
    ]


# (label, numerator, denominator)
COMPARISONS = [
    ("ratio convkey / minimal", "goc_convkey", "goc_min"),
    ("ratio minimal + validation (reference) / minimal", "goc_validated", "goc_min"),
    ("ratio convkey / minimal + validation (reference)", "goc_convkey", "goc_validated"),
]


def run(ctx) -> Section:
    ctx.ensure_seeded()
    ws = workloads(ctx.people)
    warm_up(ctx.runner, ws)
    results = {}
    for clients in ctx.clients:
        ctx.log(f"  get-or-create, {clients} client(s)")
        results[clients] = side_by_side(ctx.runner, ws, clients, ctx.reps, log=ctx.log)
    cl = sorted(results)
    heads = [f"{c} client{'s' if c > 1 else ''}" for c in cl]
    rows = [[w.label] + [Summary(results[c][w.name]).rate() for c in cl] for w in ws]
    for label, num, den in COMPARISONS:
        rows.append([label] + [ratios(results[c][num], results[c][den]).ratio() for c in cl])
    if any(cpu_ratio(ctx.runner, "goc_convkey", "goc_min", c) for c in cl):
        rows.append(["ratio predicted by CPU per call"] + [cpu_ratio(ctx.runner, "goc_convkey", "goc_min", c)
                                                           for c in cl])
    table = Table(["calls/s, median (min-max)"] + heads, rows)
    checks = [Check(f"convkey / minimal at {c} client{'s' if c > 1 else ''}",
                    ratios(results[c]["goc_convkey"], results[c]["goc_min"]), TARGET,
                    ratios(results[c]["goc_validated"], results[c]["goc_min"]), "minimal + validation / minimal")
              for c in cl]
    text = ("`SELECT * FROM convkey.get_or_create_conversation(1, '97250xxxxxxx@s.whatsapp.net')` for a random "
            "pre-created person vs `bench_min.get_or_create_conversation(1, jid)`: SELECT by key, INSERT ... ON "
            "CONFLICT DO NOTHING RETURNING, SELECT again, with the key taken from the JID without validation. "
            "Reference: the same minimal function after `convkey._call_identities` (convkey's identifier "
            "grammar and phone check, which reject bad input with 22023 before any lookup), so the cost of "
            "validating the input alone shows; convkey must validate (the standards: bad input gets a clear "
            "error and writes nothing).")
    tables = [table]
    cpu = cpu_table(ctx.runner, ws, cl)
    if cpu is not None:
        tables.append(cpu)
    return Section(KEY, TITLE, text, tables, checks)
