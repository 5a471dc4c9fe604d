"""Turning `LakeryResource.storage_url` into the registry's default storage.

The parser lives in `lakery.core.storage_url`, shared with the `lakery` command line.
"""

from __future__ import annotations

from lakery.core.storage_url import storage_from_url

__all__ = ["storage_from_url"]
