"""The public core of lakery: storables, components, the registry, records, save, load and
lineage."""

from lakery.core.component import Component
from lakery.core.future import Future
from lakery.core.future import NotReadyError
from lakery.core.lineage import DerivedFrom
from lakery.core.lineage import Lineage
from lakery.core.lineage import LineageEdge
from lakery.core.lineage import find_lineage
from lakery.core.load import Loader
from lakery.core.load import load_one
from lakery.core.load import new_loader
from lakery.core.query import fetch_contents
from lakery.core.query import find_manifests
from lakery.core.query import get_manifests
from lakery.core.query import select_manifests
from lakery.core.records import BaseRecord
from lakery.core.records import BlobRecord
from lakery.core.records import ContentRecord
from lakery.core.records import LineageRecord
from lakery.core.records import ManifestRecord
from lakery.core.registry import Registry
from lakery.core.save import Saver
from lakery.core.save import new_saver
from lakery.core.save import save_one
from lakery.core.serializer import Buffer
from lakery.core.serializer import ColumnarSerializer
from lakery.core.serializer import SerializedValue
from lakery.core.serializer import Serializer
from lakery.core.serializer import StreamDecoder
from lakery.core.serializer import StreamEncoder
from lakery.core.serializer import StreamSerializer
from lakery.core.storable import Storable
from lakery.core.storable import get_class_id
from lakery.core.storable import get_unpacker
from lakery.core.storage import BlobInfo
from lakery.core.storage import HashingStream
from lakery.core.storage import Locator
from lakery.core.storage import Storage
from lakery.core.storage import ValueWrite
from lakery.core.unpacker import UnpackedContents
from lakery.core.unpacker import UnpackedValue
from lakery.core.unpacker import UnpackedValueStream
from lakery.core.unpacker import Unpacker

__all__ = [
    "BaseRecord",
    "BlobInfo",
    "BlobRecord",
    "Buffer",
    "ColumnarSerializer",
    "Component",
    "ContentRecord",
    "DerivedFrom",
    "Future",
    "HashingStream",
    "Lineage",
    "LineageEdge",
    "LineageRecord",
    "Loader",
    "Locator",
    "ManifestRecord",
    "NotReadyError",
    "Registry",
    "Saver",
    "SerializedValue",
    "Serializer",
    "Storable",
    "Storage",
    "StreamDecoder",
    "StreamEncoder",
    "StreamSerializer",
    "UnpackedContents",
    "UnpackedValue",
    "UnpackedValueStream",
    "Unpacker",
    "ValueWrite",
    "fetch_contents",
    "find_lineage",
    "find_manifests",
    "get_class_id",
    "get_manifests",
    "get_unpacker",
    "load_one",
    "new_loader",
    "new_saver",
    "save_one",
    "select_manifests",
]
