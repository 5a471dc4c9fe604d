"""Preloaded by the forkserver of `test_multiprocess_forkserver_preload`: opens lakery's
engine (and so the bridge loop and a pooled connection) in the forkserver process, before
it forks the step processes. They must not use any of it (`lakery.common.sync`)."""

from __future__ import annotations

import os

from lakery_dagster import LakeryResource
from lakery_dagster.engines import _ENGINES

__all__ = ["PRELOADED_PID"]

_lakery = LakeryResource(database_url=os.environ["LAKERY_TEST_MP_DATABASE_URL"])
_lakery.find(tags={"preload": "yes"}, limit=1)  # connects on the bridge loop, pool kept
assert _ENGINES, "the preloaded engine is open"
PRELOADED_PID = os.getpid()
"""The forkserver's pid (the step processes are its children)."""
