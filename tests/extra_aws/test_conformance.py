"""The shared storage conformance suite, run on S3Storage against a real moto server, in
each configuration that changes how streams are written or read."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lakery.core.storage import Storage
from lakery.extra.aws import S3Storage
from lakery.testing.storage import StorageConformance
from tests.extra_aws.conftest import leftovers
from tests.extra_aws.test_multipart import open_files_under


class TestS3Storage(StorageConformance):
    """The defaults: streams spooled to a local file (here a test directory)."""

    options: dict[str, Any] = {}
    """Storage options of this configuration (besides the spool directory)."""

    @pytest.fixture
    def storage(
        self, make_storage: Callable[..., S3Storage], raw_s3: Any, tmp_path: Path
    ) -> S3Storage:
        self.raw_s3 = raw_s3
        self.spool_dir = tmp_path
        return make_storage(prefix="conformance", stream_spool_dir=tmp_path, **self.options)

    async def leftovers(self, storage: Storage) -> list[str]:
        assert isinstance(storage, S3Storage)
        found = await leftovers(self.raw_s3, storage.bucket, storage.prefix)
        spool_files = open_files_under(self.spool_dir) + [p.name for p in self.spool_dir.iterdir()]
        return found + [f"spool:{name}" for name in spool_files]


class TestS3StorageWithoutSpool(TestS3Storage):
    """Streams through a temporary object and a server-side copy; small read chunks."""

    options = {"stream_spool_max_bytes": None, "read_chunk_size": 4096}


class TestS3StorageWhenRequired(TestS3Storage):
    """The same, with the pre-1.36 checksum behaviour for servers that reject the new one."""

    options = {
        "request_checksum_calculation": "when_required",
        "response_checksum_validation": "when_required",
        "object_tags": "metadata",
    }
