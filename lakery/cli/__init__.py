"""The ``lakery`` command line (also ``python -m lakery``).

```text
lakery [--config PATH] [--database-url URL] [--registry-module MODULE]...
       [--storage-url [NAME=]URL]... [--json] [--quiet] COMMAND ...

  find      manifests by tags, class and time, newest first
  show      one manifest (by id or unique id prefix) with its parts
  lineage   ancestors and descendants of a manifest (--up/--down, --depth, --json/--dot)
  delete    manifests by id or query (--dry-run first; a query asks, or --yes; --force
            for manifests others were derived from)
  gc        blobs no record references, older than --grace (dry run unless --delete)
  verify    read parts back and check size and sha256 (--sample N); exit 1 on problems
  db        upgrade | downgrade | current: schema migrations
  serve     a read-only web viewer (--host, --port, --dagster-url; the ui extra)
```

Options may also follow the command. Settings come from flags, else the environment
(``LAKERY_DATABASE_URL``, ``LAKERY_REGISTRY_MODULES``, ``LAKERY_STORAGE_URLS``,
``LAKERY_DAGSTER_URL``), else a
config file (`lakery.cli.settings`). Exit status: 0 success, 1 problems found (verify, gc
errors, ids not found, not confirmed), 2 bad usage or configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from urllib.parse import quote

from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from lakery.cli.commands import COMMANDS
from lakery.cli.commands import require_ui_extra
from lakery.cli.context import Context
from lakery.cli.context import open_context
from lakery.cli.parser import build_parser
from lakery.cli.settings import ENV_DATABASE_URL
from lakery.cli.settings import Settings
from lakery.cli.settings import resolve_settings
from lakery.common.exceptions import LakeryError

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
    raw_url = args.database_url or os.environ.get(ENV_DATABASE_URL, "")
    try:
        settings = resolve_settings(args)
        raw_url = settings.database_url
        return asyncio.run(_run(command, args, settings))
    except KeyboardInterrupt:
        sys.stderr.write("lakery: interrupted\n")
        return 130
    except (LakeryError, SQLAlchemyError, OSError) as exc:
        sys.stderr.write(f"lakery: error: {_safe_message(exc, raw_url)}\n")
        return USAGE_ERROR


async def _run(command: str, args: argparse.Namespace, settings: Settings) -> int:
    if command == "serve":
        require_ui_extra()  # before connecting: say what to install first
    is_db = command.startswith("db ")
    ctx: Context = open_context(args, settings, needs_tables=not is_db)
    try:
        if not is_db:
            ctx.build_registry()  # a bad module or storage URL fails before any work
            await ctx.check_tables()
        return await COMMANDS[command](ctx)
    finally:
        ctx.progress.clear()
        await ctx.engine.dispose()


def _safe_message(exc: BaseException, raw_url: str) -> str:
    """The error's first line, with the database password (if any) redacted."""
    if isinstance(exc, SQLAlchemyError):
        text = str(getattr(exc, "orig", None) or exc)
        text = f"database error: {text.splitlines()[0] if text else type(exc).__name__}"
    else:
        text = str(exc) or type(exc).__name__
    try:
        password = make_url(raw_url).password if raw_url else None
    except Exception:
        password = None
    if raw_url:
        text = text.replace(raw_url, "<database URL>")
    if password:
        # where a URL shows it; alone only if long (a short one may be part of words)
        for shown in {str(password), quote(str(password), safe="")}:
            text = text.replace(f":{shown}@", ":***@")
            if len(shown) >= 8:
                text = text.replace(shown, "***")
    return text
