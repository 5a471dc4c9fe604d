"""The sync bridge (lakery.common.sync): one loop per process, reset after fork."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from lakery.common.sync import SyncBridgeError
from lakery.common.sync import get_loop
from lakery.common.sync import in_bridge_loop
from lakery.common.sync import run_async
from lakery.common.sync import run_sync


async def _running_loop() -> asyncio.AbstractEventLoop:
    return asyncio.get_running_loop()


def test_one_loop_for_every_call_and_thread() -> None:
    loop = run_sync(_running_loop())
    assert loop is get_loop() and run_sync(_running_loop()) is loop
    seen: list[asyncio.AbstractEventLoop] = []
    threads = [
        threading.Thread(target=lambda: seen.append(run_sync(_running_loop()))) for _ in "ab"
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == [loop, loop]
    assert not in_bridge_loop()


def test_loop_bound_engine_survives_many_calls(tmp_path: Path) -> None:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")

    async def query() -> int:
        async with engine.connect() as connection:
            return (await connection.execute(text("SELECT 41 + 1"))).scalar_one()

    assert [run_sync(query()) for _ in range(3)] == [42, 42, 42]  # pooled connection reused
    run_sync(engine.dispose())


def test_errors_and_timeouts_propagate() -> None:
    async def fail() -> None:
        raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        run_sync(fail())
    with pytest.raises(TimeoutError, match=r"0\.05 seconds"):
        run_sync(asyncio.sleep(5), timeout=0.05)


def test_refuses_to_be_called_from_its_own_loop() -> None:
    async def nested() -> None:
        assert in_bridge_loop()
        run_sync(asyncio.sleep(0))

    with pytest.raises(SyncBridgeError, match="would deadlock"):
        run_sync(nested())


def test_run_async_from_another_loop() -> None:
    bridge = get_loop()

    async def caller() -> bool:
        here = asyncio.get_running_loop()
        there = await run_async(_running_loop())
        return there is bridge and here is not bridge

    assert asyncio.run(caller())


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_child_gets_its_own_loop_after_fork() -> None:
    parent_loop = run_sync(_running_loop())
    pid = os.fork()
    if pid == 0:  # the child: the parent's loop thread does not exist here
        code = 1
        try:
            child_loop = run_sync(_running_loop(), timeout=10)
            code = 0 if child_loop is not parent_loop and child_loop is get_loop() else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert run_sync(_running_loop()) is parent_loop
