"""Write RELIABILITY.md from the figures the reliability tests recorded.

Each reliability test calls ``reliability_record(**figures)`` (tests/conftest.py), which writes
``<CONVKEY_RELIABILITY_DIR>/<test>.json``: ``{"test": node id, "examples": .., "events": ..,
"faults": .., "bad_inputs": .., "retries": .., "violations": .., ...}``. ``make reliability`` runs
``pytest -m reliability`` with that folder set (and ``--junitxml`` in it, for each test's outcome
and time), then this module::

    python -m reliability.report --dir DIR [--out RELIABILITY.md] [--command "..."] [--pytest-command "..."]
                                 [--scale S] [--pytest-status N] [--started "..."]

Exit status: 0 when every recorded test reports 0 violations and pytest passed; 1 otherwise (the
report is written either way); 2 when the folder holds no figures at all.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

COLUMNS = ("examples", "events", "faults", "bad_inputs", "retries", "violations")
HEADINGS = {"examples": "examples run", "events": "events replayed", "faults": "faults injected",
            "bad_inputs": "bad inputs tried", "retries": "retries", "violations": "violations found"}
META = {"test", "server_version"}


@dataclass
class Row:
    test: str
    figures: dict[str, Any] = field(default_factory=dict)
    outcome: str = "not run"
    seconds: float | None = None

    def number(self, name: str) -> int | float | None:
        value = self.figures.get(name)
        return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def read_figures(folder: Path) -> dict[str, Row]:
    rows: dict[str, Row] = {}
    for path in sorted(folder.glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise SystemExit(f"reliability.report: cannot read {path}: {exc}") from exc
        test = str(data.get("test") or path.stem)
        rows[test] = Row(test, {k: v for k, v in data.items() if k != "test"})
    return rows


def read_junit(path: Path, rows: dict[str, Row]) -> None:
    """Outcome and time of every test pytest ran (also those that recorded no figures)."""
    if not path.is_file():
        return
    for case in ET.parse(path).getroot().iter("testcase"):
        module = case.get("classname", "")
        name = case.get("name", "")
        # classname "tests.test_faults" (or "tests.test_x.TestClass") + name -> the pytest node id
        parts = module.split(".")
        cut = next((c for c in range(len(parts), 0, -1) if Path("/".join(parts[:c]) + ".py").is_file()),
                   len(parts))
        test = "::".join(["/".join(parts[:cut]) + ".py", *parts[cut:], name])
        row = rows.setdefault(test, Row(test))
        row.seconds = float(case.get("time") or 0)
        if case.find("failure") is not None or case.find("error") is not None:
            row.outcome = "failed"
        elif case.find("skipped") is not None:
            skipped = case.find("skipped")
            row.outcome = "skipped: " + (skipped.get("message") or "").strip()[:120]
        else:
            row.outcome = "passed"


def machine() -> dict[str, str]:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    memory = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except OSError:
        pass
    return {"nproc": str(cpus), "memory": memory, "os": f"{platform.system()} {platform.release()}",
            "python": platform.python_version()}


def postgres_version(rows: dict[str, Row]) -> str:
    """The server the tests used: as a test recorded it, else CONVKEY_TEST_DSN's, else the
    server binaries the harness's throwaway cluster runs (the tests' default)."""
    recorded = {str(r.figures["server_version"]) for r in rows.values() if r.figures.get("server_version")}
    if recorded:
        return ", ".join(sorted(recorded))
    if os.environ.get("CONVKEY_TEST_DSN"):
        try:
            import psycopg

            with psycopg.connect(os.environ["CONVKEY_TEST_DSN"], connect_timeout=5) as conn:
                return conn.execute("SHOW server_version").fetchone()[0] + " (CONVKEY_TEST_DSN)"
        except Exception as exc:  # the report is still worth writing
            return f"unknown ({type(exc).__name__})"
    try:
        from convkey.embedded import find_bindir

        out = subprocess.run([str(find_bindir() / "postgres"), "--version"], capture_output=True, text=True)
        return out.stdout.strip() or "unknown"
    except Exception as exc:
        return f"unknown ({type(exc).__name__})"


def commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True).stdout.strip()
        return head.stdout.strip() + (" with uncommitted changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _fmt(value: int | float | None) -> str:
    if value is None:
        return ""
    return f"{value:,}" if isinstance(value, int) else f"{value:,.1f}"


def render(rows: dict[str, Row], *, command: str, pytest_status: int | None, scale: str,
           started: str | None, pytest_command: str = "") -> str:
    ordered = sorted(rows.values(), key=lambda r: r.test)
    totals = {c: sum(r.number(c) or 0 for r in ordered) for c in COLUMNS}
    extra_names = sorted({k for r in ordered for k in r.figures if k not in COLUMNS and k not in META})
    m = machine()
    seconds = sum(r.seconds or 0 for r in ordered)
    lines = [
        "# Reliability",
        "",
        "Generated by `make reliability` (`python -m reliability.report`): the tests marked `reliability` "
        "(fault injection, the reference model, the concurrent replay, ...) run at a larger size than in "
        "`make test`, each recording what it did. Do not edit by hand; run `make reliability` again.",
        "",
        f"- **Date:** {started or dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- **Machine:** {m['nproc']} CPUs (nproc), {m['memory']} memory, {m['os']}, Python {m['python']}",
        f"- **PostgreSQL:** {postgres_version(rows)}",
        f"- **Commit:** {commit()}",
        f"- **Command:** `{command}`" if command else "- **Command:** not given",
        *([f"- **pytest command:** `{pytest_command}`"] if pytest_command else []),
        f"- **Scale:** CONVKEY_RELIABILITY_SCALE={scale or '(default)'}",
        f"- **pytest:** {'passed' if pytest_status == 0 else f'FAILED (exit {pytest_status})'}"
        if pytest_status is not None else "- **pytest:** status not given",
        "",
        "## Totals",
        "",
        "| " + " | ".join(HEADINGS[c] for c in COLUMNS) + " | tests | seconds |",
        "|" + "---:|" * (len(COLUMNS) + 2),
        "| " + " | ".join(_fmt(totals[c]) for c in COLUMNS) + f" | {len(ordered)} | {seconds:,.0f} |",
        "",
        "## Per test",
        "",
        "| test | outcome | seconds | " + " | ".join(HEADINGS[c] for c in COLUMNS)
        + (" | other figures |" if extra_names else " |"),
        "|---|---|---:|" + "---:|" * len(COLUMNS) + ("---|" if extra_names else ""),
    ]
    for r in ordered:
        other = ", ".join(f"{k} {r.figures[k]}" for k in extra_names if k in r.figures)
        outcome = r.outcome if r.outcome != "not run" or not r.figures else "recorded"
        cells = [f"`{r.test}`", outcome, _fmt(r.seconds)] + [_fmt(r.number(c)) for c in COLUMNS]
        lines.append("| " + " | ".join(cells) + (f" | {other} |" if extra_names else " |"))
    lines += [
        "",
        "Figures: *examples run* are generated cases (hypothesis examples, model runs); *events replayed* "
        "are API calls, ingest lines or legacy rows processed; *faults injected* are terminated backends, "
        "killed runners and server restarts that landed; *bad inputs tried* are malformed or hostile "
        "inputs sent; *retries* are calls or commands re-run after a fault or a retryable error; "
        "*violations found* are broken invariants (tests/invariants.py) or lost data, and must be 0.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reliability.report", description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default=os.environ.get("CONVKEY_RELIABILITY_DIR"),
                        help="the folder of recorded figures (default: $CONVKEY_RELIABILITY_DIR)")
    parser.add_argument("--out", default="RELIABILITY.md", help="the report to write (default RELIABILITY.md)")
    parser.add_argument("--command", default="", help="the command that was run (make reliability ...)")
    parser.add_argument("--pytest-command", default="", help="the exact pytest command it ran")
    parser.add_argument("--pytest-status", type=int, help="pytest's exit status")
    parser.add_argument("--scale", default=os.environ.get("CONVKEY_RELIABILITY_SCALE", ""),
                        help="the CONVKEY_RELIABILITY_SCALE the tests ran at")
    parser.add_argument("--started", help="when the run started (default: now)")
    args = parser.parse_args(argv)
    if not args.dir:
        parser.error("--dir (or CONVKEY_RELIABILITY_DIR) is required")
    folder = Path(args.dir)
    rows = read_figures(folder)
    read_junit(folder / "junit.xml", rows)
    if not any(r.figures for r in rows.values()):
        print(f"reliability.report: no recorded figures in {folder}", file=sys.stderr)
        return 2
    text = render(rows, command=args.command, pytest_status=args.pytest_status,
                  scale=args.scale, started=args.started, pytest_command=args.pytest_command)
    Path(args.out).write_text(text, encoding="utf-8")
    violations = sum(r.number("violations") or 0 for r in rows.values())
    failed = [r.test for r in rows.values() if r.outcome == "failed"]
    print(f"reliability.report: wrote {args.out}: {len(rows)} tests, {violations} violations"
          + (f", {len(failed)} failed" if failed else ""))
    return 0 if violations == 0 and not failed and args.pytest_status in (None, 0) else 1


if __name__ == "__main__":
    sys.exit(main())
