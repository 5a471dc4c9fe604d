"""Keeping a lakery store clean and sound: delete, collect garbage, verify, migrate.

```python
from lakery.maintenance import collect_garbage, delete_manifests, verify_manifests

async with new_session() as session:
    await delete_manifests(session, tags={"project": "old"}, dry_run=True)
    report = await collect_garbage(session, registry, delete=True)  # blobs past 24 h
    check = await verify_manifests(session, registry, sample=100)
    assert check.ok, check.problems
```

The ``lakery`` command line (`lakery.cli`) offers the same operations.
"""

from lakery.maintenance.delete import DeleteResult
from lakery.maintenance.delete import delete_manifests
from lakery.maintenance.gc import DEFAULT_GRACE
from lakery.maintenance.gc import GarbageReport
from lakery.maintenance.gc import StorageGarbage
from lakery.maintenance.gc import collect_garbage
from lakery.maintenance.progress import Progress
from lakery.maintenance.schema import BASELINE_REVISION
from lakery.maintenance.schema import HEAD_REVISION
from lakery.maintenance.schema import SchemaChange
from lakery.maintenance.schema import database_revision
from lakery.maintenance.schema import downgrade_database
from lakery.maintenance.schema import upgrade_database
from lakery.maintenance.verify import Problem
from lakery.maintenance.verify import VerifyReport
from lakery.maintenance.verify import verify_manifests

__all__ = [
    "BASELINE_REVISION",
    "DEFAULT_GRACE",
    "HEAD_REVISION",
    "DeleteResult",
    "GarbageReport",
    "Problem",
    "Progress",
    "SchemaChange",
    "StorageGarbage",
    "VerifyReport",
    "collect_garbage",
    "database_revision",
    "delete_manifests",
    "downgrade_database",
    "upgrade_database",
    "verify_manifests",
]
