"""Configuration and key checks of S3Storage, which need no server."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

import lakery.extra.aws
from lakery import Registry
from lakery.common.exceptions import ConfigurationError
from lakery.common.exceptions import StorageError
from lakery.extra.aws import ConnectionOptions
from lakery.extra.aws import RetryPolicy
from lakery.extra.aws import S3Storage
from lakery.extra.aws import TransferOptions
from lakery.extra.aws import layout

DIGEST = hashlib.sha256(b"x").hexdigest()
MiB = 1 << 20


def test_package_all_is_complete() -> None:
    missing = [n for n in lakery.extra.aws.__all__ if not hasattr(lakery.extra.aws, n)]
    assert not missing
    assert "S3Storage" in lakery.extra.aws.__all__


def test_component_name_and_registry() -> None:
    assert S3Storage.name == "lakery.aws.s3@v1"
    # needs a bucket, so the module's __all__ alone adds no S3 storage ...
    assert not Registry(modules=["lakery.extra.aws"]).storages
    # ... an instance passed in is found by its class and by its name
    s3 = S3Storage("my-bucket")
    registry = Registry(modules=["lakery.builtin"], storages=[s3])
    assert registry.find_component(S3Storage) is s3
    assert registry.get_storage("lakery.aws.s3@v1") is s3
    other = S3Storage("other-bucket", name="lakery.aws.s3.archive@v1")
    assert Registry(storages=[s3, other]).get_storage("lakery.aws.s3.archive@v1") is other


@pytest.mark.parametrize("prefix", ["", "lakery", "teams/ml/lakery/", "a-b_c.d/e"])
def test_keys_under_the_prefix(prefix: str) -> None:
    storage = S3Storage("my-bucket", prefix=prefix)
    key = layout.content_key(storage.prefix, DIGEST)
    expected = f"sha256/{DIGEST[:2]}/{DIGEST}"
    assert key == (f"{prefix.rstrip('/')}/{expected}" if prefix else expected)
    assert storage.uri({"bucket": "my-bucket", "key": key}) == f"s3://my-bucket/{key}"


@pytest.mark.parametrize(
    "prefix", ["/abs", "a/../b", "..", "a//b", "./a", "a\\b", "tab\there", "x" * 600]
)
def test_bad_prefixes_are_refused(prefix: str) -> None:
    with pytest.raises(ConfigurationError, match="prefix"):
        S3Storage("my-bucket", prefix=prefix)


@pytest.mark.parametrize("bucket", ["", "ab", "a/b", "-lead", "has space", "a..b", None])
def test_bad_buckets_are_refused(bucket: object) -> None:
    with pytest.raises(ConfigurationError, match="bucket"):
        S3Storage(bucket)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "key",
    [
        f"/sha256/{DIGEST[:2]}/{DIGEST}",
        f"../sha256/{DIGEST[:2]}/{DIGEST}",
        f"a/../../sha256/{DIGEST[:2]}/{DIGEST}",
        f"a//sha256/{DIGEST[:2]}/{DIGEST}",
        f"sha256/00/{DIGEST}",
        f"sha256/{DIGEST[:2]}/{DIGEST.upper()}",
        f"tmp/{DIGEST}",
        "sha256/ab/short",
        None,
        42,
    ],
)
async def test_bad_locators_are_refused_before_any_request(key: object) -> None:
    storage = S3Storage("my-bucket", endpoint_url="http://127.0.0.1:9")  # nothing listens
    locator = {"bucket": "my-bucket", "key": key}
    with pytest.raises(StorageError, match="invalid S3Storage locator"):
        await storage.get_value(locator)
    with pytest.raises(StorageError, match="invalid S3Storage locator"):
        await storage.delete(locator)
    with pytest.raises(StorageError, match="invalid S3Storage locator"):
        await storage.get_value({"bucket": "bad/bucket", "key": f"sha256/{DIGEST[:2]}/{DIGEST}"})


def test_locator_of_another_bucket_and_prefix_is_valid() -> None:
    key = f"old/prefix/sha256/{DIGEST[:2]}/{DIGEST}"
    assert layout.locator_parts({"bucket": "old-bucket", "key": key}) == ("old-bucket", key)


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("part_size", 1024),
        ("part_size", 6 << 30),
        ("copy_part_size", 1024),
        ("multipart_threshold", 0),
        ("read_chunk_size", 0),
        ("stream_spool_max_bytes", -1),
        ("stream_spool_max_bytes", "4 GiB"),
        ("stream_spool_dir", 42),
        ("stream_spool_dir", ""),
        ("max_concurrency", 0),
        ("upload_concurrency", True),
        ("object_tags", "labels"),
        ("addressing_style", "sideways"),
        ("request_checksum_calculation", "always"),
        ("response_checksum_validation", "never"),
        ("max_attempts", 0),
        ("endpoint_url", "ftp://host"),
        ("endpoint_url", "127.0.0.1:9000"),
    ],
)
def test_bad_options_say_what_to_change(option: str, value: object) -> None:
    with pytest.raises(ConfigurationError, match=option.split("_")[0]):
        S3Storage("my-bucket", **{option: value})  # type: ignore[arg-type]


def test_spool_options(tmp_path: Path) -> None:
    default = S3Storage("my-bucket")
    assert default.stream_spool_dir is None  # the system's temporary directory, when used
    assert default.stream_spool_max_bytes == 4 << 30
    storage = S3Storage("my-bucket", stream_spool_dir=tmp_path, stream_spool_max_bytes=None)
    assert storage.stream_spool_dir == str(tmp_path)
    assert storage.stream_spool_max_bytes == 0  # spooling off
    assert S3Storage("my-bucket", stream_spool_max_bytes=0).stream_spool_max_bytes == 0


CONNECTION_KEYWORDS = {
    "endpoint_url": "http://127.0.0.1:9000",
    "region": "eu-west-1",
    "profile": "ml",
    "addressing_style": "path",
    "request_checksum_calculation": "when_required",
    "response_checksum_validation": "when_supported",
    "max_concurrency": 3,
    "client_options": {"connect_timeout": 5},
}
KEYWORDS = {
    **CONNECTION_KEYWORDS,
    "part_size": 6 * MiB,
    "multipart_threshold": 64 * MiB,
    "upload_concurrency": 2,
    "copy_part_size": 32 * MiB,
    "stream_spool_dir": "/var/tmp",
    "stream_spool_max_bytes": None,
    "read_chunk_size": 4096,
    "max_attempts": 2,
    "retry_base_delay": 0.5,
    "retry_max_delay": 2.0,
}
CONNECTION = ConnectionOptions(**CONNECTION_KEYWORDS)  # type: ignore[arg-type]
TRANSFER = TransferOptions(
    part_size=6 * MiB,
    multipart_threshold=64 * MiB,
    upload_concurrency=2,
    copy_part_size=32 * MiB,
    stream_spool_dir=Path("/var/tmp"),  # kept as a str
    stream_spool_max_bytes=0,  # what None means
    read_chunk_size=4096,
)
RETRY = RetryPolicy(max_attempts=2, base_delay=0.5, max_delay=2.0)


def test_keywords_and_option_groups_make_the_same_storage() -> None:
    by_keywords = S3Storage("my-bucket", **KEYWORDS)  # type: ignore[arg-type]
    by_groups = S3Storage("my-bucket", connection=CONNECTION, transfer=TRANSFER, retry=RETRY)
    for storage in (by_keywords, by_groups):
        assert (storage.connection, storage.transfer, storage.retry) == (
            CONNECTION,
            TRANSFER,
            RETRY,
        )
    assert repr(by_keywords) == repr(by_groups)
    mixed = S3Storage("my-bucket", transfer=TRANSFER, **CONNECTION_KEYWORDS)  # type: ignore[arg-type]
    assert (mixed.connection, mixed.transfer, mixed.retry) == (CONNECTION, TRANSFER, RetryPolicy())
    for option, value in KEYWORDS.items():  # each option is still an attribute
        if option not in ("max_attempts", "retry_base_delay", "retry_max_delay"):
            assert getattr(by_groups, option) == getattr(TRANSFER, option, value), option
    default = S3Storage("my-bucket")
    assert (default.connection, default.transfer, default.retry) == (
        ConnectionOptions(),
        TransferOptions(),
        RetryPolicy(),
    )


@pytest.mark.parametrize(
    ("group", "keyword"),
    [
        ("connection", {"region": "us-east-1"}),
        ("transfer", {"part_size": 8 * 1024 * 1024}),
        ("retry", {"retry_max_delay": 1.0}),
    ],
)
def test_a_group_and_one_of_its_keywords_conflict(group: str, keyword: dict[str, object]) -> None:
    given = {"connection": CONNECTION, "transfer": TRANSFER, "retry": RETRY}[group]
    (name,) = keyword
    with pytest.raises(ConfigurationError, match=f"{group}=.*{name}"):
        S3Storage("my-bucket", **{group: given}, **keyword)  # type: ignore[arg-type]


def test_option_groups_are_checked() -> None:
    with pytest.raises(TypeError, match="unexpected keyword argument 'part_sise'"):
        S3Storage("my-bucket", part_sise=1)  # type: ignore[call-arg]
    with pytest.raises(ConfigurationError, match="must be a TransferOptions"):
        S3Storage("my-bucket", transfer={"part_size": 1})  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="part_size"):
        TransferOptions(part_size=1024)
    with pytest.raises(ConfigurationError, match="addressing_style"):
        ConnectionOptions(addressing_style="sideways")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(AttributeError):
        TRANSFER.part_size = 1  # type: ignore[misc]


def test_from_url() -> None:
    storage = S3Storage.from_url("s3://my-bucket/teams/ml", region="eu-west-1")
    assert (storage.bucket, storage.prefix, storage.region) == (
        "my-bucket",
        "teams/ml",
        "eu-west-1",
    )
    assert S3Storage.from_url("s3://my-bucket").prefix == ""
    with pytest.raises(ConfigurationError, match="s3://bucket/prefix"):
        S3Storage.from_url("https://my-bucket/x")


def test_repr_names_the_configuration() -> None:
    storage = S3Storage(
        "my-bucket", prefix="p", endpoint_url="http://127.0.0.1:9000", region="us-east-1"
    )
    assert repr(storage) == (
        "S3Storage('my-bucket', prefix='p', endpoint_url='http://127.0.0.1:9000', "
        "region='us-east-1', name='lakery.aws.s3@v1')"
    )


def test_object_tags_within_s3_rules() -> None:
    tags = {f"k{i:02d}": "v" for i in range(12)}
    tags.update({"bad|char": "x", "long": "v" * 300, "aws:reserved": "x", "ok key": "a b/c=d"})
    tagging = layout.tag_params(tags, "tagging")["Tagging"]
    assert tagging.count("=") - tagging.count("%3D") == 10  # S3's limit of 10 tags
    assert "ok%20key=a%20b%2Fc%3Dd" not in tagging  # sorted after the k.. keys: left out
    assert layout.tags_left_out(tags, "tagging") == sorted(
        ["aws:reserved", "bad|char", "k10", "k11", "long", "ok key"]
    )
    small = layout.tag_params({"ok key": "a b/c=d", "kind": "x"}, "tagging")
    assert small == {"Tagging": "kind=x&ok%20key=a%20b%2Fc%3Dd"}


def test_object_tags_as_metadata_or_off() -> None:
    tags = {"kind": "results", "note": "naïve|any text"}
    metadata = layout.tag_params(tags, "metadata")["Metadata"]["lakery-tags"]
    assert json.loads(metadata) == tags and metadata.isascii()
    assert layout.tag_params({"big": "x" * 3000}, "metadata") == {}
    assert layout.tag_params(tags, "off") == {}
    assert layout.tag_params({}, "tagging") == {}
