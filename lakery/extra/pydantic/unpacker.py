"""`ModelUnpacker`: a `StorableModel` as a JSON body plus the parts that are not JSON."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING
from typing import Any

from pydantic import BaseModel

from lakery.common.exceptions import ConfigurationError
from lakery.common.exceptions import NotRegisteredError
from lakery.common.exceptions import StorableTypeError
from lakery.core.registry import Registry
from lakery.core.unpacker import UnpackedContents
from lakery.core.unpacker import UnpackedValue
from lakery.core.unpacker import Unpacker
from lakery.extra.pydantic.body import BODY_KEY
from lakery.extra.pydantic.body import BodyBuilder
from lakery.extra.pydantic.body import ModelJsonSerializer
from lakery.extra.pydantic.body import restore
from lakery.extra.pydantic.spec import SAVING

if TYPE_CHECKING:
    from lakery.extra.pydantic.model import StorableModel

__all__ = ["ModelUnpacker"]

DEFAULT_INLINE_LIMIT = 1024


class ModelUnpacker(Unpacker["StorableModel"]):
    """Splits a pydantic model into its JSON body (part ``"model"``) and non-JSON values.

    The model is dumped by pydantic (by alias, in round-trip mode, without computed fields)
    and the dump is walked: JSON stays in the body; each array, bytes value, async stream or
    value under a `ContentSpec` becomes a part keyed by its JSON pointer (e.g.
    ``"/results/loss"``). A value up to `inline_limit` bytes that no `ContentSpec` claims is
    serialized into the body instead. Loading puts the values back and validates the data
    with the model's own validators (``model_validate``, lax mode, by alias).

    Args:
        inline_limit: largest size in bytes (``nbytes`` of an array, length of bytes) of a
            value that is kept inside the body; 0 gives every such value a part of its own.
            Only saving depends on it, so it may change at any time.
    """

    name = "lakery.pydantic.model@v1"

    def __init__(self, *, inline_limit: int = DEFAULT_INLINE_LIMIT) -> None:
        if not isinstance(inline_limit, int) or isinstance(inline_limit, bool) or inline_limit < 0:
            msg = f"inline_limit must be an int >= 0 (bytes), got {inline_limit!r}"
            raise ConfigurationError(msg)
        self.inline_limit = inline_limit

    def unpack(self, obj: StorableModel, registry: Registry) -> UnpackedContents:
        if not isinstance(obj, BaseModel):
            msg = f"{type(obj).__qualname__} is not a pydantic model; subclass StorableModel"
            raise StorableTypeError(msg)
        try:
            registry.get_serializer(ModelJsonSerializer.name)
        except NotRegisteredError:
            msg = (
                f"saving {type(obj).__qualname__} needs the serializer "
                f"{ModelJsonSerializer.name!r}; add 'lakery.extra.pydantic' to "
                "Registry(modules=[...])"
            )
            raise NotRegisteredError(
                msg, kind="serializer", name=ModelJsonSerializer.name
            ) from None
        dumped = obj.model_dump(
            mode="python",
            by_alias=True,
            round_trip=True,
            exclude_computed_fields=True,
            context={SAVING: True},
        )
        builder = BodyBuilder(registry, type(obj), inline_limit=self.inline_limit)
        document = builder.document(dumped, at=[], spec=None)
        return {
            BODY_KEY: UnpackedValue(document, serializer=ModelJsonSerializer.name),
            **builder.parts,
        }

    def repack(
        self, cls: type[StorableModel], contents: Mapping[str, Any], registry: Registry
    ) -> StorableModel:
        if not (isinstance(cls, type) and issubclass(cls, BaseModel)):
            msg = f"{cls!r} is not a pydantic model class"
            raise StorableTypeError(msg)
        if BODY_KEY not in contents:
            msg = f"the record of {cls.__qualname__} has no {BODY_KEY!r} part"
            raise KeyError(msg)
        data = restore(contents[BODY_KEY], contents, registry, cls)
        return cls.model_validate(data, strict=False, by_alias=True)
