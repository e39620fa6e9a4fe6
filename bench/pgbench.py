"""pgbench runs (``-n -M prepared``) and side-by-side repetitions of several workloads.

A ``Workload`` is a pgbench custom script from bench/scripts (or one written at run time) plus
its ``-D`` variables. Every run gets a fresh ``-D run=<n>`` so that scripts can build ids no
other run uses (``'r' || :run || '-' || :client_id || '-' || :n`` with ``\\set n :n + 1``).
``side_by_side`` runs every workload once per repetition, rotating their order from one
repetition to the next, with a CHECKPOINT before each run, so that drift on a shared machine
hits all of them alike and ratios can be taken per repetition.
"""

from __future__ import annotations

import itertools
import os
import re
import resource
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.env import SCRIPTS_DIR, BenchEnv

_TPS = re.compile(r"^tps = ([0-9.]+) \(without initial connection time\)", re.MULTILINE)
_FAILED = re.compile(r"^number of failed transactions: ([0-9]+)", re.MULTILINE)
_PROCESSED = re.compile(r"^number of transactions actually processed: ([0-9]+)", re.MULTILINE)
_run_ids = itertools.count(1)


class PgbenchError(RuntimeError):
    pass


@dataclass
class Workload:
    name: str
    label: str
    script: str | Path
    defines: dict[str, object] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        p = Path(self.script)
        return p if p.is_absolute() else SCRIPTS_DIR / p


@dataclass
class Target:
    """The bench env with its DSN switched per run, for a module that runs pgbench against other
    databases of the bench server (pgbench runs against ``dsn``)."""

    env: object
    dsn: str = ""

    @property
    def bindir(self):
        return self.env.bindir

    @property
    def cluster(self):
        return self.env.cluster

    def checkpoint(self) -> None:
        self.env.checkpoint()


def server_cpu_seconds(datadir) -> float | None:
    """CPU seconds used so far by a local cluster: the postmaster (with its reaped children, so
    backends that already exited count) plus every live child. None when it cannot be read."""
    try:
        pm = int((datadir / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid, ppid = int(entry), int(fields[1])
        if pid == pm:
            total += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
        elif ppid == pm:
            total += int(fields[11]) + int(fields[12])
    return total / tick


@dataclass
class Runner:
    env: BenchEnv
    duration: float | None = 5.0       # -T seconds
    transactions: int | None = None    # -t per client (smoke runs); overrides duration
    checkpoint: bool = True
    log: object = print
    runs: int = 0
    # (workload name, clients) -> [server CPU us per transaction], [pgbench CPU us per transaction]
    server_cpu: dict = field(default_factory=dict)
    client_cpu: dict = field(default_factory=dict)

    def tps(self, workload: Workload, clients: int, *, threads: int | None = None) -> float:
        """One pgbench run; its TPS (transactions = script executions per second)."""
        if self.checkpoint:
            self.env.checkpoint()
        threads = threads or max(1, min(clients, self.env_cpus()))
        cmd = [str(self.env.bindir / "pgbench"), "-n", "-M", "prepared", "-f", str(workload.path),
               "-c", str(clients), "-j", str(threads)]
        if self.transactions:
            cmd += ["-t", str(self.transactions)]
        else:
            cmd += ["-T", str(max(1, round(self.duration or 1)))]
        defines = {"n": 0, **workload.defines, "run": next(_run_ids)}
        for k, v in defines.items():
            cmd += ["-D", f"{k}={v}"]
        cmd.append(self.env.dsn)
        datadir = self.env.cluster.datadir if self.env.cluster is not None else None
        cpu0 = server_cpu_seconds(datadir) if datadir else None
        child0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        proc = subprocess.run(cmd, capture_output=True, text=True)
        child1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        if datadir:
            time.sleep(0.05)  # let the postmaster reap the run's backends (their CPU moves to cutime)
        cpu1 = server_cpu_seconds(datadir) if datadir else None
        self.runs += 1
        out = proc.stdout + proc.stderr
        processed = _PROCESSED.search(out)
        if processed and int(processed.group(1)) > 0:
            n = int(processed.group(1))
            if cpu0 is not None and cpu1 is not None:
                self.server_cpu.setdefault((workload.name, clients), []).append((cpu1 - cpu0) / n * 1e6)
            client = (child1.ru_utime + child1.ru_stime) - (child0.ru_utime + child0.ru_stime)
            self.client_cpu.setdefault((workload.name, clients), []).append(client / n * 1e6)
        match = _TPS.search(out)
        failed = _FAILED.search(out)
        if proc.returncode != 0 or not match or (failed and int(failed.group(1)) > 0):
            tail = "\n".join(out.strip().splitlines()[-15:])
            raise PgbenchError(f"pgbench {workload.name} with {clients} clients failed "
                               f"(exit {proc.returncode}):\n{tail}")
        return float(match.group(1))

    @staticmethod
    def env_cpus() -> int:
        import os

        return os.cpu_count() or 1


def side_by_side(runner: Runner, workloads: list[Workload], clients: int, reps: int,
                 *, log=print) -> dict[str, list[float]]:
    """TPS of every workload, ``reps`` times, order rotated each repetition; {name: [tps per rep]}."""
    result: dict[str, list[float]] = {w.name: [] for w in workloads}
    for rep in range(reps):
        k = rep % len(workloads)
        order = workloads[k:] + workloads[:k]
        for w in order:
            result[w.name].append(runner.tps(w, clients))
        log(f"    c={clients} rep {rep + 1}/{reps}: " + ", ".join(
            f"{w.name} {result[w.name][-1]:,.0f}" for w in workloads))
    return result


def warm_up(runner: Runner, workloads: list[Workload], clients: int = 1) -> None:
    """A short unrecorded run of each workload (plan caches, buffers, first-touch costs)."""
    saved = runner.duration, runner.transactions, runner.checkpoint
    runner.duration, runner.transactions, runner.checkpoint = None, 50, False
    try:
        for w in workloads:
            runner.tps(w, clients)
    finally:
        runner.duration, runner.transactions, runner.checkpoint = saved


def cpu_table(runner: Runner, workloads: list[Workload], clients: list[int]):
    """Server and pgbench CPU per transaction (median of the runs), or None without an own cluster."""
    from bench.stats import Summary, Table

    if not any((w.name, c) in runner.server_cpu for w in workloads for c in clients):
        return None
    rows = []
    for w in workloads:
        row = [w.label]
        for c in clients:
            srv = runner.server_cpu.get((w.name, c))
            cli = runner.client_cpu.get((w.name, c))
            row.append(f"{Summary(srv).median:,.0f} + {Summary(cli).median:,.0f}" if srv and cli else "")
        rows.append(row)
    return Table(["CPU us per call: server + pgbench (median)"] + [f"{c} client{'s' if c > 1 else ''}" for c in clients],
                 rows, title="CPU per call",
                 note="Server CPU: all processes of the bench cluster (backends, WAL writer, checkpointer, "
                      "autovacuum) per transaction; pgbench: the client process. Unlike throughput, CPU per call "
                      "barely depends on what else the machine runs. With the 2 cores saturated (8 clients), "
                      "calls/s is at most cores / (server + pgbench CPU per call).")


def cpu_ratio(runner: Runner, numerator: str, denominator: str, clients: int) -> str:
    """Throughput ratio predicted by CPU per call, (den CPU) / (num CPU), server + pgbench medians; ''
    without CPU data. On a saturated machine calls/s is inversely proportional to CPU per call, and
    CPU per call hardly moves with the load other processes put on the machine."""
    from bench.stats import Summary

    def total(name):
        srv, cli = runner.server_cpu.get((name, clients)), runner.client_cpu.get((name, clients))
        return Summary(srv).median + Summary(cli).median if srv and cli else None

    n, d = total(numerator), total(denominator)
    return f"{d / n:.2f}x" if n and d else ""
