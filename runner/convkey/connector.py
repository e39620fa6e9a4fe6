"""The one connector: psycopg 3 with a psycopg_pool pool and dict rows, and the one place where
PostgreSQL errors become the runner's exceptions (see convkey.errors)."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from . import queries
from .errors import from_psycopg

logger = logging.getLogger("convkey.connector")


class Connector:
    """A pool of autocommit connections: each API call is its own transaction (one commit)."""

    def __init__(self, dsn: str, *, min_size: int = 1, max_size: int = 10, open_timeout: float = 30.0):
        self.pool = ConnectionPool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            kwargs={"autocommit": True, "row_factory": dict_row, "prepare_threshold": 0},
            open=False,
            name="convkey",
        )
        self.pool.open(wait=True, timeout=open_timeout)

    def close(self) -> None:
        self.pool.close()

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        with self.pool.connection() as conn:
            yield conn

    def execute(self, name: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Run the named query and return its rows; database errors are mapped by SQLSTATE."""
        sql = queries.get(name)
        try:
            with self.pool.connection() as conn:
                cur = conn.execute(sql, params or {})
                return cur.fetchall() if cur.description else []
        except psycopg.Error as exc:
            mapped = from_psycopg(exc)
            if mapped is exc:
                raise
            logger.debug("%s failed with SQLSTATE %s", name, exc.sqlstate)
            raise mapped from exc

    def one(self, name: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        rows = self.execute(name, params)
        if len(rows) != 1:
            raise RuntimeError(f"{name} returned {len(rows)} rows, expected 1")
        return rows[0]
