"""Fixtures for the pydantic integration: a registry with files, numpy and pydantic; S3.

The S3 fixtures (a moto server on 127.0.0.1 and a fresh bucket) are the ones of
tests/extra_aws, used here for the seed's `ContentSpec(storage=S3Storage)` snippet.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from lakery import Registry
from lakery.builtin import FileStorage
from lakery.extra.aws import S3Storage
from tests.extra_aws.conftest import REGION
from tests.extra_aws.conftest import aws_environment  # noqa: F401
from tests.extra_aws.conftest import bucket  # noqa: F401
from tests.extra_aws.conftest import moto_endpoint  # noqa: F401
from tests.extra_aws.conftest import raw_s3  # noqa: F401

MODULES = ["lakery.builtin", "lakery.extra.numpy", "lakery.extra.pydantic"]


@pytest.fixture
def files(tmp_path: Path) -> FileStorage:
    return FileStorage(tmp_path / "files")


@pytest.fixture
def model_registry(files: FileStorage) -> Registry:
    """Built-ins (database storage by default), numpy, pydantic, and a FileStorage."""
    return Registry(modules=MODULES, storages=[files])


@pytest.fixture
async def s3_storage(moto_endpoint: str, bucket: str) -> AsyncIterator[S3Storage]:  # noqa: F811
    storage = S3Storage(bucket, endpoint_url=moto_endpoint, region=REGION, addressing_style="path")
    yield storage
    await storage.close()
