"""A small progress reporter for batch commands: a bar with rows/s and ETA on a terminal, a plain
line every few seconds otherwise, nothing when disabled (--json, tests). Writes to stderr."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    def __init__(self, *, enabled: bool = True, stream: TextIO | None = None, interval: float = 5.0):
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.interval = 0.2 if self.tty else interval
        self.label = ""
        self.total = 0
        self.done = 0
        self.started = self.last = 0.0

    def start(self, label: str, total: int) -> None:
        self.label, self.total, self.done = label, total, 0
        self.started = self.last = time.monotonic()

    def advance(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if self.enabled and now - self.last >= self.interval:
            self.last = now
            self._draw(now)

    def finish(self) -> None:
        if self.enabled:
            self._draw(time.monotonic())
            if self.tty:
                self.stream.write("\n")
            self.stream.flush()

    def _draw(self, now: float) -> None:
        elapsed = max(now - self.started, 1e-9)
        rate = self.done / elapsed
        total = max(self.total, self.done)
        eta = (total - self.done) / rate if rate > 0 else 0.0
        share = self.done / total if total else 1.0
        text = f"{self.label}: {self.done}/{total} rows ({share:.0%}), {rate:,.0f} rows/s, ETA {eta:,.0f} s"
        if self.tty:
            width = 24
            filled = int(share * width)
            self.stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {text}   ")
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
