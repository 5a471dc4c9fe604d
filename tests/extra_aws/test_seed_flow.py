"""The seed's flow with S3: content saved to a bucket with its tags, loaded back, on SQLite
and PostgreSQL. `ContentSpec(storage=S3Storage, tags=...)` on a `StorableModel` field, and
the same through `StorableValue`, `StorableStream` and `StorableDataclass`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated
from typing import Any

import numpy as np
import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker

from lakery import Registry
from lakery import load_one
from lakery import new_loader
from lakery import new_saver
from lakery import save_one
from lakery.builtin import StorableDataclass
from lakery.builtin import StorableStream
from lakery.builtin import StorableValue
from lakery.extra.aws import S3Storage
from lakery.extra.pydantic import ContentSpec
from lakery.extra.pydantic import StorableModel
from tests.extra_aws.conftest import MiB

MODULES = ["lakery.builtin", "lakery.extra.numpy", "lakery.extra.pydantic"]


class ExperimentData(StorableModel, class_id="6b1f0c3a9d2e4f5a8b7c6d5e4f3a2b1c"):
    description: str
    parameters: dict[str, float]
    results: Annotated[
        dict[str, np.ndarray], ContentSpec(storage=S3Storage, tags={"type": "results"})
    ]


@dataclass
class Measurements(StorableDataclass, class_id="0a9b8c7d6e5f40312a3b4c5d6e7f8091"):
    station: str
    readings: dict[str, list[float]]


async def object_tags(raw_s3: Any, bucket: str, key: str) -> dict[str, str]:
    tagging = await raw_s3.get_object_tagging(Bucket=bucket, Key=key)
    return {t["Key"]: t["Value"] for t in tagging["TagSet"]}


@pytest.fixture
def s3(make_storage: Callable[..., S3Storage]) -> S3Storage:
    return make_storage(prefix="seed")


async def test_model_with_content_spec_on_s3(
    s3: S3Storage, new_session: async_sessionmaker, raw_s3: Any, bucket: str
) -> None:
    registry = Registry(modules=MODULES, storages=[s3])
    obj = ExperimentData(
        description="Experiment 1",
        parameters={"learning_rate": 0.01, "batch_size": 32},
        results={"accuracy": np.array([0.8, 0.85, 0.9]), "loss": np.arange(12.0).reshape(3, 4)},
    )
    async with new_session() as session:
        record = await save_one(
            obj, session=session, registry=registry, tags={"experiment_type": "baseline"}
        )
    async with new_session() as session:
        loaded = await load_one(record, ExperimentData, session=session, registry=registry)

    assert loaded.description == obj.description and loaded.parameters == obj.parameters
    assert set(loaded.results) == {"accuracy", "loss"}
    for name, array in obj.results.items():
        np.testing.assert_array_equal(loaded.results[name], array)

    in_s3 = [c for c in record.contents if c.storage_name == S3Storage.name]
    assert in_s3, "the ContentSpec'd field must be stored in S3"
    assert not any(c.storage_name == S3Storage.name for c in record.contents if c.tags == {})
    for content in in_s3:
        key = content.storage_data["key"]
        assert content.storage_data == {"bucket": bucket, "key": key}
        assert key.startswith("seed/sha256/") and key.endswith(content.content_hash)
        head = await raw_s3.head_object(Bucket=bucket, Key=key)
        assert head["ContentLength"] == content.content_size
        assert content.tags == {"type": "results"}
        assert await object_tags(raw_s3, bucket, key) == {
            "type": "results",
            "experiment_type": "baseline",
        }


async def test_value_stream_and_dataclass_on_s3(
    s3: S3Storage, new_session: async_sessionmaker, raw_s3: Any, bucket: str
) -> None:
    registry = Registry(modules=MODULES, storages=[s3], default_storage=s3)
    array = np.linspace(0, 1, 50_000)

    async def lines() -> AsyncIterator[dict[str, Any]]:
        for i in range(60_000):  # about 7 MB of JSON lines: a multipart stream
            yield {"row": i, "text": f"{i:0100d}"}

    objs = [
        StorableValue(array, storage=S3Storage, tags={"kind": "array"}),
        StorableStream(lines(), storage=S3Storage, tags={"kind": "rows"}),
        Measurements(station="north", readings={"t": [1.5, 2.5], "p": [1013.0]}),
    ]
    async with new_session() as session:
        async with new_saver(session=session, registry=registry) as saver:
            futures = [saver.save_soon(obj, tags={"batch": "7"}) for obj in objs]
    records = [f.get() for f in futures]

    async with new_session() as session:
        async with new_loader(session=session, registry=registry) as loader:
            value_f = loader.load_soon(records[0], StorableValue)
            stream_f = loader.load_soon(records[1], StorableStream)
            dataclass_f = loader.load_soon(records[2], Measurements)
    np.testing.assert_array_equal(value_f.get().value, array)
    rows = [row async for row in stream_f.get()]
    assert len(rows) == 60_000 and rows[-1] == {"row": 59_999, "text": f"{59_999:0100d}"}
    assert dataclass_f.get() == objs[2]

    stream_content = records[1].contents[0]
    assert stream_content.content_size > 5 * MiB
    for record, kind in zip(records[:2], ["array", "rows"], strict=True):
        (content,) = record.contents
        assert content.storage_name == S3Storage.name
        tags = await object_tags(raw_s3, bucket, content.storage_data["key"])
        assert tags == {"kind": kind, "batch": "7"}
    for content in records[2].contents:
        assert content.storage_name == S3Storage.name
        assert await object_tags(raw_s3, bucket, content.storage_data["key"]) == {"batch": "7"}
    listing = await raw_s3.list_objects_v2(Bucket=bucket, Prefix="seed/tmp/")
    assert listing.get("KeyCount", 0) == 0
