"""Dagster integration: `LakeryResource` and `LakeryIOManager`.

```python
import dagster as dg
from lakery_dagster import LakeryIOManager, LakeryResource

lakery = LakeryResource(database_url=dg.EnvVar("LAKERY_DATABASE_URL"))
defs = dg.Definitions(assets=[...], resources={"io_manager": LakeryIOManager(lakery=lakery)})
```
"""

from lakery_dagster.io_manager import LakeryIOManager
from lakery_dagster.resource import DEFAULT_REGISTRY_MODULES
from lakery_dagster.resource import LakeryResource

__all__ = ["DEFAULT_REGISTRY_MODULES", "LakeryIOManager", "LakeryResource"]
