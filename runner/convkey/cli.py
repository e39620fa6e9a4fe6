"""The ``convkey`` command line for DBAs and developers."""

from __future__ import annotations

import argparse
import logging
import sys

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
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser("db", help="manage the embedded default database in ./.convkey ($CONVKEY_HOME)")
    p.add_argument("action", choices=["start", "stop", "status", "url"])
    p.set_defaults(func=cmd_db)

    p = sub.add_parser("demo", help="migrate and show convkey at work on the embedded database")
    _add_dsn(p)
    p.add_argument("--people", type=int, default=300)
    p.add_argument("--seed", type=int, default=1)
    p.set_defaults(func=cmd_demo)
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


if __name__ == "__main__":
    sys.exit(main())
