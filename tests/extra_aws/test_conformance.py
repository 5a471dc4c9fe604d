"""The shared storage conformance suite, run on S3Storage against a real moto server."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from lakery.core.storage import Storage
from lakery.extra.aws import S3Storage
from lakery.testing.storage import StorageConformance
from tests.extra_aws.conftest import leftovers


class TestS3Storage(StorageConformance):
    @pytest.fixture
    def storage(self, make_storage: Callable[..., S3Storage], raw_s3: Any) -> S3Storage:
        self.raw_s3 = raw_s3
        return make_storage(prefix="conformance")

    async def leftovers(self, storage: Storage) -> list[str]:
        assert isinstance(storage, S3Storage)
        return await leftovers(self.raw_s3, storage.bucket, storage.prefix)


class TestS3StorageWhenRequired(TestS3Storage):
    """The same, with the pre-1.36 checksum behaviour for servers that reject the new one."""

    @pytest.fixture
    def storage(self, make_storage: Callable[..., S3Storage], raw_s3: Any) -> S3Storage:
        self.raw_s3 = raw_s3
        return make_storage(
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            object_tags="metadata",
        )
