"""The runner's SQL, parsed once from ``queries.sql`` into a dict of named queries."""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources

_HEADER = re.compile(r"^-- ([a-z_]+) --$", re.MULTILINE)


def parse(text: str) -> dict[str, str]:
    """Split ``-- name --`` blocks into {name: sql}; text before the first block is a comment."""
    parts = _HEADER.split(text)
    queries: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2]):
        if name in queries:
            raise ValueError(f"query {name!r} is defined twice in queries.sql")
        sql = "\n".join(line for line in body.strip().splitlines() if not line.lstrip().startswith("--"))
        queries[name] = sql.strip()
    return queries


@lru_cache(maxsize=1)
def queries() -> dict[str, str]:
    return parse(resources.files("convkey").joinpath("queries.sql").read_text(encoding="utf-8"))


def get(name: str) -> str:
    return queries()[name]
