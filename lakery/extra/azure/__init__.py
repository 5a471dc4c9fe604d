"""Azure Blob Storage for lakery, on the Azure SDK's async client (``azure-storage-blob``).

```python
from lakery import Registry
from lakery.extra.azure import AzureBlobStorage

blobs = AzureBlobStorage("my-container", prefix="lakery")  # account from the environment
registry = Registry(modules=["lakery.builtin"], storages=[blobs], default_storage=blobs)
```

`AzureBlobStorage` needs a container, so a registry built from this module's `__all__`
alone does not create one: pass an instance with `Registry(storages=[...])`. Needs the
``azure`` extra (``pip install -e '/path/to/lakery[azure]'``).
"""

try:
    import azure.storage.blob.aio  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    msg = (
        "lakery.extra.azure needs azure-storage-blob and aiohttp: install lakery's 'azure' "
        "extra, e.g. pip install -e '/path/to/lakery[azure]'"
    )
    raise ImportError(msg) from exc

from lakery.extra.azure.retry import AzureRetryPolicy
from lakery.extra.azure.storage import AzureBlobStorage

__all__ = ["AzureBlobStorage", "AzureRetryPolicy"]
