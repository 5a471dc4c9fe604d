"""`LakeryResource`: lakery's database, registry and storage as a Dagster resource."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from typing import TypeVar

from dagster import ConfigurableResource
from dagster import EnvVar
from dagster import InitResourceContext
from pydantic import Field
from pydantic import PrivateAttr
from pydantic import field_serializer

from lakery.builtin import FileStorage
from lakery.common.exceptions import ConfigurationError
from lakery.common.exceptions import NotFoundError
from lakery.common.sync import at_fork_in_child
from lakery.common.sync import run_async
from lakery.common.sync import run_sync
from lakery.config.engine import EngineOptions
from lakery.config.registry_modules import default_registry_modules
from lakery.config.storage_url import storage_from_url
from lakery.core.lineage import Lineage
from lakery.core.query import ClassFilter
from lakery.core.query import as_manifest_id
from lakery.core.records import ContentRecord
from lakery.core.records import ManifestRecord
from lakery.core.registry import Registry
from lakery.core.storable import Storable
from lakery_dagster.client import LakeryClient
from lakery_dagster.engines import EngineSettings
from lakery_dagster.engines import normalize_database_url
from lakery_dagster.engines import redact_url
from lakery_dagster.viewer_links import check_viewer_url

__all__ = ["DEFAULT_REGISTRY_MODULES", "LakeryResource"]

S = TypeVar("S", bound=Storable)


DEFAULT_REGISTRY_MODULES: list[str] = default_registry_modules()
"""``lakery.builtin`` plus the extras whose dependencies are installed."""


_REGISTRIES: dict[tuple[Any, ...], Registry] = {}
"""Registries by configuration, for this process (a forked child builds its own)."""
_REGISTRIES_LOCK = threading.Lock()
at_fork_in_child(_REGISTRIES.clear)


class LakeryResource(ConfigurableResource):
    """lakery's records database, registry and storage, for ops, assets and IO managers.

    One engine per process is shared by every resource with the same settings; it lives
    on lakery's bridge loop (one background event loop per process), so synchronous
    Dagster code never starts a loop per call. The resource takes it in
    `setup_for_execution` and lets go in `teardown_after_execution`; the engine stays
    open for the next run in the process (disposed at exit). Used outside a run, the
    resource opens its engine on first use; `close()` lets it go.

    Pass credentials through the environment, e.g. ``database_url=EnvVar("LAKERY_DB")``:
    the URL is never printed (errors and reprs show it with ``***`` for the password). S3
    credentials come from the standard AWS chain and are not part of the configuration.

    Example:
        ```python
        import dagster as dg
        from lakery.builtin import StorableValue
        from lakery_dagster import LakeryResource


        @dg.asset
        def report(lakery: LakeryResource) -> None:
            record = lakery.save(StorableValue({"rows": 3}), tags={"kind": "report"})
            assert lakery.load(record).value == {"rows": 3}
            assert lakery.find(tags={"kind": "report"}, limit=1)[0].id == record.id


        defs = dg.Definitions(
            assets=[report],
            resources={"lakery": LakeryResource(database_url="sqlite:///lakery-example.db")},
        )
        ```
    """

    database_url: str = Field(
        default="",
        description=(
            "SQLAlchemy URL of the records database, e.g. postgresql+asyncpg://user@host/db "
            "or sqlite+aiosqlite:///path/lakery.db (async drivers are added when missing). "
            "Empty: an SQLite file lakery.db in DAGSTER_HOME, else the working directory."
        ),
    )
    registry_modules: list[str] = Field(
        default=DEFAULT_REGISTRY_MODULES,
        description=(
            "Modules whose __all__ lists storables and components, as Registry(modules=...)."
        ),
    )
    storage_url: str = Field(
        default="",
        description=(
            "Where new content goes: file:///absolute/path, a relative path, or "
            "s3://bucket/prefix. Empty: the registry's default storage (the database)."
        ),
    )
    viewer_url: str = Field(
        default="",
        description=(
            "Base URL of a running `lakery serve` (e.g. http://127.0.0.1:8321): "
            "materializations then link to their manifest pages (lakery/url) and list their "
            "input manifests as links. Empty: no links."
        ),
    )
    s3_endpoint_url: str = Field(default="", description="Endpoint of an S3-compatible server.")
    s3_region: str = Field(default="", description="AWS region of the bucket.")
    create_tables: bool = Field(
        default=True, description="Create lakery's tables at setup when they are missing."
    )
    pool_size: int = Field(default=5, description="Connections kept open per process.")
    max_overflow: int = Field(default=10, description="Extra connections allowed under load.")
    pool_timeout: float = Field(default=30.0, description="Seconds to wait for a connection.")
    pool_recycle: int = Field(default=1800, description="Seconds after which to reconnect.")
    connect_timeout: float = Field(default=10.0, description="Seconds to wait to connect.")
    sqlite_busy_timeout: float = Field(
        default=60.0, description="Seconds an SQLite writer waits for another process's lock."
    )
    null_pool: bool = Field(
        default=False,
        description=(
            "Keep no PostgreSQL connection open between uses (NullPool): a step process "
            "then holds connections only while it queries. pool_size, max_overflow, "
            "pool_timeout and pool_recycle do not apply."
        ),
    )
    statement_cache_size: int | None = Field(
        default=None,
        description=(
            "asyncpg's prepared-statement cache per connection; None: the driver's default. "
            "Set 0 behind PgBouncer in transaction mode."
        ),
    )

    _client: LakeryClient | None = PrivateAttr(default=None)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    # -- lifecycle ----------------------------------------------------------------------

    def setup_for_execution(self, context: InitResourceContext) -> None:
        self.open()

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        self.close()

    def open(self) -> LakeryClient:
        """Build the registry and storage, connect (creating tables if asked); idempotent."""
        with self._lock:
            if self._client is None:
                check_viewer_url(self.viewer_url)
                client = LakeryClient(
                    self.engine_settings(),
                    self._shared_registry(),
                    create_tables=self.create_tables,
                )
                run_sync(client.open())
                self._client = client
            return self._client

    def close(self) -> None:
        """Let go of the engine.

        An engine no resource uses stays open for the next run in this process (at most
        a few; all are disposed at exit); `lakery_dagster.engines.dispose_idle_engines`
        closes them now.
        """
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            run_sync(client.close())

    @property
    def client(self) -> LakeryClient:
        """The async client on the bridge loop (opened on first use)."""
        client = self._client
        if client is not None and client.pid != os.getpid():
            self._client = client = None  # forked: the parent's engine is not ours to use
        return client or self.open()

    @property
    def registry(self) -> Registry:
        """The registry built from `registry_modules` and `storage_url`."""
        return self.client.registry

    def engine_settings(self) -> EngineSettings:
        """The engine settings this configuration resolves to."""
        options = EngineOptions(
            pool_size=self.pool_size,
            max_overflow=self.max_overflow,
            pool_timeout=self.pool_timeout,
            pool_recycle=self.pool_recycle,
            connect_timeout=self.connect_timeout,
            sqlite_busy_timeout=self.sqlite_busy_timeout,
            null_pool=self.null_pool,
            statement_cache_size=self.statement_cache_size,
        )
        return EngineSettings(url=normalize_database_url(self.database_url), options=options)

    def build_registry(self) -> Registry:
        """A new registry from `registry_modules`, with `storage_url` as default storage."""
        if isinstance(self.registry_modules, str):
            msg = "registry_modules must be a list of module paths, e.g. ['lakery.builtin']"
            raise ConfigurationError(msg)
        storage = storage_from_url(
            self.storage_url, s3_endpoint_url=self.s3_endpoint_url, s3_region=self.s3_region
        )
        registry = Registry(modules=list(self.registry_modules), default_storage=storage)
        if FileStorage.name not in registry.storages:
            # Files written under any root stay readable (their locator names the root),
            # whatever storage_url says now.
            reader = FileStorage(Path(os.environ.get("DAGSTER_HOME") or os.getcwd()) / "lakery")
            registry = Registry(registries=[registry], storages=[reader])
        return registry

    def _shared_registry(self) -> Registry:
        """`build_registry`, built once per process and configuration (runs reuse it)."""
        key = (
            tuple(self.registry_modules) if isinstance(self.registry_modules, list) else None,
            self.storage_url,
            self.s3_endpoint_url,
            self.s3_region,
            os.environ.get("DAGSTER_HOME") or os.getcwd(),
        )
        with _REGISTRIES_LOCK:
            registry = _REGISTRIES.get(key)
        if registry is None:
            registry = self.build_registry()
            with _REGISTRIES_LOCK:
                registry = _REGISTRIES.setdefault(key, registry)
        return registry

    # -- synchronous API ----------------------------------------------------------------

    def save(
        self,
        obj: Storable,
        *,
        tags: Mapping[str, str] | None = None,
        derived_from: Any = None,
    ) -> ManifestRecord:
        """Save one storable; return its manifest record.

        `derived_from` names the saved manifests `obj` was made from (lineage): records
        or ids (UUIDs or their string form), or labels mapped to them, as
        `lakery.core.Saver.save_soon`.
        """
        return self.save_many([obj], tags=tags, derived_from=derived_from)[0]

    def save_many(
        self,
        objs: Iterable[Storable],
        *,
        tags: Mapping[str, str] | Sequence[Mapping[str, str] | None] | None = None,
        derived_from: Any = None,
    ) -> list[ManifestRecord]:
        """Save storables in one transaction (all or none); return their records in order.

        `tags` is either one mapping for all of them or one mapping (or None) per object.
        `derived_from` is either one lineage argument for all of them (a mapping, or a
        sequence of records or ids) or one per object (each a sequence, mapping or None).
        """
        items = list(objs)
        parents = _per_object_parents(items, derived_from)
        return run_sync(self.client.save_many(_pair_tags(items, tags), parents))

    def lineage(
        self,
        manifest_id: ManifestRecord | uuid.UUID | str,
        *,
        up: bool = True,
        down: bool = True,
        depth: int | None = 3,
    ) -> Lineage:
        """The ancestors (`up`) and descendants (`down`) of a manifest, `depth` levels each
        way (None: all); see `lakery.core.find_lineage`."""
        root = manifest_id.id if isinstance(manifest_id, ManifestRecord) else manifest_id
        return run_sync(self.client.lineage(as_manifest_id(root), up=up, down=down, depth=depth))

    def load(self, record: ManifestRecord | uuid.UUID | str, cls: type[S] | None = None) -> S:
        """Load one saved object from its record or manifest id."""
        return self.load_many([record], cls)[0]

    def load_many(
        self,
        records: Iterable[ManifestRecord | uuid.UUID | str],
        cls: type[S] | None = None,
    ) -> list[S]:
        """Load objects in one bulk load, in the order of `records` (records or ids)."""
        return run_sync(_load_many(self.client, list(records), cls))

    def find(
        self,
        *,
        tags: Mapping[str, str] | None = None,
        cls: ClassFilter | None = None,
        since: datetime | None = None,
        before: datetime | None = None,
        limit: int | None = 100,
    ) -> list[ManifestRecord]:
        """Manifests with all of `tags`, of class `cls`, created in ``[since, before)``,
        newest first, at most `limit` (records carry their content records)."""
        return run_sync(
            self.client.find(tags=tags, cls=cls, since=since, before=before, limit=limit)
        )

    def get(self, manifest_id: uuid.UUID | str) -> ManifestRecord:
        """The manifest record with this id (with its content records)."""
        found = run_sync(self.client.get_many([manifest_id]))
        if not found:
            raise NotFoundError(f"no lakery manifest has the id {manifest_id}")
        return next(iter(found.values()))

    def contents(
        self, manifests: Iterable[ManifestRecord | uuid.UUID | str]
    ) -> dict[uuid.UUID, list[ContentRecord]]:
        """Content records by manifest id."""
        return run_sync(self.client.contents(list(manifests)))

    # -- async API, for async assets ------------------------------------------------------

    async def save_async(
        self, obj: Storable, *, tags: Mapping[str, str] | None = None, derived_from: Any = None
    ) -> ManifestRecord:
        """`save` for async code on any event loop (runs on the bridge loop)."""
        client = self.client
        parents = [_with_uuids(derived_from)]
        return (await run_async(client.save_many([(obj, tags)], parents)))[0]

    async def load_async(
        self, record: ManifestRecord | uuid.UUID | str, cls: type[S] | None = None
    ) -> S:
        """`load` for async code on any event loop (runs on the bridge loop)."""
        client = self.client
        return (await run_async(_load_many(client, [record], cls)))[0]

    def _with_updated_values(
        self, values: Mapping[str, Any] | None = None, *args: Any, **kw: Any
    ) -> Any:
        """A copy of this resource with `values` (Dagster's hook, not public API).

        Dagster makes several copies of every resource for each run, each one re-deriving
        the config schema from the class (about 3 ms for this one, most of a small run's
        resource setup). When nothing changes, a plain copy is the same resource.
        """
        if args or kw or not self._has_values(values or {}):
            return super()._with_updated_values(values, *args, **kw)
        copy = self.model_copy()
        copy._client = None  # a copy opens (and closes) its own reference to the engine
        copy._lock = threading.Lock()
        return copy

    def _has_values(self, values: Mapping[str, Any]) -> bool:
        fields = type(self).model_fields
        for key, value in values.items():
            if key not in fields or type(value) is not type(getattr(self, key)):
                return False
            if getattr(self, key) != value:
                return False
        return True

    @field_serializer("database_url")
    def _dump_database_url(self, url: str) -> str:
        """`model_dump()` and `model_dump_json()` hide the password like the repr; the
        attribute itself keeps the real URL."""
        if not url or isinstance(url, EnvVar):  # an EnvVar holds the variable's name
            return url.env_var_name if isinstance(url, EnvVar) else url
        return redact_url(url)

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        for name, value in super().__repr_args__():
            if name == "database_url" and isinstance(value, str) and value:
                value = redact_url(value)
            yield name, value


def _pair_tags(
    items: list[Storable],
    tags: Mapping[str, str] | Sequence[Mapping[str, str] | None] | None,
) -> list[tuple[Storable, Mapping[str, str] | None]]:
    if tags is None or isinstance(tags, Mapping):
        return [(obj, tags) for obj in items]
    per_item = list(tags)
    if len(per_item) != len(items):
        msg = f"got {len(per_item)} tag mappings for {len(items)} objects; give one per object"
        raise ConfigurationError(msg)
    return list(zip(items, per_item, strict=True))


def _per_object_parents(items: list[Storable], derived_from: Any) -> list[Any]:
    """`derived_from` of `save_many` as one lineage argument per object."""
    if derived_from is None:
        return [None] * len(items)
    if isinstance(derived_from, Iterable) and not isinstance(derived_from, Mapping | str | bytes):
        derived_from = list(derived_from)
    shared = not isinstance(derived_from, list) or all(
        isinstance(p, ManifestRecord | uuid.UUID | str) for p in derived_from
    )
    if shared:
        return [_with_uuids(derived_from)] * len(items)
    per_item = list(derived_from)
    if len(per_item) != len(items):
        msg = (
            f"got {len(per_item)} derived_from entries for {len(items)} objects; give one "
            "per object, or one sequence of parent records or ids for all of them"
        )
        raise ConfigurationError(msg)
    return [_with_uuids(p) for p in per_item]


def _with_uuids(derived_from: Any) -> Any:
    """Parent ids given as strings turned into UUIDs (lakery.core takes UUIDs only)."""
    if derived_from is None or isinstance(derived_from, str | bytes):
        return derived_from

    def parent(value: Any) -> Any:
        return as_manifest_id(value) if isinstance(value, str) else value

    def parents(value: Any) -> Any:
        if isinstance(value, ManifestRecord | uuid.UUID | str):
            return parent(value)
        return [parent(p) for p in value] if isinstance(value, Iterable) else value

    if isinstance(derived_from, Mapping):
        return {label: parents(value) for label, value in derived_from.items()}
    return [parent(p) for p in derived_from] if isinstance(derived_from, Iterable) else derived_from


async def _load_many(
    client: LakeryClient, records: list[ManifestRecord | uuid.UUID | str], cls: type[S] | None
) -> list[S]:
    ids = [r for r in records if not isinstance(r, ManifestRecord)]
    found = await client.get_many(ids) if ids else {}
    resolved: list[ManifestRecord] = []
    for item in records:
        if isinstance(item, ManifestRecord):
            resolved.append(item)
            continue
        record = found.get(item if isinstance(item, uuid.UUID) else uuid.UUID(str(item)))
        if record is None:
            raise NotFoundError(f"no lakery manifest has the id {item}")
        resolved.append(record)
    return await client.load_many(resolved, [cls] * len(resolved))
