"""Bytes kept in the records database itself (the embedded default storage)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from collections.abc import Mapping
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Insert
from sqlalchemy import String
from sqlalchemy import any_
from sqlalchemy import bindparam
from sqlalchemy import delete
from sqlalchemy import exists
from sqlalchemy import insert
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from lakery.common.exceptions import ConfigurationError
from lakery.common.exceptions import NotFoundError
from lakery.core.records import BlobRecord
from lakery.core.records import ContentRecord
from lakery.core.records import utc_now
from lakery.core.serializer import Buffer
from lakery.core.session import add_before_commit
from lakery.core.session import current_session
from lakery.core.session import session_lock
from lakery.core.storage import BlobInfo
from lakery.core.storage import Locator
from lakery.core.storage import Storage
from lakery.core.storage import ValueWrite

__all__ = ["DatabaseStorage"]

_HOOK_KEY = "lakery.database_storage.blobs"
_INSERT_BATCH = 500
_SELECT_BATCH = 500
_LIST_PAGE = 1000


class DatabaseStorage(Storage):
    """Bytes in the ``lakery_blobs`` table of the database that holds the records.

    Needs no configuration and keeps data wherever the records are, so any process that
    can read the records can read the data. Blobs are inserted in the saver's own
    transaction, so they appear together with the records or not at all. Best for small
    and medium parts; put large arrays and streams in file or object storage.
    """

    name = "lakery.database@v1"

    async def put_value(
        self, data: Sequence[Buffer], *, size: int, sha256: str, tags: Mapping[str, str]
    ) -> Locator:
        pending = add_before_commit(current_session(), _HOOK_KEY, _PendingBlobs)
        pending.add(sha256, size, data)
        return {"sha256": sha256}

    async def put_values(self, writes: Sequence[ValueWrite]) -> list[Locator]:
        pending = add_before_commit(current_session(), _HOOK_KEY, _PendingBlobs)
        for write in writes:
            pending.add(write.sha256, write.size, write.data)
        return [{"sha256": write.sha256} for write in writes]

    async def get_value(self, locator: Locator) -> Buffer:
        [result] = await self.get_values([locator])
        if isinstance(result, NotFoundError):
            raise result
        return result

    async def get_values(self, locators: Sequence[Locator]) -> list[Buffer | NotFoundError]:
        session = current_session()
        wanted = [locator.get("sha256") for locator in locators]
        found: dict[str, bytes] = {}
        unique = list({w for w in wanted if isinstance(w, str)})
        table = BlobRecord.__table__
        postgresql = session.get_bind().dialect.name == "postgresql"
        async with session_lock(session):
            for start in range(0, len(unique), _SELECT_BATCH):
                chunk = unique[start : start + _SELECT_BATCH]
                # Table columns, not ORM attributes: plain rows, no ORM result processing.
                # PostgreSQL gets the hashes as one array parameter (``= ANY(...)``) rather
                # than one parameter each.
                wanted_here = (
                    table.c.sha256 == any_(bindparam("wanted", chunk, type_=ARRAY(String)))
                    if postgresql
                    else table.c.sha256.in_(chunk)
                )
                query = select(table.c.sha256, table.c.data).where(wanted_here)
                found.update([(sha256, data) for sha256, data in await session.execute(query)])
        return [
            found[w] if w in found else NotFoundError(f"no blob {w} in lakery_blobs", locator=loc)
            for w, loc in zip(wanted, locators, strict=True)
        ]

    async def delete(self, locator: Locator) -> None:
        session = current_session()
        async with session_lock(session):
            await session.execute(delete(BlobRecord).where(BlobRecord.sha256 == locator["sha256"]))

    async def list_blobs(self) -> AsyncIterator[BlobInfo]:
        """Every row of ``lakery_blobs`` (without its bytes), in pages ordered by sha256,
        read through the current session (garbage collection makes its session current)."""
        session = current_session()
        after = ""
        while True:
            query = (
                select(BlobRecord.sha256, BlobRecord.size, BlobRecord.created_at)
                .where(BlobRecord.sha256 > after)
                .order_by(BlobRecord.sha256)
                .limit(_LIST_PAGE)
            )
            async with session_lock(session):
                rows = (await session.execute(query)).all()
            for row in rows:
                yield BlobInfo({"sha256": row.sha256}, row.sha256, row.size, row.created_at)
            if len(rows) < _LIST_PAGE:
                return
            after = rows[-1].sha256

    async def delete_blob(self, blob: BlobInfo, *, older_than: datetime) -> bool:
        """Delete a blob's row in one statement, only if it is still older than `older_than`
        and no content record has its hash.

        A save that reuses the blob refreshes its ``created_at`` in the save's transaction
        (a row lock on PostgreSQL, the write lock on SQLite), so this statement either runs
        before that save touches the row (the save then inserts it anew) or after it
        commits (and sees it fresh and referenced). The caller commits.
        """
        session = current_session()
        referenced = exists().where(ContentRecord.content_hash == BlobRecord.sha256)
        statement = delete(BlobRecord).where(
            BlobRecord.sha256 == blob.sha256,
            BlobRecord.created_at < older_than,
            ~referenced,
        )
        async with session_lock(session):
            result = await session.execute(statement)
        return bool(result.rowcount)  # type: ignore[attr-defined]  # a DML's CursorResult


class _PendingBlobs:
    """Blobs of one saver, inserted in its transaction just before its rows."""

    def __init__(self) -> None:
        self.blobs: dict[str, dict[str, Any]] = {}

    def add(self, sha256: str, size: int, data: Sequence[Buffer]) -> None:
        if sha256 not in self.blobs:
            joined = data[0] if len(data) == 1 and isinstance(data[0], bytes) else b"".join(data)
            self.blobs[sha256] = {"sha256": sha256, "size": size, "data": joined}

    async def __call__(self, session: AsyncSession) -> None:
        # In sha256 order: concurrent saves of shared content then lock existing rows in
        # the same order, so they wait for each other instead of deadlocking (PostgreSQL).
        rows = sorted(self.blobs.values(), key=lambda row: row["sha256"])
        now = utc_now()
        for row in rows:
            row["created_at"] = now
        statement = _insert_ignoring_duplicates(session)
        for start in range(0, len(rows), _INSERT_BATCH):
            await session.execute(statement, rows[start : start + _INSERT_BATCH])


def _insert_ignoring_duplicates(session: AsyncSession) -> Insert:
    """Insert blobs; one that exists already only gets a fresh `created_at`, which locks it
    and keeps garbage collection (which spares recent blobs) away until the save commits."""
    dialect = session.get_bind().dialect.name
    if dialect in {"postgresql", "sqlite"}:
        insert_ = postgresql_insert if dialect == "postgresql" else sqlite_insert
        statement = insert_(BlobRecord.__table__)
        return statement.on_conflict_do_update(
            index_elements=["sha256"], set_={"created_at": statement.excluded.created_at}
        )
    if dialect in {"mysql", "mariadb"}:
        return insert(BlobRecord.__table__).prefix_with("IGNORE")
    msg = f"DatabaseStorage supports SQLite, PostgreSQL and MySQL/MariaDB, not {dialect!r}"
    raise ConfigurationError(msg)
