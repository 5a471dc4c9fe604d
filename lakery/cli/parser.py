"""The ``lakery`` command's arguments, and its help."""

from __future__ import annotations

import argparse
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version

from lakery.cli.options import parse_duration
from lakery.cli.options import parse_tag
from lakery.cli.options import parse_time
from lakery.cli.settings import CONFIG_FILE
from lakery.cli.settings import ENV_DAGSTER_URL
from lakery.cli.settings import ENV_DATABASE_URL
from lakery.cli.settings import ENV_REGISTRY_MODULES
from lakery.cli.settings import ENV_STORAGE_URLS
from lakery.maintenance.gc import DEFAULT_GRACE

__all__ = ["EPILOG", "build_parser", "lakery_version"]

EPILOG = f"""\
configuration (each setting from the first of: flags, environment, config file):
  {ENV_DATABASE_URL}      the records database (--database-url)
  {ENV_REGISTRY_MODULES}  comma-separated modules to register (--registry-module)
  {ENV_STORAGE_URLS}      comma-separated [NAME=]URL storages (--storage-url)
  {ENV_DAGSTER_URL}       the Dagster UI that `lakery serve` links to (--dagster-url)
  config file             --config PATH, else ./{CONFIG_FILE} if present, e.g.
                            database_url = "sqlite:///lakery.db"
                            registry_modules = ["myproject.storables"]
                            storage_urls = ["files=/data/lakery", "s3://bucket/prefix"]
                          (also s3_endpoint_url, s3_region, dagster_url)
  The registry always has lakery.builtin and every installed extra; registry modules add
  to them. Storages the records name but the registry lacks are made from the records'
  locators where that is safe (an existing file root, an S3 bucket and prefix, the
  database itself).

exit status: 0 success, 1 problems found (verify, gc errors, ids not found, not
confirmed), 2 bad usage or configuration. Docs: docs/maintenance.md
"""


def lakery_version() -> str:
    """The installed lakery's version (``unknown`` when it is not installed)."""
    try:
        return version("lakery")
    except PackageNotFoundError:
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``lakery`` command."""
    common = argparse.ArgumentParser(add_help=False)
    _add_common(common, suppress=True)
    parser = argparse.ArgumentParser(
        prog="lakery",
        description=(
            "Inspect and maintain a lakery store: find, show, lineage, delete, gc, verify, db, "
            "serve."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"lakery {lakery_version()}")
    _add_common(parser, suppress=False)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    find = commands.add_parser("find", parents=[common], help="find manifests, newest first")
    _add_filters(find)
    find.add_argument(
        "--limit", type=int, default=20, help="at most this many (default 20; 0: all)"
    )

    show = commands.add_parser("show", parents=[common], help="a manifest and its parts")
    show.add_argument("id", help="the manifest id, or a unique prefix of it (4+ hex digits)")

    lineage = commands.add_parser(
        "lineage",
        parents=[common],
        help="what a manifest was derived from and what was derived from it",
        description="A manifest's ancestors (--up) and descendants (--down), both by "
        "default: a tree, --json (nodes and edges) or --dot (Graphviz: | dot -Tsvg).",
    )
    lineage.add_argument("id", help="the manifest id, or a unique prefix of it (4+ hex digits)")
    direction = lineage.add_mutually_exclusive_group()
    direction.add_argument("--up", action="store_true", help="only ancestors (derived from)")
    direction.add_argument("--down", action="store_true", help="only descendants (used by)")
    lineage.add_argument(
        "--depth", type=int, default=3, metavar="N", help="levels each way (default 3; 0: all)"
    )
    lineage.add_argument("--dot", action="store_true", help="Graphviz DOT output")

    delete = commands.add_parser(
        "delete", parents=[common], help="delete manifests (their blobs are left for gc)"
    )
    delete.add_argument("ids", nargs="*", metavar="ID", help="manifest ids")
    _add_filters(delete)
    delete.add_argument("--limit", type=int, default=0, help="at most this many (the newest)")
    delete.add_argument("--dry-run", action="store_true", help="only show what would be deleted")
    delete.add_argument(
        "--force",
        action="store_true",
        help="also delete manifests that others were derived from (their lineage edges "
        "stay, naming a missing parent)",
    )
    delete.add_argument(
        "-y",
        "--yes",
        action="store_true",
        help="delete by query without asking (needed when stdin is not a terminal)",
    )

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

    serve = commands.add_parser(
        "serve",
        parents=[common],
        help="a read-only web viewer of the store (the ui extra)",
        description="Serve a read-only web viewer: search manifests, see their parts, "
        "previews and lineage, download verified bytes. Needs the ui extra "
        "(pip install -e '/path/to/lakery[ui]').",
    )
    serve.add_argument(
        "--host", default="127.0.0.1", help="the address to listen on (default 127.0.0.1)"
    )
    serve.add_argument(
        "--port", type=_port, default=8321, help="the port to listen on (default 8321)"
    )
    serve.add_argument(
        "--dagster-url",
        metavar="URL",
        help="the Dagster UI, e.g. http://127.0.0.1:3000: manifests saved by Dagster link "
        f"to their run and asset (default: ${ENV_DAGSTER_URL}, else the config file)",
    )

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


def _port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number from 0 to 65535, got {text!r}")
    return int(text)


def _add_common(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """Options accepted before and after the command (after it, they override)."""

    def default(value: object) -> object:
        return argparse.SUPPRESS if suppress else value

    group = parser.add_argument_group("database and components")
    group.add_argument(
        "--config",
        metavar="PATH",
        default=default(None),
        help=f"a TOML config file (default: ./{CONFIG_FILE} if present)",
    )
    group.add_argument(
        "--database-url",
        metavar="URL",
        default=default(None),
        help="the records database, e.g. postgresql://user@host/db or sqlite:///lakery.db "
        f"(default: ${ENV_DATABASE_URL}, else the config file)",
    )
    group.add_argument(
        "--registry-module",
        metavar="MODULE",
        action="append",
        default=default(None),
        help="a module whose components to register, besides lakery.builtin and the "
        f"installed extras (repeatable; default: ${ENV_REGISTRY_MODULES})",
    )
    group.add_argument(
        "--storage-url",
        metavar="[NAME=]URL",
        action="append",
        default=default(None),
        help="add a storage: file:///path, a path, or s3://bucket/prefix; NAME= gives it "
        f"the component name its records use (repeatable; default: ${ENV_STORAGE_URLS})",
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
