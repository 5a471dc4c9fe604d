"""The storage conformance suite on every built-in storage, and FileStorage specifics."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.ext.asyncio import AsyncSession

from lakery import NotFoundError
from lakery import StorageError
from lakery.builtin import DatabaseStorage
from lakery.builtin import FileStorage
from lakery.builtin import MemoryStorage
from lakery.core.session import run_before_commit
from lakery.core.session import use_session
from lakery.core.storage import Storage
from lakery.core.storage import ValueWrite
from lakery.testing.storage import StorageConformance


class TestMemoryStorage(StorageConformance):
    @pytest.fixture
    def storage(self) -> MemoryStorage:
        return MemoryStorage()


class TestFileStorage(StorageConformance):
    @pytest.fixture
    def storage(self, tmp_path: Path) -> FileStorage:
        return FileStorage(tmp_path / "blobs")

    async def leftovers(self, storage: Storage) -> list[str]:
        assert isinstance(storage, FileStorage)
        return [str(p) for p in storage.root.rglob("*.tmp")]


class DatabaseStorageSetup:
    """A `DatabaseStorage` on the parametrized database, with its session current; writes
    become visible at `commit`, as they do when a save commits."""

    @pytest.fixture
    async def storage(self, engine: AsyncEngine) -> AsyncIterator[DatabaseStorage]:
        async with AsyncSession(engine) as session:
            self.session = session
            with use_session(session):
                yield DatabaseStorage()

    async def commit(self, storage: Storage) -> None:
        await run_before_commit(self.session)
        await self.session.commit()


@pytest.mark.usefixtures("database_url")  # puts its SQLite/PostgreSQL params in the closure
class TestDatabaseStorage(DatabaseStorageSetup, StorageConformance):
    pass


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def test_file_storage_layout_and_locator(tmp_path: Path) -> None:
    storage = FileStorage(tmp_path / "blobs")
    data = b"layout"
    locator = await storage.put_value([data], size=len(data), sha256=_sha(data), tags={})
    digest = _sha(data)
    assert locator == {
        "root": (tmp_path / "blobs").resolve().as_posix(),
        "key": f"{digest[:2]}/{digest}",
    }
    assert (tmp_path / "blobs" / locator["key"]).read_bytes() == data
    assert storage.uri(locator) == (tmp_path / "blobs" / locator["key"]).resolve().as_uri()


@pytest.mark.parametrize(
    "key",
    [
        "../../etc/passwd",
        "/etc/passwd",
        "ab/cd/../../../../etc/passwd",
        "ab/" + "0" * 63 + "/",
        "00/" + "0" * 63,
        "AB/" + "A" * 64,
        "ab/cd/" + "0" * 64,
        "",
        None,
        "00/" + "0" * 64 + "/../x",
    ],
)
async def test_file_storage_rejects_path_traversal(tmp_path: Path, key: object) -> None:
    storage = FileStorage(tmp_path)
    with pytest.raises(StorageError, match="invalid FileStorage locator"):
        await storage.get_value({"root": tmp_path.as_posix(), "key": key})
    with pytest.raises(StorageError):
        await storage.delete({"root": tmp_path.as_posix(), "key": key})


async def test_file_storage_reads_only_under_its_own_root(tmp_path: Path) -> None:
    old = FileStorage(tmp_path / "old")
    locator = await old.put_value([b"kept"], size=4, sha256=_sha(b"kept"), tags={})
    new = FileStorage(tmp_path / "new")
    # The file exists under the root the locator names, but that root is not new's.
    with pytest.raises(NotFoundError, match=r"reads only under its own root") as caught:
        await new.get_value(locator)
    assert f"FileStorage(root={(tmp_path / 'old').as_posix()!r})" in str(caught.value)
    # The data moved along with the configuration: found under the new root.
    (tmp_path / "old").rename(tmp_path / "new")
    assert bytes(await new.get_value(locator)) == b"kept"


async def test_file_storage_missing_file(tmp_path: Path) -> None:
    storage = FileStorage(tmp_path)
    digest = _sha(b"never written")
    locator = {"root": tmp_path.as_posix(), "key": f"{digest[:2]}/{digest}"}
    with pytest.raises(NotFoundError, match="no file at"):
        await storage.get_value(locator)


async def test_file_storage_without_fsync_still_atomic(tmp_path: Path) -> None:
    storage = FileStorage(tmp_path, fsync=False)
    locator = await storage.put_value([b"fast"], size=4, sha256=_sha(b"fast"), tags={})
    assert bytes(await storage.get_value(locator)) == b"fast"
    assert not list(tmp_path.rglob("*.tmp"))


async def test_file_storage_root_created_lazily(tmp_path: Path) -> None:
    root = tmp_path / "a" / "b"
    storage = FileStorage(root)
    assert not root.exists()
    await storage.put_value([b"x"], size=1, sha256=_sha(b"x"), tags={})
    assert root.is_dir()
    assert os.listdir(root)


@pytest.mark.parametrize("size", [0, 1, 4096, (1 << 20) - 1, 1 << 20, (1 << 20) + 1, 3 << 20])
async def test_file_storage_reads_files_of_any_size(tmp_path: Path, size: int) -> None:
    storage = FileStorage(tmp_path)
    data = os.urandom(size)
    locator = await storage.put_value([data], size=size, sha256=_sha(data), tags={})
    [read] = await storage.get_values([locator])
    assert bytes(read) == data  # type: ignore[arg-type]
    assert bytes(await storage.get_value(locator)) == data


async def test_file_storage_reads_all_of_a_file_that_changed_size(tmp_path: Path) -> None:
    """Reads return what the file holds, whatever its size was recorded as: checking it is
    the loader's job."""
    storage = FileStorage(tmp_path)
    small, large = b"small", os.urandom(3 << 20)
    locators = [
        await storage.put_value([data], size=len(data), sha256=_sha(data), tags={})
        for data in (small, large)
    ]
    for locator, replacement in zip(locators, (small * 1000, large[:10]), strict=True):
        (tmp_path / locator["key"]).write_bytes(replacement)
    assert [bytes(b) for b in await storage.get_values(locators)] == [small * 1000, large[:10]]  # type: ignore[arg-type]


def test_file_storage_temporary_names_are_unique_and_recognized_as_leftovers() -> None:
    from lakery.builtin import file_durability
    from lakery.builtin import file_maintenance

    names = {f".{'0' * 64}.{file_durability._temp_id()}.tmp" for _ in range(1000)}
    assert len(names) == 1000
    assert all(file_maintenance._LEFTOVER_NAME.match(name) for name in names)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child names its files differently from the parent
        os.write(write, file_durability._temp_id().encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 100).decode()
    os.close(read)
    os.close(write)
    assert child[:24] != file_durability._temp_id()[:24]


@pytest.mark.parametrize(
    ("path", "count"),
    [("one file, outside a save", 1), ("a small save", 3), ("a large save", 20)],
)
async def test_file_storage_rewrites_a_damaged_file_instead_of_reusing_it(
    tmp_path: Path, path: str, count: int
) -> None:
    """A file at a content address whose bytes no longer match its name (bit rot, a
    stray edit) is written anew by the next save of that content, not reused; an intact
    one is reused (same inode) and marked as just written."""
    storage = FileStorage(tmp_path / "files")
    datas = [f"value {i} ".encode() * 50 for i in range(count)]
    writes = [
        ValueWrite([d], size=len(d), sha256=hashlib.sha256(d).hexdigest(), tags={}) for d in datas
    ]
    locators = await storage.put_values(writes)
    files = [storage.root / locator["key"] for locator in locators]
    damaged, intact = files[0], files[-1]
    damaged.write_bytes(b"X" * len(datas[0]))  # same size, other bytes
    os.utime(intact, (1_000_000_000, 1_000_000_000))
    inode = intact.stat().st_ino

    async def save_again() -> None:
        if path == "one file, outside a save":
            await storage.put_value(
                [datas[0]], size=len(datas[0]), sha256=writes[0].sha256, tags={}
            )
            return
        session = AsyncSession()
        with use_session(session):
            await storage.put_values(writes)
            await run_before_commit(session)

    await save_again()
    assert damaged.read_bytes() == datas[0]
    assert bytes(await storage.get_value(locators[0])) == datas[0]
    if count > 1:
        assert intact.stat().st_ino == inode
        assert intact.stat().st_mtime > 1_000_000_000
    assert not [p for p in storage.root.rglob("*") if p.name.endswith(".tmp")]
