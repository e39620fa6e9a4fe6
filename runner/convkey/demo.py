"""``convkey demo``: migrate the database and show what convkey installed."""

from __future__ import annotations

from .migrate import migrate


def run_demo(dsn: str, *, people: int = 300, seed: int = 1) -> int:
    report = migrate(dsn)
    print(f"convkey schema version: {report.schema_version}")
    print(f"{len(report.functions)} public functions installed:")
    for fn in report.functions:
        print(f"  convkey.{fn}" if not fn.startswith("convkey.") else f"  {fn}")
    return 0
