"""A small store for the viewer's tests and screenshots: one manifest per preview kind.

Also a registry module (``--registry-module tests.viewer.demo``): its storable class and
serializers, so that a ``lakery serve`` subprocess names the class.

Manifests derived from others record their parents with ``derived_from`` (labelled by
input name, as `lakery_dagster` does), which the lineage graph shows.
"""

from __future__ import annotations

import struct
import uuid
import zlib
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from sqlalchemy import update
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlalchemy.ext.asyncio import create_async_engine

from lakery import BaseRecord
from lakery import ManifestRecord
from lakery import Registry
from lakery import Serializer
from lakery import save_one
from lakery.builtin import FileStorage
from lakery.builtin import StorableDataclass
from lakery.builtin import StorableValue

__all__ = ["Experiment", "PlainTextSerializer", "PngSerializer"]

HOSTILE = '<script>alert("xss")</script><img src=x onerror=alert(1)>'
"""Text that must reach pages escaped, never as markup."""


class PngSerializer(Serializer[bytes]):
    """PNG bytes as they are (content type image/png)."""

    name = "test.viewer.png@v1"
    types = ()
    content_type = "image/png"

    def serialize(self, value: bytes) -> bytes:
        return bytes(value)

    def deserialize(self, data: Any) -> bytes:
        return bytes(data)


class PlainTextSerializer(Serializer[str]):
    """A str as UTF-8 text/plain."""

    name = "test.viewer.text@v1"
    types = ()
    content_type = "text/plain"
    content_encoding = "utf-8"

    def serialize(self, value: str) -> bytes:
        return value.encode()

    def deserialize(self, data: Any) -> str:
        return bytes(data).decode()


@dataclass
class Experiment(StorableDataclass, class_id="7e57f1e3e7e57f1e3e7e57f1e3e7e57f"):
    """A dataclass storable: one part per field."""

    description: str
    parameters: dict[str, float]


def png_bytes(width: int = 24, height: int = 16) -> bytes:
    """A small RGB gradient as a valid PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(
        b"\x00" + b"".join(bytes([x * 10 % 256, y * 15 % 256, 160]) for x in range(width))
        for y in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def make_registry(files_root: Path) -> Registry:
    """Built-ins, NumPy, Arrow, this module, and the "files" storage as the default."""
    files = FileStorage(files_root, name="files")
    return Registry(
        modules=["lakery.builtin", "lakery.extra.numpy", "lakery.extra.arrow", __name__],
        storages=[files],
        default_storage=files,
    )


@dataclass
class Demo:
    """The ids of the demo manifests, by name."""

    ids: dict[str, uuid.UUID]


async def fill_store(database_url: str, files_root: Path, *, create: bool = True) -> Demo:
    """Save the demo manifests (tables made first unless `create` is false)."""
    engine = create_async_engine(database_url)
    try:
        if create:
            await BaseRecord.create_all(engine)
        sessions = async_sessionmaker(engine, expire_on_commit=False)
        registry = make_registry(files_root)
        ids: dict[str, uuid.UUID] = {}

        async def save(
            name: str,
            obj: Any,
            tags: dict[str, str],
            age: timedelta,
            derived_from: dict[str, uuid.UUID] | None = None,
        ) -> None:
            async with sessions() as session:
                record = await save_one(
                    obj, session=session, registry=registry, tags=tags, derived_from=derived_from
                )
                # spread the creation times so that the order and time filters are testable
                created = datetime.now(UTC) - age
                await session.execute(
                    update(ManifestRecord)
                    .where(ManifestRecord.id == record.id)
                    .values(created_at=created)
                )
                await session.commit()
            ids[name] = record.id

        hours = timedelta(hours=1)
        await save(
            "raw",
            StorableValue(np.sin(np.linspace(0, 12, 400))),
            {"project": "alpha", "stage": "raw", "dagster/run_id": "run-1"},
            10 * hours,
        )
        await save(
            "grid",
            StorableValue(np.outer(np.arange(12.0), np.arange(16.0))),
            {"project": "alpha", "stage": "raw"},
            9 * hours,
        )
        table = pa.table({"sample": list(range(30)), "value": [i * 0.5 for i in range(30)]})
        await save(
            "table",
            StorableValue(table),
            {
                "project": "alpha",
                "stage": "clean",
                "dagster/asset_key": "sales/daily",
                "dagster/run_id": "run-2",
            },
            8 * hours,
            derived_from={"raw": ids["raw"], "grid": ids["grid"]},
        )
        await save(
            "summary",
            StorableValue({"mean": 0.25, "rows": 30, "note": "all good"}),
            {"project": "alpha", "stage": "report"},
            7 * hours,
            derived_from={"table": ids["table"]},
        )
        await save(
            "image",
            StorableValue(png_bytes(), serializer=PngSerializer()),
            {"project": "beta", "kind": "image"},
            6 * hours,
        )
        await save(
            "experiment",
            Experiment("first run", {"learning_rate": 0.01, "epochs": 3.0}),
            {"project": "beta", "kind": "experiment"},
            5 * hours,
        )
        await save(
            "hostile",
            StorableValue(HOSTILE + "\nline two", serializer=PlainTextSerializer()),
            {"project": "gamma", "note": HOSTILE, HOSTILE: "key"},
            4 * hours,
        )
        await save(
            "large",
            StorableValue(bytes(range(256)) * (3 * 4096 + 7)),  # about 3 MiB: several chunks
            {"project": "gamma", "kind": "bytes"},
            3 * hours,
        )
        return Demo(ids)
    finally:
        await engine.dispose()
