"""Pausing Python's cyclic garbage collector during the bulk steps of a save or load.

Bulk loads, and the unpacking and row-building of bulk saves, allocate many small objects
(parts, records, rows, rebuilt objects). The growing heap makes the collector run full
collections again and again, which can take a third of a load's time. These steps are
bounded (a batch of objects to unpack and serialize, the rows of a saver, the records of a
loader; no stream is consumed in them), so the collector is paused for their duration and
resumed after; it is left alone if something else had already disabled it. A loader
drops its own bookkeeping before the collector resumes, so that the first collection
after it only looks at what the loaded objects hold.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["gc_paused"]

_lock = threading.Lock()
_depth = 0
_paused_by_us = False


@contextmanager
def gc_paused() -> Iterator[None]:
    """Disable the cyclic garbage collector in the block (nested and concurrent use is safe)."""
    global _depth, _paused_by_us
    with _lock:
        if _depth == 0 and gc.isenabled():
            gc.disable()
            _paused_by_us = True
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _paused_by_us:
                gc.enable()
                _paused_by_us = False
