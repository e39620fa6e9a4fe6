"""convkey benchmarks: scripts that print ratios measured side by side in one run (not timed tests).

``python -m bench`` (or ``make bench``) builds a throwaway PostgreSQL cluster with normal
durability (fsync and synchronous_commit on), migrates it with the real ``convkey migrate`` code,
runs every comparison module on it, prints the ratios and writes BENCHMARKS.md.

Layout:
    run.py          the command line: options, the module list, BENCHMARKS.md
    env.py          the bench database (own cluster or --dsn), machine description, psql helpers
    pgbench.py      pgbench runs (prepared mode) and side-by-side repetitions
    stats.py        medians, min-max, ratios; the Section/Table objects modules return
    webhook.py      part 1: convkey.record_message vs the floor and the replaced 5-round-trip pattern
    get_or_create.py part 2: get_or_create_conversation vs a minimal select-first function
    phone.py        part 4: convkey.phone.normalize_phone calls/s, cold and cached
    python_path.py  part 5: convkey.Client.record_message vs the same SQL through pgbench
    proposals.py    measured before/after of proposed SQL changes (applied to the bench database only)
    profile.py      where the time goes: pg_stat_statements (track=all) and per-function timings
    sql/            baseline schemas and seeds; scripts/ the pgbench scripts

A new comparison (the backfill benchmark, issue 7 part 3) is one more module with
``TITLE``, ``KEY`` and ``run(ctx) -> Section``, added to ``MODULES`` in run.py.
"""
