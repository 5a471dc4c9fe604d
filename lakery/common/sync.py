"""The one bridge from synchronous code (Dagster IO managers, scripts) to lakery's async core.

Each process has one long-lived event loop, run by a daemon thread started on first use.
Synchronous callers hand it coroutines with `run_sync`; async code running on some other
loop can await work on it with `run_async`. Everything that is bound to a loop — SQLAlchemy
async engines and their connection pools, S3 clients — is created on this loop and reused
for the life of the process, which a fresh `asyncio.run` per call would break.

After `os.fork()` the child starts with no loop (the parent's thread does not exist there)
and makes its own on first use. Calling `run_sync` from the bridge loop itself would
deadlock, so it raises `SyncBridgeError` instead.

```python
import asyncio
from lakery.common.sync import run_sync


async def answer() -> int:
    await asyncio.sleep(0)
    return 42


assert run_sync(answer()) == 42
```
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import os
import threading
from collections.abc import Callable
from collections.abc import Coroutine
from typing import Any
from typing import TypeVar

from lakery.common.exceptions import LakeryError

__all__ = [
    "SyncBridgeError",
    "at_exit",
    "at_fork_in_child",
    "get_loop",
    "in_bridge_loop",
    "run_async",
    "run_sync",
]

T = TypeVar("T")


class SyncBridgeError(LakeryError, RuntimeError):
    """A synchronous lakery call was made from the bridge's own event loop (it would deadlock)."""


class _Bridge:
    """The loop and the thread that runs it, for one process."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread: threading.Thread | None = None
        self.pid = os.getpid()

    def get_loop(self) -> asyncio.AbstractEventLoop:
        loop = self.loop
        if loop is not None and self.thread is not None and self.thread.is_alive():
            return loop
        with self.lock:
            if self.loop is None or self.thread is None or not self.thread.is_alive():
                started = threading.Event()
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=_serve, args=(loop, started), name="lakery-sync-loop", daemon=True
                )
                thread.start()
                started.wait()
                self.loop, self.thread = loop, thread
            return self.loop


def _serve(loop: asyncio.AbstractEventLoop, started: threading.Event) -> None:
    asyncio.set_event_loop(loop)
    loop.call_soon(started.set)
    try:
        loop.run_forever()
    finally:
        loop.close()


_BRIDGE = _Bridge()
_FORK_HOOKS: list[Callable[[], None]] = []


def _reset_after_fork() -> None:
    global _BRIDGE
    _BRIDGE = _Bridge()  # the parent's loop thread does not exist in the child
    for hook in list(_FORK_HOOKS):
        hook()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


def at_fork_in_child(hook: Callable[[], None]) -> None:
    """Call `hook()` in a forked child, after the bridge is reset (to drop loop-bound state)."""
    _FORK_HOOKS.append(hook)


def get_loop() -> asyncio.AbstractEventLoop:
    """The bridge loop of this process, started on first use."""
    return _BRIDGE.get_loop()


def in_bridge_loop() -> bool:
    """Whether the calling code runs on the bridge loop."""
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        return False
    return running is _BRIDGE.loop


def run_sync(coroutine: Coroutine[Any, Any, T], *, timeout: float | None = None) -> T:
    """Run `coroutine` on the bridge loop and wait for its result.

    May be called from any thread, including one that runs another event loop (that loop
    is blocked meanwhile). Raises `SyncBridgeError` when called from the bridge loop itself,
    and `TimeoutError` (after cancelling the work) when `timeout` seconds pass.
    """
    if in_bridge_loop():
        coroutine.close()
        msg = (
            "a synchronous lakery call was made from lakery's own event loop, which would "
            "deadlock; in async code await the async API (save_one, new_loader, ...) instead"
        )
        raise SyncBridgeError(msg)
    future = asyncio.run_coroutine_threadsafe(coroutine, get_loop())
    try:
        return future.result(timeout)
    except concurrent.futures.TimeoutError:
        future.cancel()
        msg = f"lakery call did not finish within {timeout} seconds"
        raise TimeoutError(msg) from None
    except BaseException:
        if not future.done():
            future.cancel()  # e.g. KeyboardInterrupt: do not leave the work running
        raise


async def run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    """Await `coroutine` on the bridge loop from code running on any event loop."""
    if in_bridge_loop():
        return await coroutine
    return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coroutine, get_loop()))


_EXIT_HOOKS: list[Callable[[], Coroutine[Any, Any, None]]] = []


def at_exit(hook: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run the coroutine `hook()` on the bridge loop when the process exits (e.g. to dispose
    engines so that database connections are closed cleanly)."""
    _EXIT_HOOKS.append(hook)


@atexit.register
def _run_exit_hooks() -> None:
    bridge = _BRIDGE
    if bridge.loop is None or bridge.thread is None or not bridge.thread.is_alive():
        return
    if bridge.pid != os.getpid():
        return
    for hook in _EXIT_HOOKS:
        future = asyncio.run_coroutine_threadsafe(hook(), bridge.loop)
        with contextlib.suppress(Exception):  # best effort at exit
            future.result(timeout=10)
    bridge.loop.call_soon_threadsafe(bridge.loop.stop)
    bridge.thread.join(timeout=5)
