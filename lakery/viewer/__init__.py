"""The read-only web viewer of a store: ``lakery serve`` (the ``ui`` extra).

```bash
pip install -e '/path/to/lakery[ui]'
lakery serve --database-url sqlite:///lakery.db --port 8321
```

Pages: a search of manifests by tags, class and time; each manifest with its parts,
previews by content type (JSON and text, NumPy arrays with a plot, Parquet and Arrow
tables, PNG and JPEG images), its lineage graph, and links to the Dagster UI; verified
downloads of each part. `create_app` builds the same application for your own ASGI server.
The package is laid out one concept a module: `store` (reads), `app` (routes), `pages` and
`html` (HTML), `previews` and `plot`, `graph` and `lineage`, `links`, `serve`.
"""

try:
    import starlette  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    msg = (
        "lakery.viewer needs starlette and uvicorn: install lakery's 'ui' extra, "
        "e.g. pip install -e '/path/to/lakery[ui]'"
    )
    raise ImportError(msg) from exc

from lakery.viewer.app import create_app
from lakery.viewer.graph import lineage_svg
from lakery.viewer.store import CorruptPart
from lakery.viewer.store import SearchQuery
from lakery.viewer.store import ViewerStore

__all__ = ["CorruptPart", "SearchQuery", "ViewerStore", "create_app", "lineage_svg"]
