"""Keeps the benchmarks working: ``python -m bench --smoke`` (a few seconds, tiny sizes) against the test
session's server, checking that every module ran and produced ratios. Benchmarks are scripts, not timed
tests: nothing here looks at how fast anything was."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from convkey.embedded import find_bindir
from convkey.errors import ConfigurationError

REPO = Path(__file__).resolve().parents[1]
RATIO = re.compile(r"\d+\.\d{2,3}x \(\d+\.\d{2,3}-\d+\.\d{2,3}\)")


def _pgbench() -> Path:
    try:
        pgbench = find_bindir() / "pgbench"
    except ConfigurationError:
        pytest.skip("no PostgreSQL binaries on this machine (the bench runs pgbench)")
    if not pgbench.is_file():
        pytest.skip("pgbench is not installed")
    return pgbench


def test_bench_smoke_runs_every_module_and_reports_ratios(pg_server, tmp_path):
    _pgbench()
    report = tmp_path / "BENCHMARKS.md"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--dsn", pg_server.admin_dsn, "--output", str(report)],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, (proc.stdout[-4000:], proc.stderr[-4000:])
    text = report.read_text(encoding="utf-8")

    for title in ("1. Webhook path", "2. Read-mostly get-or-create", "3. Backfill", "4. Phone normalization",
                  "5. Python path",
                  "Proposals", "Profile", "Before/after"):
        assert f"\n## {title}" in text, title
    assert "**FAILED**" not in text
    # every comparison produced a ratio (median with min-max)
    webhook = text.split("\n## 1. Webhook path", 1)[1].split("\n## ", 1)[0]
    assert len(RATIO.findall(webhook)) >= 8 * 2  # eight comparisons at two client counts
    assert len(RATIO.findall(text)) >= 30
    # the backfill ran with two workers and, side by side, with the default serial backfill
    backfill = text.split("\n## 3. Backfill", 1)[1].split("\n## ", 1)[0]
    assert "convkey backfill --execute --workers 2, wall s" in backfill
    assert "serial (--workers 1, the default), wall s" in backfill
    assert len(RATIO.findall(backfill.split("workers / serial", 1)[1].split("\n", 1)[0])) == 3 * 2
    # and without the statistics step, before/after
    assert "--skip-analyze (statistics from before the resolve phase), wall s" in backfill
    assert len(RATIO.findall(backfill.split("convkey / --skip-analyze", 1)[1].split("\n", 1)[0])) == 2 * 2
    # the targets are listed, met or not; proposals still to land kept convkey's behaviour, and the
    # ones that landed are measured against the revision before them
    assert "## Targets" in text and "(a) / floor" in text
    proposals = text.split("\n## Proposals", 1)[1].split("\n## ", 1)[0]
    if "Every proposal has landed" in proposals:
        assert "not applicable" in proposals and "measured |" not in proposals
        assert "ratio working tree / 686c05d, (b) record_message, new person" in text
    else:
        assert "Equivalence check: a scenario" in proposals
    # the machine and the exact command are recorded
    assert "| nproc |" in text and "python -m bench --smoke" in text


def test_a_target_line_never_prints_the_target_for_a_ratio_that_missed_it():
    """Two digits would show 0.2459 as 0.25x against a target of 0.25x: a third one is added
    exactly when two would print the target's digits."""
    from bench.stats import Check, Summary

    missed = Check("floor / convkey", Summary([0.2262, 0.2459, 0.2594]), 0.25)
    assert not missed.met and missed.measured() == "0.246x (0.226-0.259)"
    assert missed.line().endswith("0.246x (0.226-0.259) vs target >= 0.25x: MISSED")
    assert RATIO.fullmatch(missed.measured())
    assert Check("x", Summary([0.25, 0.251, 0.3]), 0.25).measured() == "0.251x (0.250-0.300)"
    assert Check("x", Summary([0.4, 0.5, 0.6]), 0.25).measured() == "0.50x (0.40-0.60)"
