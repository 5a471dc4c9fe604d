"""The ``lakery`` command line (also ``python -m lakery``).

```text
lakery [--database-url URL] [--registry-module MODULE]... [--storage-url [NAME=]URL]...
       [--json] [--quiet] COMMAND ...

  find      manifests by tags, class and time, newest first
  show      one manifest with its parts
  delete    manifests by id or query (--dry-run first); blobs stay for gc
  gc        blobs no record references, older than --grace (dry run unless --delete)
  verify    read parts back and check size and sha256 (--sample N); exit 1 on problems
  db        upgrade | downgrade | current: schema migrations
```

Options may also follow the command. The database URL may come from
``LAKERY_DATABASE_URL``. Exit status: 0 success, 1 problems found (verify, gc errors,
ids not found), 2 bad usage or configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence

from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from lakery.cli.commands import COMMANDS
from lakery.cli.context import open_context
from lakery.cli.options import parse_duration
from lakery.cli.options import parse_tag
from lakery.cli.options import parse_time
from lakery.common.exceptions import LakeryError
from lakery.maintenance.gc import DEFAULT_GRACE

__all__ = ["build_parser", "main"]

USAGE_ERROR = 2


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with `argv` (default: ``sys.argv[1:]``); return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.verbose:
        # lakery's own loggers only: botocore's debug output would show the access key id
        logging.basicConfig(
            level=logging.WARNING, stream=sys.stderr, format="%(name)s: %(message)s"
        )
        logging.getLogger("lakery").setLevel(logging.DEBUG if args.verbose > 1 else logging.INFO)
    command = f"db {args.db_command}" if args.command == "db" else args.command
    try:
        return asyncio.run(_run(command, args))
    except KeyboardInterrupt:
        sys.stderr.write("lakery: interrupted\n")
        return 130
    except (LakeryError, SQLAlchemyError, OSError) as exc:
        sys.stderr.write(f"lakery: error: {_safe_message(exc, args)}\n")
        return USAGE_ERROR


async def _run(command: str, args: argparse.Namespace) -> int:
    is_db = command.startswith("db ")
    ctx = open_context(args, needs_tables=not is_db)
    try:
        if not is_db:
            await ctx.check_tables()
        return await COMMANDS[command](ctx)
    finally:
        ctx.progress.clear()
        await ctx.engine.dispose()


def _safe_message(exc: BaseException, args: argparse.Namespace) -> str:
    """The error's first line, with the database password (if any) redacted."""
    if isinstance(exc, SQLAlchemyError):
        text = str(getattr(exc, "orig", None) or exc)
        text = f"database error: {text.splitlines()[0] if text else type(exc).__name__}"
    else:
        text = str(exc) or type(exc).__name__
    raw_url = args.database_url or os.environ.get("LAKERY_DATABASE_URL", "")
    try:
        password = make_url(raw_url).password if raw_url else None
    except Exception:
        password = None
    if raw_url:
        text = text.replace(raw_url, "<database URL>")
    if password:
        text = text.replace(str(password), "***")
    return text


def _add_common(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """Options accepted before and after the command (after it, they override)."""

    def default(value: object) -> object:
        return argparse.SUPPRESS if suppress else value

    group = parser.add_argument_group("database and components")
    group.add_argument(
        "--database-url",
        metavar="URL",
        default=default(None),
        help="the records database, e.g. postgresql://user@host/db or sqlite:///lakery.db "
        "(default: $LAKERY_DATABASE_URL)",
    )
    group.add_argument(
        "--registry-module",
        metavar="MODULE",
        action="append",
        default=default(None),
        help="a module whose components to register (repeatable; default: lakery.builtin)",
    )
    group.add_argument(
        "--storage-url",
        metavar="[NAME=]URL",
        action="append",
        default=default(None),
        help="add a storage: file:///path, a path, or s3://bucket/prefix; NAME= gives it "
        "the component name its records use (repeatable)",
    )
    group.add_argument("--s3-endpoint-url", metavar="URL", default=default(None))
    group.add_argument("--s3-region", metavar="REGION", default=default(None))
    out = parser.add_argument_group("output")
    out.add_argument(
        "--json", action="store_true", default=default(False), help="machine-readable output"
    )
    out.add_argument(
        "-q", "--quiet", action="store_true", default=default(False), help="no progress display"
    )
    out.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=default(0),
        help="log to stderr (-vv for debug)",
    )


def _add_filters(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("which manifests")
    group.add_argument(
        "--tag",
        metavar="KEY=VALUE",
        action="append",
        type=parse_tag,
        help="manifests with this tag (repeatable: all must match)",
    )
    group.add_argument(
        "--class", dest="class_id", metavar="CLASS_ID", help="manifests of this class id"
    )
    group.add_argument(
        "--since",
        metavar="TIME",
        type=parse_time,
        help="created at or after TIME (ISO 8601, UTC by default; or a duration ago: 7d)",
    )
    group.add_argument(
        "--before", metavar="TIME", type=parse_time, help="created before TIME (as --since)"
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``lakery`` command."""
    common = argparse.ArgumentParser(add_help=False)
    _add_common(common, suppress=True)
    parser = argparse.ArgumentParser(
        prog="lakery",
        description="Inspect and maintain a lakery store: find, show, delete, gc, verify, db.",
        epilog="Exit status: 0 success, 1 problems found (verify, gc errors, ids not found), "
        "2 bad usage or configuration. Docs: docs/maintenance.md",
    )
    _add_common(parser, suppress=False)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    find = commands.add_parser("find", parents=[common], help="find manifests, newest first")
    _add_filters(find)
    find.add_argument(
        "--limit", type=int, default=20, help="at most this many (default 20; 0: all)"
    )

    show = commands.add_parser("show", parents=[common], help="a manifest and its parts")
    show.add_argument("id", help="the manifest id")

    delete = commands.add_parser(
        "delete", parents=[common], help="delete manifests (their blobs are left for gc)"
    )
    delete.add_argument("ids", nargs="*", metavar="ID", help="manifest ids")
    _add_filters(delete)
    delete.add_argument("--limit", type=int, default=0, help="at most this many (the newest)")
    delete.add_argument("--dry-run", action="store_true", help="only show what would be deleted")

    gc = commands.add_parser(
        "gc", parents=[common], help="collect unreferenced blobs (a dry run unless --delete)"
    )
    gc.add_argument("--delete", action="store_true", help="really delete the garbage")
    gc.add_argument(
        "--grace",
        type=parse_duration,
        default=DEFAULT_GRACE,
        metavar="DURATION",
        help="keep blobs written or reused within this period; must exceed the longest "
        "save (default 24h)",
    )
    gc.add_argument(
        "--storage", action="append", metavar="NAME", help="only this storage (repeatable)"
    )

    verify = commands.add_parser(
        "verify", parents=[common], help="read parts back and check their size and sha256"
    )
    verify.add_argument("ids", nargs="*", metavar="ID", help="manifest ids (default: all)")
    _add_filters(verify)
    verify.add_argument("--sample", type=int, metavar="N", help="check N random manifests")

    db = commands.add_parser("db", help="schema migrations (Alembic)")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="COMMAND")
    upgrade = db_commands.add_parser(
        "upgrade", parents=[common], help="create or upgrade lakery's tables"
    )
    upgrade.add_argument("--revision", default="head", help="target revision (default head)")
    downgrade = db_commands.add_parser(
        "downgrade", parents=[common], help="go back to an earlier schema revision"
    )
    downgrade.add_argument("revision", help="the revision to go back to, e.g. 0001")
    db_commands.add_parser("current", parents=[common], help="show the schema revision")
    return parser
