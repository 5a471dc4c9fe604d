"""Google Cloud Storage for lakery, on the async ``gcloud-aio-storage`` client.

```python
from lakery import Registry
from lakery.extra.gcs import GCSStorage

objects = GCSStorage("my-bucket", prefix="lakery")  # credentials from the standard chain
registry = Registry(modules=["lakery.builtin"], storages=[objects], default_storage=objects)
```

`GCSStorage` needs a bucket, so a registry built from this module's `__all__` alone does
not create one: pass an instance with `Registry(storages=[...])`. Needs the ``gcs``
extra (``pip install -e '/path/to/lakery[gcs]'``).
"""

try:
    import gcloud.aio.storage  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    msg = (
        "lakery.extra.gcs needs gcloud-aio-storage: install lakery's 'gcs' extra, e.g. "
        "pip install -e '/path/to/lakery[gcs]'"
    )
    raise ImportError(msg) from exc

from lakery.extra.gcs.retry import GCSRetryPolicy
from lakery.extra.gcs.storage import GCSStorage

__all__ = ["GCSRetryPolicy", "GCSStorage"]
