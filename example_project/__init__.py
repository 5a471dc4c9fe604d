"""lakery's example: a Dagster code location of greenhouse sensors, stored with lakery.

```
bash scripts/example.sh                                # materialize everything, summarize
.venv/bin/dagster dev -m example_project               # browse it (see docs/example.md)
```

Fourteen daily partitions of simulated sensor readings (pydantic models with numpy
arrays), per-day features, a model fitted over a 7-day window, a report, a streamed
archive of every reading, and a published forecast that goes to S3 when
``LAKERY_STORAGE_URL`` is an ``s3://`` URL. Where things go: `example_project.settings`.
"""

from example_project.definitions import build_defs

defs = build_defs()

__all__ = ["build_defs", "defs"]
