"""The ``lakery`` commands: find, show, lineage, delete, gc, verify, db upgrade/downgrade/
current, serve."""

from __future__ import annotations

import importlib.util
import json
import sys
from typing import Any

import anyio.to_thread

from lakery.cli.context import Context
from lakery.cli.lineage import class_name
from lakery.cli.lineage import lineage
from lakery.cli.lookup import resolve_manifest_id
from lakery.cli.output import human_bytes
from lakery.cli.output import table
from lakery.cli.prompt import confirm
from lakery.cli.prompt import is_terminal
from lakery.common.exceptions import ConfigurationError
from lakery.common.exceptions import HasDependantsError
from lakery.common.exceptions import LakeryError
from lakery.core.query import find_manifests
from lakery.core.query import get_manifests
from lakery.core.records import ContentRecord
from lakery.core.records import ManifestRecord
from lakery.maintenance import collect_garbage
from lakery.maintenance import database_revision
from lakery.maintenance import delete_manifests
from lakery.maintenance import downgrade_database
from lakery.maintenance import upgrade_database
from lakery.maintenance import verify_manifests

__all__ = ["COMMANDS", "require_ui_extra"]

OK = 0
PROBLEMS = 1
"""Exit status when the command worked but found problems (verify, gc errors, not found)."""


def _query(ctx: Context) -> dict[str, Any]:
    args = ctx.args
    return {
        "tags": dict(args.tag or []) or None,
        "cls": args.class_id,
        "since": args.since,
        "before": args.before,
    }


_QUERY_FLAGS = "--tag KEY=VALUE, --class CLASS_ID, --since TIME or --before TIME"


def _has_query(ctx: Context) -> bool:
    args = ctx.args
    return bool(args.tag or args.class_id or args.since or args.before)


def _class_name(ctx: Context, record: ManifestRecord) -> str:
    """``module.QualName`` of the manifest's class, if registered or imported; else ""."""
    return class_name(ctx.registry, record)


def _manifest_dict(ctx: Context, record: ManifestRecord) -> dict[str, Any]:
    return {
        "id": str(record.id),
        "created_at": record.created_at.isoformat(),
        "class_id": record.class_id.hex,
        "class": _class_name(ctx, record) or None,
        "unpacker": record.unpacker_name,
        "tags": record.tags,
    }


def _content_dict(ctx: Context, row: ContentRecord) -> dict[str, Any]:
    try:
        location = ctx.registry.get_storage(row.storage_name).uri(row.storage_data)
    except LakeryError:
        location = None
    return {
        "key": row.content_key,
        "content_type": row.content_type,
        "content_encoding": row.content_encoding,
        "size": row.content_size,
        "hash": f"{row.content_hash_algorithm}:{row.content_hash}",
        "serializer": row.serializer_name,
        "serializer_type": row.serializer_type,
        "storage": row.storage_name,
        "locator": row.storage_data,
        "uri": location,
        "tags": row.tags,
    }


async def find(ctx: Context) -> int:
    limit = ctx.args.limit or None
    async with ctx.session() as session:
        records = await find_manifests(session, **_query(ctx), limit=limit)
    if ctx.json:
        ctx.emit([_manifest_dict(ctx, r) for r in records])
        return OK
    rows = [
        (
            r.id,
            r.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            _class_name(ctx, r) or r.class_id.hex,
            json.dumps(r.tags, ensure_ascii=False, sort_keys=True),
        )
        for r in records
    ]
    ctx.print(table(["id", "created (UTC)", "class", "tags"], rows))
    ctx.print(f"{len(records)} manifest(s)" + (" (limit reached)" if len(records) == limit else ""))
    return OK


async def show(ctx: Context) -> int:
    async with ctx.session() as session:
        manifest_id = await resolve_manifest_id(session, ctx.args.id)
        found = {}
        if manifest_id is not None:
            found = await get_manifests(session, [manifest_id], with_contents=True)
    record = next(iter(found.values()), None)
    if record is None:
        sys.stderr.write(f"lakery: no manifest {ctx.args.id}\n")
        return PROBLEMS
    await ctx.discover_storages(sorted({row.storage_name for row in record.contents}))
    summary = _manifest_dict(ctx, record)
    contents = [_content_dict(ctx, row) for row in record.contents]
    if ctx.json:
        ctx.emit({**summary, "contents": contents})
        return OK
    if summary["class"] is None:
        summary["class"] = "(not registered: add its module with --registry-module)"
    for key in ("id", "created_at", "class", "class_id", "unpacker"):
        ctx.print(f"{key + ':':12} {summary[key]}")
    ctx.print(f"{'tags:':12} {json.dumps(record.tags, ensure_ascii=False, sort_keys=True)}")
    rows = [
        (
            c["key"],
            c["content_type"],
            human_bytes(c["size"]),
            c["hash"][:19],
            c["serializer"],
            c["storage"],
            c["uri"] or json.dumps(c["locator"]),
        )
        for c in contents
    ]
    ctx.print()
    headers = ["part", "type", "size", "hash", "serializer", "storage", "location"]
    ctx.print(table(headers, rows))
    return OK


async def delete(ctx: Context) -> int:
    args = ctx.args
    ids = args.ids or None
    if ids is None and not _has_query(ctx):
        msg = f"delete needs manifest ids or a query ({_QUERY_FLAGS}); try --dry-run first"
        raise ConfigurationError(msg)
    limit = args.limit or None
    if _has_query(ctx) and not args.dry_run and not args.yes:
        ids = await _confirmed_ids(ctx, ids, limit)
        if ids is None:
            sys.stderr.write("lakery: nothing deleted\n")
            return PROBLEMS
        if not ids:
            ctx.print("no manifest matches; nothing to delete")
            return OK
        limit = None
    try:
        async with ctx.session() as session:
            result = await delete_manifests(
                session,
                ids=ids,
                **_query(ctx),
                limit=limit,
                dry_run=args.dry_run,
                force=args.force,
                progress=ctx.progress,
            )
    except HasDependantsError as exc:
        if ctx.json:
            dependants = {str(p): [str(c) for c in cs] for p, cs in exc.dependants.items()}
            ctx.emit({"refused": str(exc), "dependants": dependants})
        sys.stderr.write(f"lakery: {exc}\n")
        return PROBLEMS
    if ctx.json:
        ctx.emit(result.to_dict())
    else:
        verb = "would delete" if result.dry_run else "deleted"
        for record in result.manifests:
            ctx.print(f"{verb} {record.id}  {json.dumps(record.tags, sort_keys=True)}")
        for missing in result.missing:
            ctx.print(f"not found: {missing}")
        for parent, children in result.dependants.items():
            kept = "kept, naming a missing parent" if not result.dry_run else "needs --force"
            ctx.print(f"{parent} has {len(children)} dependant(s) ({kept})")
        ctx.print(
            f"{verb} {len(result.manifests)} manifest(s) with {result.contents} part(s) "
            f"({human_bytes(result.content_bytes)}); their blobs stay until `lakery gc`"
        )
    return PROBLEMS if result.missing else OK


async def _confirmed_ids(
    ctx: Context, ids: list[str] | None, limit: int | None
) -> list[Any] | None:
    """The ids of the manifests the query matches, once the user agreed; None if not."""
    if not is_terminal(ctx.stdin):
        msg = (
            "delete by query asks for confirmation, but stdin is not a terminal: check "
            "with --dry-run, then pass --yes"
        )
        raise ConfigurationError(msg)
    async with ctx.session() as session:
        dry = await delete_manifests(
            session, ids=ids, **_query(ctx), limit=limit, dry_run=True, progress=ctx.progress
        )
    if not dry.manifests:
        return []
    question = (
        f"delete {len(dry.manifests)} manifest(s) with {dry.contents} part(s) "
        f"({human_bytes(dry.content_bytes)})?"
    )
    stdin = ctx.stdin or sys.stdin
    agreed = await anyio.to_thread.run_sync(confirm, question, stdin, sys.stderr)
    return [record.id for record in dry.manifests] if agreed else None


async def gc(ctx: Context) -> int:
    args = ctx.args
    registry = await ctx.discover_storages()
    skipped = {n: r for n, r in ctx.not_collected.items() if n in registry.storages}
    for name in args.storage or []:
        if name in skipped:
            raise ConfigurationError(f"cannot collect the storage {name!r}: {skipped[name]}")
    storages = args.storage or [n for n in registry.storages if n not in skipped]
    async with ctx.session() as session:
        report = await collect_garbage(
            session,
            registry,
            grace=args.grace,
            delete=args.delete,
            storages=storages,
            progress=ctx.progress,
        )
    if args.storage:
        skipped = {}
    if ctx.json:
        ctx.emit({**report.to_dict(), "not_collected": skipped})
        return PROBLEMS if report.errors else OK
    mode = "deleting" if args.delete else "dry run"
    ctx.print(f"gc ({mode}): blobs last written before {report.cutoff.isoformat()} are candidates")
    for name, reason in skipped.items():
        ctx.print(f"  {name}: not collected: {reason}")
    for s in report.storages:
        if s.skipped:
            ctx.print(f"  {s.storage}: skipped ({s.skipped})")
            continue
        line = (
            f"  {s.storage}: {s.listed} blob(s) ({human_bytes(s.listed_bytes)}): "
            f"{s.referenced} referenced, {s.recent} recent, {len(s.garbage)} garbage "
            f"({human_bytes(s.garbage_bytes)})"
        )
        if args.delete:
            line += f"; deleted {s.deleted} ({human_bytes(s.deleted_bytes)})"
            line += f", kept {s.spared} reused meanwhile" if s.spared else ""
        ctx.print(line)
        if s.leftovers:
            verb = "removed" if args.delete else "would remove"
            ctx.print(f"    {verb} {len(s.leftovers)} temporary object(s) of interrupted writes")
        for error in s.errors:
            ctx.print(f"    error: {error}")
    if not args.delete and report.garbage:
        ctx.print(f"{report.garbage} blob(s) would be deleted; run with --delete to delete them")
    return PROBLEMS if report.errors else OK


async def verify(ctx: Context) -> int:
    args = ctx.args
    registry = await ctx.discover_storages()
    async with ctx.session() as session:
        report = await verify_manifests(
            session,
            registry,
            manifests=args.ids or None,
            **_query(ctx),
            sample=args.sample,
            progress=ctx.progress,
        )
    if ctx.json:
        ctx.emit(report.to_dict())
    else:
        for problem in report.problems:
            ctx.print(f"{problem.kind.upper()}: {problem.message}")
        if report.dangling_lineage:
            children = ", ".join(str(c) for c in list(report.dangling_lineage)[:10])
            more = ", ..." if len(report.dangling_lineage) > 10 else ""
            ctx.print(
                f"NOTICE: dangling lineage: {report.dangling_edges} edge(s) of "
                f"{len(report.dangling_lineage)} manifest(s) name a deleted parent "
                f"(deleted with --force): {children}{more}"
            )
        status = "OK" if report.ok else f"{len(report.problems)} PROBLEM(S)"
        ctx.print(
            f"verified {report.parts} part(s) of {report.manifests} manifest(s) "
            f"({human_bytes(report.bytes)}): {status}"
        )
    return OK if report.ok else PROBLEMS


async def db_upgrade(ctx: Context) -> int:
    change = await upgrade_database(ctx.engine, ctx.args.revision)
    if ctx.json:
        ctx.emit({"before": change.before, "after": change.after, "adopted": change.adopted})
        return OK
    if change.adopted:
        ctx.print("found tables made by create_all: marked them as revision 0001")
    if change.before == change.after and not change.adopted:
        ctx.print(f"the schema is up to date (revision {change.after})")
    else:
        ctx.print(f"upgraded the schema from {change.before or 'nothing'} to {change.after}")
    return OK


async def db_downgrade(ctx: Context) -> int:
    change = await downgrade_database(ctx.engine, ctx.args.revision)
    if ctx.json:
        ctx.emit({"before": change.before, "after": change.after})
    elif change.before == change.after:
        ctx.print(f"the schema is already at revision {change.after}")
    else:
        ctx.print(f"downgraded the schema from {change.before} to {change.after}")
    return OK


async def db_current(ctx: Context) -> int:
    revision = await database_revision(ctx.engine)
    if ctx.json:
        ctx.emit({"revision": revision})
    else:
        ctx.print(revision or "no lakery revision (tables missing, or made by create_all)")
    return OK


def require_ui_extra() -> None:
    """Fail with what to install when the viewer's libraries are missing."""
    missing = [m for m in ("starlette", "uvicorn") if importlib.util.find_spec(m) is None]
    if missing:
        msg = (
            f"lakery serve needs {' and '.join(missing)}: install lakery's 'ui' extra from "
            "your checkout, e.g. pip install -e '/path/to/lakery[ui]'"
        )
        raise ConfigurationError(msg)


async def serve(ctx: Context) -> int:
    from sqlalchemy.ext.asyncio import async_sessionmaker

    from lakery.viewer import ViewerStore
    from lakery.viewer import create_app
    from lakery.viewer.serve import bind
    from lakery.viewer.serve import serve as run_viewer

    sock = bind(ctx.args.host, ctx.args.port)  # a taken port fails before any other work
    try:
        registry = await ctx.discover_storages()
        sessions = async_sessionmaker(ctx.engine, expire_on_commit=False)
        app = create_app(
            ViewerStore(sessions, registry), dagster_url=ctx.settings.dagster_url or None
        )
        await run_viewer(app, sock, quiet=ctx.args.quiet)
    finally:
        sock.close()
    return OK


COMMANDS = {
    "find": find,
    "show": show,
    "lineage": lineage,
    "delete": delete,
    "gc": gc,
    "verify": verify,
    "db upgrade": db_upgrade,
    "db downgrade": db_downgrade,
    "db current": db_current,
    "serve": serve,
}
