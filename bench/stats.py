"""Medians, min-max and ratios, and the Section a module hands back to the report."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field


@dataclass
class Summary:
    """Repetitions of one number: median with min-max."""

    values: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.values else float("nan")

    @property
    def min(self) -> float:
        return min(self.values) if self.values else float("nan")

    @property
    def max(self) -> float:
        return max(self.values) if self.values else float("nan")

    def rate(self) -> str:
        """A throughput: ``1234 (1200-1300)``."""
        return f"{self.median:,.0f} ({self.min:,.0f}-{self.max:,.0f})"

    def ratio(self, digits: int = 2) -> str:
        """A ratio: ``0.85x (0.80-0.90)``."""
        return f"{self.median:.{digits}f}x ({self.min:.{digits}f}-{self.max:.{digits}f})"


def ratios(numerator: list[float], denominator: list[float]) -> Summary:
    """Per-repetition ratios of runs made side by side (same repetition index)."""
    return Summary([n / d for n, d in zip(numerator, denominator) if d > 0])


@dataclass
class Check:
    """A target: ``what`` must reach ``target`` (a ratio); ``met`` compares the median."""

    what: str
    value: Summary
    target: float
    # The same ratio for a reference that does only the work the target's subject cannot skip
    # (e.g. the row writes alone, or the input validation alone), measured in the same run: a
    # ceiling no implementation of the required work can pass, shown next to the target.
    ceiling: Summary | None = None
    ceiling_what: str = ""

    @property
    def met(self) -> bool:
        return self.value.median >= self.target

    def measured(self) -> str:
        """The value's ratio, with a third digit when two would print the target itself (0.246x
        against 0.25x would read 0.25x, and missed)."""
        return self.value.ratio(3 if f"{self.value.median:.2f}" == f"{self.target:.2f}" else 2)

    def line(self) -> str:
        verdict = "met" if self.met else "MISSED"
        ceiling = f" (ceiling, {self.ceiling_what}: {self.ceiling.ratio()})" if self.ceiling else ""
        return f"{self.what}: {self.measured()} vs target >= {self.target:.2f}x{ceiling}: {verdict}"


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]
    title: str = ""
    note: str = ""

    def markdown(self) -> str:
        out = []
        if self.title:
            out.append(f"**{self.title}**\n")
        out.append("| " + " | ".join(self.headers) + " |")
        out.append("|" + "|".join("---" for _ in self.headers) + "|")
        for row in self.rows:
            out.append("| " + " | ".join(str(c) for c in row) + " |")
        if self.note:
            out.append("\n" + self.note)
        return "\n".join(out)

    def text(self) -> str:
        cells = [self.headers] + [[str(c) for c in row] for row in self.rows]
        widths = [max(len(r[i]) for r in cells) for i in range(len(self.headers))]
        lines = [("  ".join(c.ljust(w) for c, w in zip(row, widths))).rstrip() for row in cells]
        lines.insert(1, "  ".join("-" * w for w in widths))
        if self.title:
            lines.insert(0, self.title)
        return "\n".join(lines)


@dataclass
class Section:
    key: str
    title: str
    text: str = ""
    tables: list[Table] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)

    def markdown(self) -> str:
        out = [f"## {self.title}", ""]
        if self.text:
            out += [self.text.strip(), ""]
        for table in self.tables:
            out += [table.markdown(), ""]
        if self.checks:
            out.append("Targets:")
            out.append("")
            out += [f"- {c.line()}" for c in self.checks]
            out.append("")
        if self.findings:
            out += [f.strip() + "\n" for f in self.findings]
        return "\n".join(out)
