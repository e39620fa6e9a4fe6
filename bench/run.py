"""``python -m bench``: build a throwaway database, run every comparison, print ratios, write BENCHMARKS.md.

    python -m bench                       # the full run (make bench)
    python -m bench --duration 10 --reps 5
    python -m bench --only webhook,get_or_create --clients 1,8
    python -m bench --smoke --output /tmp/b.md   # seconds; what tests/test_bench_smoke.py runs

Absolute numbers on a shared machine are noise; the ratios, taken per repetition between runs
made side by side, are what the report is about.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from bench import backfill, get_or_create, history, phone, profile, proposals, proxy, python_path, webhook
from bench.env import REPO, SQL_DIR, BenchEnv, load
from bench.pgbench import Runner
from bench.stats import Section

# The order they run in; a new comparison (e.g. the backfill, issue 7 part 3) is one more module.
MODULES = [webhook, get_or_create, history, backfill, python_path, phone, proposals, profile, proxy]
DEFAULT_OUTPUT = REPO / "BENCHMARKS.md"


@dataclass
class Context:
    env: BenchEnv
    runner: Runner
    reps: int
    clients: list[int]
    people: int
    phone_inputs: int
    python_duration: float
    smoke: bool
    log: object = print
    seeded: bool = False
    seed_error: Exception | None = None
    notes: list[str] = field(default_factory=list)

    def ensure_seeded(self) -> None:
        """Baseline schemas and the pre-created people, once per run (then VACUUM ANALYZE)."""
        if self.seed_error is not None:
            raise RuntimeError(f"seeding failed earlier: {self.seed_error}")
        if self.seeded:
            return
        t0 = time.monotonic()
        statements = [s for s in (SQL_DIR / "seed.sql").read_text(encoding="utf-8").split(";\n\n") if s.strip()]
        # each new person holds advisory locks until commit: many small transactions, not one
        step = 500
        try:
            with self.env.conn.transaction():
                self.env.run_file("baselines.sql")
            for lo in range(1, self.people + 1, step):
                hi = min(self.people, lo + step - 1)
                with self.env.conn.transaction():
                    for stmt in statements:
                        self.env.sql(stmt, {"lo": lo, "hi": hi})
                if lo == 1 or (lo // step) % 4 == 0:  # fresh tables: plans need row counts as they grow
                    self.env.sql("ANALYZE convkey.identity, convkey.whatsapp_conversation, convkey.whatsapp_message")
            self.env.sql("VACUUM ANALYZE")
        except Exception as exc:
            self.seed_error = exc
            raise
        self.seeded = True
        self.log(f"  seeded {self.people} people in convkey and the baselines in {time.monotonic() - t0:.1f}s")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=5.0, help="seconds per pgbench run (-T), default 5")
    p.add_argument("--transactions", type=int, default=None, help="transactions per client (-t) instead of -T")
    p.add_argument("--reps", type=int, default=3, help="repetitions of every run (median and min-max), default 3")
    p.add_argument("--clients", default="1,2,8", help="pgbench client counts, default 1,2,8")
    p.add_argument("--people", type=int, default=10000, help="pre-created people, default 10000")
    p.add_argument("--phone-inputs", type=int, default=20000, help="distinct inputs for part 4, default 20000")
    p.add_argument("--python-duration", type=float, default=None, help="seconds per Python run (default --duration)")
    p.add_argument("--only", default="", help="comma-separated module keys: " + ",".join(m.KEY for m in MODULES))
    p.add_argument("--skip", default="", help="comma-separated module keys to leave out")
    p.add_argument("--dsn", default=None, help="a superuser DSN: use a scratch database on that server instead "
                                               "of an own throwaway cluster (profiling then is skipped)")
    p.add_argument("--output", default=None, help=f"markdown report path (default {DEFAULT_OUTPUT.name} in the repo; "
                                                  "--smoke writes none unless given)")
    p.add_argument("--no-write", action="store_true", help="print only")
    p.add_argument("--smoke", action="store_true",
                   help="tiny sizes (a few seconds): -t 10, 1 repetition, clients 1,2, 200 people")
    for module in MODULES:  # a module's own options (e.g. --backfill-rows)
        getattr(module, "add_arguments", lambda parser: None)(p)
    args = p.parse_args(argv)
    if args.smoke:
        args.transactions = args.transactions or 10
        args.reps = 1 if "--reps" not in argv else args.reps
        args.clients = "1,2" if "--clients" not in argv else args.clients
        args.people = 200 if "--people" not in argv else args.people
        args.phone_inputs = 300 if "--phone-inputs" not in argv else args.phone_inputs
        args.python_duration = args.python_duration or 0.3
        if args.output is None:
            args.no_write = True
    return args


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    only = {k for k in args.only.split(",") if k}
    skip = {k for k in args.skip.split(",") if k}
    known = {m.KEY for m in MODULES}
    if (only | skip) - known:
        print(f"unknown module(s): {sorted((only | skip) - known)}; known: {sorted(known)}", file=sys.stderr)
        return 2
    modules = [m for m in MODULES if (not only or m.KEY in only) and m.KEY not in skip]
    command = "python -m bench" + ("" if not argv else " " + shlex.join(argv))

    def log(msg: str) -> None:
        print(msg, flush=True)

    load_before = load()
    log(f"{command}\nload average before: {load_before}")
    started = time.monotonic()
    env = BenchEnv(args.dsn, log=log)
    sections: list[Section] = []
    failed = False
    try:
        env.open()
        info = env.describe()
        runner = Runner(env, duration=args.duration, transactions=args.transactions, log=log,
                        checkpoint=not args.smoke)
        ctx = Context(env, runner, args.reps, sorted({int(c) for c in args.clients.split(",")}), args.people,
                      args.phone_inputs, args.python_duration or args.duration, args.smoke, log)
        ctx.args = args  # modules read their own options from here
        for module in modules:
            log(f"== {module.TITLE}")
            t0 = time.monotonic()
            try:
                section = module.run(ctx)
            except Exception as exc:  # keep the other modules' results; report the failure
                failed = True
                traceback.print_exc()
                section = Section(module.KEY, module.TITLE, f"**FAILED**: `{type(exc).__name__}: {exc}`")
            sections.append(section)
            print_section(section)
            log(f"   ({time.monotonic() - t0:.0f}s, {runner.runs} pgbench runs so far)")
    finally:
        env.close()
    elapsed = time.monotonic() - started
    load_after = load()
    log(f"load average after: {load_after}; total {elapsed / 60:.1f} min")
    if not args.no_write:
        out = Path(args.output) if args.output else DEFAULT_OUTPUT
        out.write_text(render(command, args, info, load_before, load_after, elapsed, sections), encoding="utf-8")
        log(f"wrote {out}")
    return 1 if failed else 0


def print_section(section: Section) -> None:
    print(f"\n{section.title}")
    for table in section.tables:
        print(table.text())
        print()
    for check in section.checks:
        print("  " + check.line())
    print(flush=True)


def render(command: str, args, info: dict[str, str], load_before: str, load_after: str, elapsed: float,
           sections: list[Section]) -> str:
    make_args = command.removeprefix("python -m bench").strip()
    lines = [
        "# convkey benchmarks",
        "",
        "Generated by `make bench` (`bench/run.py`); do not edit by hand, run it again. Ratios are medians of "
        "per-repetition ratios between runs made side by side in one run on one machine, with min-max; "
        "absolute numbers on a shared machine are noise.",
        "",
        f"Command: `make bench{' BENCH_ARGS=' + shlex.quote(make_args) if make_args else ''}` "
        f"(= `.venv/bin/{command}`)",
        "",
        "| machine | |",
        "|---|---|",
    ]
    for key in ("nproc", "memory", "cpu", "postgresql", "server settings", "server", "pgbench", "kernel", "python",
                "git", "date"):
        if key in info:
            lines.append(f"| {key} | {info[key]} |")
    lines += [
        f"| load average (1/5/15 min) | before {load_before}, after {load_after} (other engineers' test runs share "
        f"the machine) |",
        f"| run | {elapsed / 60:.1f} min; pgbench `-n -M prepared`, "
        + (f"`-t {args.transactions}`" if args.transactions else f"`-T {args.duration:g}`")
        + f", {args.reps} repetitions, clients {args.clients}, `-j` = min(clients, nproc); "
          f"CHECKPOINT before each run |",
        "",
    ]
    checks = [c for s in sections for c in s.checks]
    if checks:
        lines += ["## Targets", "",
                  "The ceiling column is the same ratio for a reference that does only the work the call cannot "
                  "skip (the row writes alone, or the input validation alone), measured in the same run: where it "
                  "is below the target, no implementation of the required work meets the target on this machine.",
                  "", "| target | measured | ceiling (reference doing only the required work) | met |",
                  "|---|---|---|---|"]
        for s in sections:
            for c in s.checks:
                ceiling = f"{c.ceiling.ratio()}: {c.ceiling_what}" if c.ceiling else ""
                lines.append(f"| {s.title.split(':')[0]}: {c.what} >= {c.target:.2f}x | {c.measured()} | "
                             f"{ceiling} | {'yes' if c.met else '**no**'} |")
        lines.append("")
    for s in sections:
        lines.append(s.markdown())
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    sys.exit(main())
