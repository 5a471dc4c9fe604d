"""Amazon S3 (and S3-compatible servers: MinIO, Ceph, R2) for lakery, on aiobotocore.

```python
from lakery import Registry
from lakery.extra.aws import S3Storage

s3 = S3Storage("my-bucket", prefix="lakery")
registry = Registry(modules=["lakery.builtin"], storages=[s3], default_storage=s3)
```

Its options are keywords of `S3Storage`, or three frozen groups of them:
`ConnectionOptions`, `TransferOptions` and `RetryPolicy`.

`S3Storage` needs a bucket, so a registry built from this module's `__all__` alone does
not create one: pass an instance with `Registry(storages=[...])`. Needs the ``aws`` extra
(``pip install -e '/path/to/lakery[aws]'``).
"""

try:
    import aiobotocore  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    msg = (
        "lakery.extra.aws needs aiobotocore: install lakery's 'aws' extra, "
        "e.g. pip install -e '/path/to/lakery[aws]'"
    )
    raise ImportError(msg) from exc

from lakery.common.exceptions import AccessDeniedError
from lakery.extra.aws.options import ConnectionOptions
from lakery.extra.aws.options import TransferOptions
from lakery.extra.aws.retry import RetryPolicy
from lakery.extra.aws.storage import S3Storage

__all__ = ["AccessDeniedError", "ConnectionOptions", "RetryPolicy", "S3Storage", "TransferOptions"]
