"""Part 1: the webhook path, ``convkey.record_message``, against the floor and the replaced pattern.

Three calls: (a) a new message of an existing person, (b) a new person, (c) a retried delivery.
Two baselines (bench/sql/baselines.sql): the floor, a bare single-statement upsert of the
conversation (one row write, one commit), and the pattern convkey replaces, five statements in
five autocommit round trips. A third reference, "floor + message", stores the message too in
the same single statement: the write work any webhook that keeps the message must do.
"""

from __future__ import annotations

from bench.pgbench import Workload, cpu_ratio, cpu_table, side_by_side, warm_up
from bench.stats import Check, Section, Summary, Table, ratios

KEY = "webhook"
TITLE = "1. Webhook path: convkey.record_message"

TARGET_FLOOR = 0.8
TARGET_REPLACED = 2.5


def workloads(people: int) -> list[Workload]:
    d = {"people": people}
    return [
        Workload("convkey_a", "convkey (a) existing person", "webhook_convkey_existing.sql", d),
        Workload("convkey_b", "convkey (b) new person", "webhook_convkey_new.sql", d),
        Workload("convkey_c", "convkey (c) retried delivery", "webhook_convkey_retry.sql", d),
        Workload("floor_existing", "floor, existing key", "webhook_floor_existing.sql", d),
        Workload("floor_new", "floor, new key", "webhook_floor_new.sql", d),
        Workload("floor2_existing", "floor + message (reference), existing key", "webhook_floor2_existing.sql", d),
        Workload("floor3_existing", "floor + message + validation (reference), existing key",
                 "webhook_floor3_existing.sql", d),
        Workload("lean_existing", "lean PL/pgSQL webhook (reference), existing key", "webhook_lean_existing.sql", d),
        Workload("replaced_a", "replaced pattern, existing person", "webhook_legacy_existing.sql", d),
        Workload("replaced_b", "replaced pattern, new person", "webhook_legacy_new.sql", d),
        Workload("replaced_c", "replaced pattern, retried delivery", "webhook_legacy_retry.sql", d),
    ]


# (label, numerator, denominator)
COMPARISONS = [
    ("(a) existing person / floor", "convkey_a", "floor_existing"),
    ("(a) existing person / replaced pattern", "convkey_a", "replaced_a"),
    ("(b) new person / floor (new key)", "convkey_b", "floor_new"),
    ("(b) new person / replaced pattern", "convkey_b", "replaced_b"),
    ("(c) retried delivery / floor", "convkey_c", "floor_existing"),
    ("(c) retried delivery / replaced pattern", "convkey_c", "replaced_c"),
    ("(a) existing person / floor + message (reference)", "convkey_a", "floor2_existing"),
    ("(a) existing person / lean PL/pgSQL webhook (reference)", "convkey_a", "lean_existing"),
    ("floor + message (reference) / floor", "floor2_existing", "floor_existing"),
    ("lean PL/pgSQL webhook (reference) / floor", "lean_existing", "floor_existing"),
    ("floor + message (reference) / replaced pattern", "floor2_existing", "replaced_a"),
    ("floor + message + validation (reference) / floor", "floor3_existing", "floor_existing"),
    ("floor + message + validation (reference) / replaced pattern", "floor3_existing", "replaced_a"),
]


def run(ctx) -> Section:
    ctx.ensure_seeded()
    ws = workloads(ctx.people)
    warm_up(ctx.runner, ws)
    results: dict[int, dict[str, list[float]]] = {}
    for clients in ctx.clients:
        ctx.log(f"  webhook, {clients} client(s)")
        results[clients] = side_by_side(ctx.runner, ws, clients, ctx.reps, log=ctx.log)
    return section(ctx, ws, results)


def section(ctx, ws: list[Workload], results: dict[int, dict[str, list[float]]]) -> Section:
    cl = sorted(results)
    tps = Table(["workload (TPS = calls/s)"] + [f"{c} client{'s' if c > 1 else ''}" for c in cl],
                [[w.label] + [Summary(results[c][w.name]).rate() for c in cl] for w in ws],
                title="Throughput, median (min-max) of the repetitions")
    rows = []
    for label, num, den in COMPARISONS:
        rows.append([label] + [ratios(results[c][num], results[c][den]).ratio() for c in cl]
                    + [cpu_ratio(ctx.runner, num, den, top_c) for top_c in cl[-1:]])
    rt = Table(["ratio (per-repetition, side by side)"] + [f"{c} client{'s' if c > 1 else ''}" for c in cl]
               + [f"by CPU per call, {cl[-1]} clients"], rows, title="Ratios, median (min-max)",
               note="The last column is the throughput ratio that CPU per call predicts when the cores are "
                    "saturated (denominator's CPU / numerator's CPU, server + pgbench, see below): a cross-check "
                    "that the load other processes put on the machine does not move.")
    top = max(cl)
    checks = [
        Check(f"(a) / floor at {top} clients", ratios(results[top]["convkey_a"], results[top]["floor_existing"]),
              TARGET_FLOOR, ratios(results[top]["floor2_existing"], results[top]["floor_existing"]),
              "floor + message / floor"),
        Check(f"(a) / replaced pattern at {top} clients",
              ratios(results[top]["convkey_a"], results[top]["replaced_a"]), TARGET_REPLACED,
              ratios(results[top]["floor3_existing"], results[top]["replaced_a"]),
              "floor + message + validation / replaced pattern"),
    ]
    repeats = new_person_repeats(ctx)
    text = (
        "Each pgbench transaction is one webhook call. convkey: one `SELECT * FROM convkey.record_message(...)`, "
        "one commit. Floor: `INSERT ... ON CONFLICT (business_id, canonical_key) DO UPDATE SET last_message_at = "
        "excluded.last_message_at RETURNING id` on a table built LIKE convkey's (same indexes). Replaced pattern: "
        "SELECT by key, SELECT by legacy id (raw customer_wa_id, indexed), upsert RETURNING id, activity UPDATE, "
        "message INSERT: five statements, five autocommit transactions (three of them write and flush). "
        "Floor + message (reference): the floor's upsert and the message insert in one statement, one commit: "
        "the row writes the webhook cannot avoid, without any identity logic. Lean PL/pgSQL webhook (reference): "
        "`bench_floor.record_message_lean`, the least a PL/pgSQL function can do for the call (key from the JID "
        "without validation, UPDATE the conversation by key, INSERT the message ON CONFLICT DO NOTHING), one "
        "commit. Floor + message + validation (reference): the same statement as floor + message, after the "
        "input checks record_message makes (direction, provider, timestamp, and the identifier's grammar and "
        "phone check, convkey._call_identities): the required work of a webhook that answers bad input with a "
        "clear error (22023), as convkey must; it is the ceiling next to the replaced-pattern target.\n\n"
        f"People pre-created: {ctx.people}; (a) picks one at random, (b) a random +972 5[2-5,8]xxxxxxx "
        f"number ({repeats}), (c) re-sends a stored provider message id."
    )
    tables = [tps, rt]
    cpu = cpu_table(ctx.runner, ws, cl)
    if cpu is not None:
        tables.append(cpu)
    return Section(KEY, TITLE, text, tables, checks)


def new_person_repeats(ctx) -> str:
    """How often a (b) call hit a number an earlier (b) call had already created."""
    row = ctx.env.sql(
        "SELECT count(*), count(DISTINCT wa_id) FROM convkey.whatsapp_message "
        "WHERE business_id = 1 AND wa_id NOT LIKE '97250%%' AND provider_message_id LIKE 'r%%'")
    calls, persons = row[0]
    if not calls:
        return "no new-person calls"
    return f"{calls - persons} of {calls} new-person calls repeated a number ({(calls - persons) / calls:.2%})"
