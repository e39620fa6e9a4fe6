"""Scaling out by business: a PL/Proxy proxy database in front of several convkey databases.

The proxy database holds, in its own schema ``convkey``, PL/Proxy functions with the public API's
names and signatures (migration source ``proxy/``); each call runs whole on the shard that owns
its business. The PL/Proxy cluster ``convkey`` is SQL/MED configuration in the proxy database:
``SERVER convkey FOREIGN DATA WRAPPER plproxy`` with one option ``pN`` (a libpq connect string)
per logical partition. There are more partitions than shards (a power of two, 16 by default),
spread round-robin over the shards, so a shard added later takes whole partitions over.

A business's partition is ``business_hash(business_id) & (partitions - 1)``, where the hash is the
first 32 bits of md5 of the business id's decimal text as a signed integer: the same in SQL
(``convkey._business_hash``) and here, on every PostgreSQL version.

Each shard also gets its own block of ids (``ID_BLOCK`` values: MINVALUE/MAXVALUE of every
sequence of schema convkey), so ids never collide between shards and rows keep their ids when a
partition moves to another shard.

``convkey shards add DSN`` / ``convkey shards list`` / ``convkey migrate --shards`` call this module.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import dict_row

from . import queries
from .errors import ConvkeyError

DEFAULT_PARTITIONS = 16
ID_BLOCK = 10**12  # ids per shard: block b holds b * ID_BLOCK + 1 .. (b + 1) * ID_BLOCK
MAX_BLOCKS = (2**63 - 1) // ID_BLOCK


def proxy_dirs() -> tuple[Path, Path]:
    """(sql, functions) of the proxy's migration source: shipped in the wheel, or the checkout's."""
    shipped = resources.files("convkey") / "_migrations" / "proxy"
    base = Path(str(shipped)) if shipped.is_dir() else Path(__file__).resolve().parents[2] / "proxy"
    sql, functions = base / "sql", base / "functions"
    if not sql.is_dir() or not functions.is_dir():
        raise FileNotFoundError(f"convkey proxy migrations not found under {base}")
    return sql, functions


# --- the hash -------------------------------------------------------------------------------------
def business_hash(business_id: int | None) -> int:
    """The first 32 bits of md5(str(business_id)) as a signed integer (NULL hashes as 0)."""
    digest = hashlib.md5(str(business_id if business_id is not None else 0).encode("ascii")).digest()
    value = int.from_bytes(digest[:4], "big")
    return value - 2**32 if value >= 2**31 else value


def partition_of(business_id: int | None, partitions: int) -> int:
    """The partition that owns a business in a cluster of ``partitions`` (a power of two)."""
    check_partition_count(partitions)
    return business_hash(business_id) & (partitions - 1)


def check_partition_count(partitions: int) -> None:
    if partitions < 1 or partitions & (partitions - 1):
        raise ConvkeyError(f"the number of partitions must be a power of two, got {partitions}",
                           hint="use 4, 8, 16 ... partitions: more partitions than shards")


# --- connect strings ----------------------------------------------------------------------------
def normalize_connstr(dsn: str) -> str:
    """A DSN (URI or key=value) as the key=value connect string PL/Proxy is given."""
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as exc:
        raise ConvkeyError(f"not a valid connection string: {exc}") from exc
    return make_conninfo(**params)


def _server_key(connstr: str) -> tuple:
    """What makes two connect strings the same database (option order and spelling aside)."""
    params = conninfo_to_dict(connstr)
    return tuple(sorted((k, v) for k, v in params.items() if k in ("host", "hostaddr", "port", "dbname", "user")))


def mask_connstr(connstr: str) -> str:
    """The connect string without its password (for printing)."""
    params = conninfo_to_dict(connstr)
    if "password" in params:
        params["password"] = "***"
    return make_conninfo(**params)


# --- reading the proxy --------------------------------------------------------------------------
def _rows(conn: psycopg.Connection, name: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    cur = conn.cursor(row_factory=dict_row)
    cur.execute(queries.get(name), params or {})
    return cur.fetchall() if cur.description else []


def is_proxy(conn: psycopg.Connection) -> bool:
    """Is this database a convkey proxy (SERVER convkey of PL/Proxy, or the proxy's schema)?"""
    return bool(_rows(conn, "proxy_detect")[0]["is_proxy"])


def partitions(conn: psycopg.Connection) -> list[str]:
    """The connect string of every partition, in partition order (empty: no cluster yet)."""
    return [r["connstr"] for r in _rows(conn, "proxy_partitions")]


def servers(connstrs: list[str]) -> list[str]:
    """The distinct shards of a partition list, in the order they first appear."""
    seen: dict[tuple, str] = {}
    for c in connstrs:
        seen.setdefault(_server_key(c), c)
    return list(seen.values())


def shard_dsns(proxy_dsn: str) -> list[str]:
    """The connect string of every shard of the proxy's cluster (read from SERVER convkey)."""
    with psycopg.connect(proxy_dsn, autocommit=True) as conn:
        if not is_proxy(conn):
            raise ConvkeyError("this database is not a convkey proxy (no PL/Proxy SERVER convkey)",
                               hint="create one with: convkey shards add SHARD_DSN --dsn PROXY_DSN")
        return servers(partitions(conn))


# --- shards' id blocks --------------------------------------------------------------------------
def id_block(shard_dsn: str) -> int | None:
    """The id block a shard's sequences are set to, or None when they are not (yet) in one."""
    with psycopg.connect(shard_dsn, autocommit=True) as conn:
        return _id_block(conn)


def _id_block(conn: psycopg.Connection) -> int | None:
    """The block of the sequences that are in one (a sequence created since stays outside until
    assign_id_block runs again); an error when they are in different blocks."""
    blocks = set()
    for r in _rows(conn, "shard_sequences"):
        lo, hi = r["min_value"], r["max_value"]
        if (lo - 1) % ID_BLOCK == 0 and hi == lo - 1 + ID_BLOCK:
            blocks.add((lo - 1) // ID_BLOCK)
    if len(blocks) > 1:
        raise ConvkeyError(f"the shard's sequences are in several id blocks: {sorted(blocks)}",
                           hint="put them back into one with ALTER SEQUENCE ... MINVALUE ... MAXVALUE")
    return blocks.pop() if blocks else None


def assign_id_block(shard_dsn: str, block: int) -> None:
    """Put every sequence of the shard's schema convkey into id block ``block`` (idempotent)."""
    if not 0 <= block < MAX_BLOCKS:
        raise ConvkeyError(f"id block {block} is out of range (0..{MAX_BLOCKS - 1})")
    with psycopg.connect(shard_dsn, autocommit=True) as conn:
        with conn.transaction():
            _rows(conn, "shard_id_block_setting", {"block": block})
            _rows(conn, "shard_assign_id_block")


# --- shards add ---------------------------------------------------------------------------------
@dataclass
class AddReport:
    shard: str
    block: int
    partitions: list[str] = field(default_factory=list)
    moved: list[int] = field(default_factory=list)
    kept: dict[int, int] = field(default_factory=dict)  # partition -> rows on its current shard
    created: bool = False


def _partition_rows(shard_dsn: str, partition: int, count: int) -> int:
    """Rows of the businesses of one partition held by a shard (0: the partition may move)."""
    with psycopg.connect(shard_dsn, autocommit=True) as conn:
        return int(_rows(conn, "shard_partition_rows", {"partition": partition, "mask": count - 1})[0]["n"])


def add_shard(proxy_dsn: str, shard_dsn: str, *, partitions_count: int | None = None,
              log=lambda msg: None) -> AddReport:
    """Add a shard to the proxy's cluster (creating the cluster the first time).

    The proxy is migrated (proxy/), the shard too (sql/, functions/), and the shard gets the
    lowest free id block. The first shard takes every partition (``partitions_count``, default
    16). A later shard takes the partitions a round-robin spread gives it, except those whose
    businesses already have rows on their current shard: those stay (and are reported), since
    moving one means copying its rows first (README "Scaling out by business").
    """
    from .migrate import migrate

    if partitions_count is not None:
        check_partition_count(partitions_count)
    new = normalize_connstr(shard_dsn)
    if _server_key(new) == _server_key(normalize_connstr(proxy_dsn)):
        raise ConvkeyError("the shard and the proxy are the same database",
                           hint="a shard is an ordinary convkey database; the proxy is a database of its own")
    with psycopg.connect(proxy_dsn, autocommit=True) as conn:
        proxy_is_new = not is_proxy(conn)
    migrate(proxy_dsn, dirs=proxy_dirs())
    if proxy_is_new:
        log("proxy migrated")
    with psycopg.connect(proxy_dsn, autocommit=True) as conn:
        current = partitions(conn)
    if any(_server_key(c) == _server_key(new) for c in current):
        raise ConvkeyError("that database is already a shard of this proxy", hint="see: convkey shards list")
    if current and partitions_count is not None and partitions_count != len(current):
        raise ConvkeyError(f"the cluster has {len(current)} partitions; the count is fixed when it is created",
                           hint="leave out --partitions when adding a shard to an existing cluster")
    migrate(new)
    log("shard migrated")
    old_servers = servers(current)
    used = _keep_id_blocks(old_servers)
    block = id_block(new)
    if block is None or block in used:
        block = _lowest_free(used)
    assign_id_block(new, block)
    report = AddReport(shard=new, block=block, created=not current)
    if not current:
        target = [new] * (partitions_count or DEFAULT_PARTITIONS)
    else:
        ring = old_servers + [new]
        target = list(current)
        for p, connstr in enumerate(current):
            wanted = ring[p % len(ring)]
            if _server_key(wanted) == _server_key(connstr):
                continue
            rows = _partition_rows(connstr, p, len(current))
            if rows:
                report.kept[p] = rows
            else:
                target[p] = wanted
                report.moved.append(p)
    with psycopg.connect(proxy_dsn, autocommit=True) as conn:
        _rows(conn, "proxy_set_partitions", {"connstrs": target})
    report.partitions = target
    return report


def _keep_id_blocks(shards: list[str]) -> set[int]:
    """Make sure every shard's sequences are all in its id block (a shard configured by hand, or
    a sequence a later migration created, gets one now); returns the blocks in use."""
    used: set[int] = set()
    pending = []
    for s in shards:
        b = id_block(s)
        if b is None or b in used:
            pending.append(s)
        else:
            assign_id_block(s, b)
            used.add(b)
    for s in pending:
        b = _lowest_free(used)
        assign_id_block(s, b)
        used.add(b)
    return used


def _lowest_free(used: set[int]) -> int:
    b = 0
    while b in used:
        b += 1
    return b


# --- shards list / migrate --shards --------------------------------------------------------------
@dataclass
class ShardInfo:
    connstr: str
    partitions: list[int]
    block: int | None = None
    error: str | None = None


def describe(proxy_dsn: str) -> list[ShardInfo]:
    """Every shard of the proxy with its partitions and id block (or why it could not be read)."""
    with psycopg.connect(proxy_dsn, autocommit=True) as conn:
        if not is_proxy(conn):
            raise ConvkeyError("this database is not a convkey proxy (no PL/Proxy SERVER convkey)",
                               hint="create one with: convkey shards add SHARD_DSN --dsn PROXY_DSN")
        current = partitions(conn)
    infos = []
    for s in servers(current):
        info = ShardInfo(s, [p for p, c in enumerate(current) if _server_key(c) == _server_key(s)])
        try:
            info.block = id_block(s)
        except psycopg.Error as exc:
            info.error = str(exc).strip().splitlines()[0]
        infos.append(info)
    return infos


def migrate_all(proxy_dsn: str, *, log=lambda msg: None):
    """Migrate every shard (read from SERVER convkey), keep their id blocks, then the proxy.

    Returns [(shard connect string, MigrateReport)] and the proxy's MigrateReport. Re-running
    applies nothing new: only the post-apply function files run again, as on one database.
    """
    from .migrate import migrate

    shards = shard_dsns(proxy_dsn)
    reports = []
    for s in shards:
        log(f"migrating shard {mask_connstr(s)}")
        reports.append((s, migrate(s)))
    _keep_id_blocks(shards)
    log("migrating the proxy")
    return reports, migrate(proxy_dsn, dirs=proxy_dirs())
