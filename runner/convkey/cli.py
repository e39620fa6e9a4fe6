"""The ``convkey`` command line for DBAs and developers."""

from __future__ import annotations

import argparse
import logging
import sys

import psycopg

from . import __version__
from .embedded import EmbeddedCluster, resolve_dsn
from .errors import ConvkeyError

logger = logging.getLogger("convkey")


def _add_dsn(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--dsn",
        help="libpq DSN or URI; default: $CONVKEY_DSN, else $DATABASE_URL, else the embedded database in ./.convkey",
    )


def cmd_migrate(args: argparse.Namespace) -> int:
    from .migrate import migrate

    dsn = resolve_dsn(args.dsn)
    if args.shards:
        return _migrate_shards(dsn)
    report = migrate(dsn, list_only=args.list, rollback_all=args.rollback_all)
    if args.list:
        for mid, applied in report.status:
            print(f"{'applied' if applied else 'pending'}  {mid}")
        return 0
    if args.rollback_all:
        for mid in report.rolled_back:
            print(f"rolled back  {mid}")
        print(f"rolled back {len(report.rolled_back)} migration(s); schema convkey dropped")
        return 0
    for mid in report.applied:
        print(f"applied      {mid}")
    for mid in report.post_apply:
        print(f"post-apply   {mid}")
    print(
        f"{len(report.applied)} migration(s) applied, {len(report.post_apply)} function file(s) run; "
        f"schema version {report.schema_version}; {len(report.functions)} public functions"
    )
    return 0


def _print_migrate_summary(report, prefix: str = "") -> None:
    print(
        f"{prefix}{len(report.applied)} migration(s) applied, {len(report.post_apply)} function file(s) run; "
        f"schema version {report.schema_version}; {len(report.functions)} public functions"
    )


def _migrate_shards(proxy_dsn: str) -> int:
    """convkey migrate --shards: every shard of the proxy's cluster, then the proxy itself."""
    from .shards import mask_connstr, migrate_all

    shard_reports, proxy_report = migrate_all(proxy_dsn)
    for connstr, report in shard_reports:
        for mid in report.applied:
            print(f"applied      {mid}  ({mask_connstr(connstr)})")
        _print_migrate_summary(report, prefix=f"shard {mask_connstr(connstr)}: ")
    for mid in proxy_report.applied:
        print(f"applied      {mid}  (proxy)")
    _print_migrate_summary(proxy_report, prefix="proxy: ")
    return 0


def cmd_shards(args: argparse.Namespace) -> int:
    import json

    from . import shards

    proxy_dsn = resolve_dsn(args.dsn)
    if args.action == "add":
        report = shards.add_shard(proxy_dsn, args.shard_dsn, partitions_count=args.partitions)
        print(f"{'created the cluster with' if report.created else 'added'} shard {shards.mask_connstr(report.shard)}: "
              f"id block {report.block}, partitions "
              f"{','.join(str(p) for p, c in enumerate(report.partitions) if c == report.shard) or 'none'}")
        if report.moved and not report.created:
            print(f"moved {len(report.moved)} empty partition(s) to it: {','.join(map(str, report.moved))}")
        for p, rows in sorted(report.kept.items()):
            print(f"kept partition {p} where it is: its businesses have {rows} row(s) there "
                  "(to move it, see README \"Scaling out by business\")")
        return 0
    infos = shards.describe(proxy_dsn)
    count = sum(len(i.partitions) for i in infos)
    if args.json:
        print(json.dumps({"partitions": count, "shards": [
            {"connstr": shards.mask_connstr(i.connstr), "partitions": i.partitions, "id_block": i.block,
             "error": i.error} for i in infos]}, indent=2))
        return 0
    if not infos:
        print("no shards yet: convkey shards add SHARD_DSN --dsn PROXY_DSN")
        return 0
    print(f"cluster convkey: {count} partitions on {len(infos)} shard(s); "
          f"partition = md5 hash of business_id & {count - 1}")
    for i in infos:
        ids = (f"ids {i.block * shards.ID_BLOCK + 1}..{(i.block + 1) * shards.ID_BLOCK}" if i.block is not None
               else f"unreachable: {i.error}" if i.error else "ids not in a block")
        print(f"  {shards.mask_connstr(i.connstr)}")
        print(f"      partitions {','.join(map(str, i.partitions))}; {ids}")
    return 0


def cmd_db(args: argparse.Namespace) -> int:
    cluster = EmbeddedCluster.default()
    if args.action == "start":
        started = cluster.start()
        print(("started" if started else "already running") + f": {cluster.url()}")
    elif args.action == "stop":
        print("stopped" if cluster.stop() else "not running")
    elif args.action == "status":
        if not cluster.initialized():
            print(f"not created ({cluster.datadir})")
            return 3
        running = cluster.running()
        print(f"{'running' if running else 'stopped'}: {cluster.datadir}")
        return 0 if running else 3
    elif args.action == "url":
        print(cluster.url())
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(resolve_dsn(args.dsn), people=args.people, seed=args.seed)


def cmd_backfill(args: argparse.Namespace) -> int:
    from .backfill import exit_code, print_report, run_backfill
    from .progress import Progress

    report = run_backfill(
        resolve_dsn(args.dsn), execute=args.execute, business_id=args.business_id, batch_size=args.batch_size,
        default_region=args.default_region, skip_backfill=args.skip_backfill, skip_merge=args.skip_merge,
        progress=Progress(enabled=not args.json), workers=args.workers, wal_compression=args.wal_compression,
        analyze=not args.skip_analyze,
    )
    print_report(report, as_json=args.json)
    return exit_code(report)


def cmd_stats(args: argparse.Namespace) -> int:
    import psycopg
    from psycopg.rows import dict_row

    from . import queries
    from .health import to_json, to_table

    # one query: a plain connection (fails at once when the server is down; a pool would retry)
    with psycopg.connect(resolve_dsn(args.dsn), row_factory=dict_row) as conn:
        rows = conn.execute(queries.get("dedup_health"), {"business_id": args.business_id}).fetchall()
    print(to_json(rows) if args.json else to_table(rows))
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    from .ingest import run_ingest

    return run_ingest(resolve_dsn(args.dsn), args.file, fmt=args.format, business_id=args.business_id,
                      workers=args.workers, as_json=args.json)


def cmd_import(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from .importer import run_import

    if not args.conversations and not args.messages:
        raise ConvkeyError("nothing to import", hint="pass --conversations FILE and/or --messages FILE")
    reports = run_import(resolve_dsn(args.dsn), conversations=args.conversations and Path(args.conversations),
                         messages=args.messages and Path(args.messages), fmt=args.format,
                         business_id=args.business_id)
    if args.json:
        print(json.dumps([r.as_dict() for r in reports], indent=2))
    else:
        for r in reports:
            print(f"{r.path}: {r.lines} lines, {r.inserted} inserted, {r.duplicates} duplicates skipped, "
                  f"{len(r.bad)} bad lines")
            for line, reason in r.bad:
                print(f"  line {line}: {reason}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="convkey", description=__doc__)
    parser.add_argument("--version", action="version", version=f"convkey {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("migrate", help="apply pending migrations, then (always) the function files")
    _add_dsn(p)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--list", action="store_true", help="list migrations and whether each is applied")
    g.add_argument("--rollback-all", action="store_true", help="roll back every migration (drops schema convkey)")
    g.add_argument("--shards", action="store_true",
                   help="--dsn is a proxy: migrate every shard of its cluster, then the proxy")
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser("shards", help="the PL/Proxy cluster of a proxy database (--dsn is the proxy)")
    shard_sub = p.add_subparsers(dest="action", required=True)
    q = shard_sub.add_parser("add", help="add a shard (the first one creates the cluster)")
    q.add_argument("shard_dsn", metavar="SHARD_DSN", help="libpq DSN or URI of the shard, as the proxy reaches it")
    q.add_argument("--partitions", type=int, default=None,
                   help="logical partitions, a power of two; only when creating the cluster (default 16)")
    _add_dsn(q)
    q.set_defaults(func=cmd_shards)
    q = shard_sub.add_parser("list", help="list the shards, their partitions and id blocks")
    q.add_argument("--json", action="store_true", help="print JSON")
    _add_dsn(q)
    q.set_defaults(func=cmd_shards)

    p = sub.add_parser("db", help="manage the embedded default database in ./.convkey ($CONVKEY_HOME)")
    p.add_argument("action", choices=["start", "stop", "status", "url"])
    p.set_defaults(func=cmd_db)

    p = sub.add_parser("backfill", help="resolve and merge legacy conversations (dry run unless --execute)")
    _add_dsn(p)
    p.add_argument("--execute", action="store_true", help="apply the changes (default: dry run, writes nothing)")
    p.add_argument("--skip-backfill", action="store_true", help="skip the resolve phase (keys for new identities)")
    p.add_argument("--skip-merge", action="store_true", help="skip the merge phase (rows sharing identities)")
    p.add_argument("--skip-analyze", action="store_true",
                   help="leave the statistics to autovacuum: no ANALYZE of the tables the resolve phase filled "
                        "before the merge phase plans on them (see README)")
    p.add_argument("--batch-size", type=int, default=10000, help="rows per transaction in the resolve phase")
    p.add_argument("--business-id", type=int, help="only this business")
    p.add_argument("--default-region", default="IL", help="region for phones typed without a country code")
    p.add_argument("--json", action="store_true", help="print the report as JSON (no progress bar)")
    p.add_argument("--workers", type=int, default=1,
                   help="connections each phase runs on at once with --execute (default 1: rows resolve and "
                        "merge in id order, exactly as the dry run printed; 2 took 0.61x the time on 2 cores, see README)")
    p.add_argument("--wal-compression", default="auto", metavar="auto|off|pglz|lz4|zstd",
                   help="compress the full-page images this run's sessions write to WAL (default auto: lz4 when the "
                        "server does not compress and the role may set it; off: leave the server's setting; see README)")
    p.set_defaults(func=cmd_backfill)

    p = sub.add_parser("ingest", help="replay Baileys messages or convkey events (JSON Lines) into the database")
    _add_dsn(p)
    p.add_argument("file", help="a JSON Lines file (or a JSON array); - reads standard input")
    p.add_argument("--format", choices=["auto", "baileys", "jsonl"], default="auto",
                   help="baileys: Baileys 7 messages; jsonl: convkey events; default: each line by its shape")
    p.add_argument("--business-id", type=int, default=1,
                   help="the business of Baileys messages, and of events that carry none (default 1)")
    p.add_argument("--workers", type=int, default=1,
                   help="threads applying events; each person's events stay in file order (default 1)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("import", help="load legacy conversation/message exports (CSV or JSON Lines) with COPY")
    _add_dsn(p)
    p.add_argument("--conversations", metavar="FILE", help="conversations export (.csv or .jsonl)")
    p.add_argument("--messages", metavar="FILE", help="messages export (.csv or .jsonl)")
    p.add_argument("--format", choices=["csv", "jsonl"], help="default: by file extension")
    p.add_argument("--business-id", type=int, help="business of rows that name none")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("demo", help="migrate and show convkey at work on the embedded database")
    _add_dsn(p)
    p.add_argument("--people", type=int, default=300)
    p.add_argument("--seed", type=int, default=1)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("stats", help="dedup health per business (the convkey.dedup_health view)")
    _add_dsn(p)
    p.add_argument("--business-id", type=int, help="only this business")
    p.add_argument("--json", action="store_true", help="print JSON (one object per business)")
    p.set_defaults(func=cmd_stats)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return args.func(args)
    except ConvkeyError as exc:
        print(f"convkey: error: {exc}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return 2
    except (psycopg.Error, RuntimeError, OSError) as exc:
        # not the input's fault (connection lost, server down, a concurrent run): exit 2, no traceback
        state = getattr(exc, "sqlstate", None)
        # the primary message only: a DETAIL such as "Failing row contains (...)" may hold identifiers
        diag = getattr(exc, "diag", None)
        text = (diag.message_primary if diag is not None else None) or (str(exc).splitlines() or [repr(exc)])[0]
        print(f"convkey: error{f' (SQLSTATE {state})' if state else ''}: {text}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
