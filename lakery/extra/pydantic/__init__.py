"""Pydantic models as storables: `StorableModel` and `ContentSpec`.

```python
registry = Registry(modules=["lakery.builtin", "lakery.extra.numpy", "lakery.extra.pydantic"])


class ExperimentData(StorableModel, class_id="..."):
    description: str
    results: Annotated[dict[str, np.ndarray], ContentSpec(storage=FileStorage)]
```

A registry built with this module gets `ModelUnpacker` and `ModelJsonSerializer`, which
saving and loading models need.
"""

from lakery.extra.pydantic.body import ModelJsonSerializer
from lakery.extra.pydantic.model import StorableModel
from lakery.extra.pydantic.spec import ContentSpec
from lakery.extra.pydantic.unpacker import ModelUnpacker

__all__ = ["ContentSpec", "ModelJsonSerializer", "ModelUnpacker", "StorableModel"]
