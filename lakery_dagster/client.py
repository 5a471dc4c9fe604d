"""`LakeryClient`: the async operations behind `LakeryResource`, run on the bridge loop.

A client holds a registry and a reference to a shared engine (see `lakery_dagster.engines`).
Every method is a coroutine meant to run on lakery's bridge loop; the resource calls them
through `lakery.common.sync.run_sync`. Each call uses a session of its own.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.asyncio import async_sessionmaker

from lakery.common.exceptions import ConfigurationError
from lakery.core.lineage import DerivedFrom
from lakery.core.lineage import Lineage
from lakery.core.lineage import find_lineage
from lakery.core.load import new_loader
from lakery.core.query import ClassFilter
from lakery.core.query import fetch_contents
from lakery.core.query import find_manifests
from lakery.core.query import get_manifests
from lakery.core.records import ContentRecord
from lakery.core.records import ManifestRecord
from lakery.core.registry import Registry
from lakery.core.save import new_saver
from lakery.core.storable import Storable
from lakery_dagster.engines import EngineSettings
from lakery_dagster.engines import acquire_engine
from lakery_dagster.engines import release_engine

__all__ = ["LakeryClient"]


class LakeryClient:
    """Save, load and find through one registry and one (shared) engine.

    Args:
        settings: which engine to use.
        registry: the components to save and load with.
        create_tables: create lakery's tables when opening, if missing.
    """

    def __init__(self, settings: EngineSettings, registry: Registry, *, create_tables: bool):
        self.settings = settings
        self.registry = registry
        self.create_tables = create_tables
        self.pid = os.getpid()
        self._engine: AsyncEngine | None = None
        self._sessions: async_sessionmaker[AsyncSession] | None = None

    @property
    def is_open(self) -> bool:
        return self._engine is not None

    async def open(self) -> None:
        """Take a reference to the engine, check the connection, create tables if asked."""
        if self._engine is None:
            engine = await acquire_engine(self.settings, create_tables=self.create_tables)
            self._engine = engine
            self._sessions = async_sessionmaker(engine, expire_on_commit=False)

    async def close(self) -> None:
        """Let go of the engine (it stays open, idle, for the next client; see `engines`)."""
        if self._engine is not None:
            self._engine = None
            self._sessions = None
            await release_engine(self.settings)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session of its own on the engine (opening the client first if needed)."""
        await self.open()
        if self._sessions is None:
            msg = "this lakery client is closed; open it (or set up the resource) first"
            raise ConfigurationError(msg)
        async with self._sessions() as session:
            yield session

    async def save_many(
        self,
        items: Sequence[tuple[Storable, Mapping[str, str] | None]],
        derived_from: Sequence[DerivedFrom | None] | None = None,
    ) -> list[ManifestRecord]:
        """Save `(obj, tags)` pairs in one transaction: all of them or none.

        `derived_from`: one lineage argument (or None) per item, as `Saver.save_soon`.
        """
        parents = list(derived_from) if derived_from is not None else [None] * len(items)
        async with self.session() as session:
            async with new_saver(session=session, registry=self.registry) as saver:
                futures = [
                    saver.save_soon(obj, tags=dict(tags or {}), derived_from=lineage)
                    for (obj, tags), lineage in zip(items, parents, strict=True)
                ]
        return [future.get() for future in futures]

    async def lineage(
        self, manifest_id: uuid.UUID, *, up: bool, down: bool, depth: int | None
    ) -> Lineage:
        """Ancestors and descendants of a manifest (see `lakery.core.find_lineage`)."""
        async with self.session() as session:
            return await find_lineage(session, manifest_id, up=up, down=down, depth=depth)

    async def load_many(
        self,
        records: Sequence[ManifestRecord],
        classes: Sequence[type[Storable] | None] | None = None,
        *,
        columns: Sequence[str] | None = None,
    ) -> list[Any]:
        """Load records in one bulk load; `classes` (one per record) are checked if given.

        `columns`: tables (parts written by a `ColumnarSerializer`) load only these columns.
        """
        wanted = list(classes) if classes is not None else [None] * len(records)
        subset = {} if columns is None else {"columns": list(columns)}
        async with self.session() as session:
            async with new_loader(session=session, registry=self.registry) as loader:
                futures = [
                    loader.load_soon(record, cls, **subset)
                    for record, cls in zip(records, wanted, strict=True)
                ]
        return [future.get() for future in futures]

    async def find(
        self,
        *,
        tags: Mapping[str, str] | None = None,
        cls: ClassFilter | None = None,
        since: datetime | None = None,
        before: datetime | None = None,
        limit: int | None = 100,
        with_contents: bool = True,
    ) -> list[ManifestRecord]:
        """Manifests matching every filter, newest first (see `lakery.core.find_manifests`)."""
        async with self.session() as session:
            return await find_manifests(
                session,
                tags=tags,
                cls=cls,
                since=since,
                before=before,
                limit=limit,
                with_contents=with_contents,
            )

    async def get_many(
        self, ids: Iterable[uuid.UUID | str], *, with_contents: bool = True
    ) -> dict[uuid.UUID, ManifestRecord]:
        """Manifests by id (missing ids are absent)."""
        async with self.session() as session:
            return await get_manifests(session, ids, with_contents=with_contents)

    async def contents(
        self, manifests: Iterable[ManifestRecord | uuid.UUID | str]
    ) -> dict[uuid.UUID, list[ContentRecord]]:
        """Content records by manifest id."""
        async with self.session() as session:
            return await fetch_contents(session, manifests)
