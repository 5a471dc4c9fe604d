"""NumPy arrays as ``.npy`` files.

```python
registry = Registry(modules=["lakery.builtin", "lakery.extra.numpy"])
```

`NpySerializer` writes the standard ``.npy`` format (readable with `numpy.load`), never
with pickle: arrays of Python objects are refused, because reading them back would run
code from the stored bytes.

Large arrays are neither joined nor copied on the way out: `serialize` returns the small
header and a view of the array's own memory, which lakery hashes and writes one after the
other. Only an array that is not contiguous (a strided view such as ``a[::2]``) is copied
once into contiguous order; C- and Fortran-ordered arrays are written as they lie in
memory. On the way back the array is a view of the bytes read from storage (writable when
the storage returns a `bytearray`, as `FileStorage` does; otherwise copied once so that the
loaded array is always writable).
"""

from __future__ import annotations

import ast
import math
import struct
from typing import Any
from typing import Literal

import numpy as np

from lakery.core.serializer import Buffer
from lakery.core.serializer import Serializer

__all__ = ["NpySerializer"]

_MAGIC = b"\x93NUMPY"
_ALIGN = 64
"""The header is padded so that the data starts on a 64-byte boundary (as numpy does)."""
_MAX_HEADER = 1 << 20
"""Longest header text this serializer parses (structured dtypes can have long headers)."""
# (major version, struct format of the header length, text encoding)
_VERSIONS = ((1, "<H", "latin1"), (2, "<I", "latin1"), (3, "<I", "utf8"))

_OBJECT_ARRAYS = (
    "arrays with Python objects (dtype {dtype}) can only be stored in .npy with pickle, "
    "which lakery never uses because loading a pickle runs code from the stored bytes; "
    "convert the array to a fixed dtype first (e.g. arr.astype(str) or arr.astype(float)), "
    "or keep the objects in a JSON-able field"
)


class NpySerializer(Serializer[np.ndarray]):
    """A NumPy array in the ``.npy`` format (version 1.0, or 2.0/3.0 when the header needs it).

    Every dtype without Python objects round-trips: booleans, integers, floats, complex,
    datetime64/timedelta64, bytes/str and structured dtypes; so do 0-d and empty arrays and
    Fortran order. Subclasses are stored as plain arrays, except masked arrays, which are
    refused (their mask would be lost).
    """

    name = "lakery.numpy.npy@v1"
    types = (np.ndarray,)
    content_type = "application/x-npy"

    def serialize(self, value: np.ndarray) -> list[Buffer]:
        if not isinstance(value, np.ndarray):
            msg = f"expected a numpy.ndarray, got {type(value).__qualname__}"
            raise TypeError(msg)
        if isinstance(value, np.ma.MaskedArray):
            msg = (
                "masked arrays are not supported: their mask would be lost; store "
                "arr.filled(...) or arr.data and arr.mask as two arrays"
            )
            raise TypeError(msg)
        array = value.view(np.ndarray) if type(value) is not np.ndarray else value
        if array.dtype.hasobject:
            raise TypeError(_OBJECT_ARRAYS.format(dtype=array.dtype))
        fortran = array.flags.f_contiguous and not array.flags.c_contiguous
        if fortran:
            flat = array.T  # C-contiguous view of a Fortran-ordered array: no copy
        elif array.flags.c_contiguous:
            flat = array
        else:
            flat = np.ascontiguousarray(array)  # a strided view: the one copy we must make
        header = _header(array.dtype, array.shape, fortran)
        if flat.size == 0 or flat.dtype.itemsize == 0:
            return [header]
        data = flat.reshape(-1).view(np.uint8).data  # a memoryview of the array's bytes
        return [header, data]

    def deserialize(self, data: Buffer) -> np.ndarray:
        view = memoryview(data).cast("B")
        dtype, shape, fortran, offset = _read_header(view)
        count = math.prod(shape)
        expected = count * dtype.itemsize
        if view.nbytes - offset != expected:
            msg = (
                f"the .npy data holds {view.nbytes - offset} bytes after its header, but "
                f"shape {shape} of dtype {dtype} needs {expected}"
            )
            raise ValueError(msg)
        order: Literal["F", "C"] = "F" if fortran else "C"
        if count == 0 or dtype.itemsize == 0:
            return np.zeros(shape, dtype=dtype, order=order)
        flat = np.frombuffer(view, dtype=dtype, count=count, offset=offset)
        if not flat.flags.writeable:
            flat = flat.copy()  # the storage returned immutable bytes; give back a normal array
        if fortran:
            return flat.reshape(shape[::-1]).T
        return flat.reshape(shape)


def _header(dtype: np.dtype[Any], shape: tuple[int, ...], fortran: bool) -> bytes:
    """The magic string, version, header length and the padded header dict."""
    descr = np.lib.format.dtype_to_descr(dtype)
    shape = tuple(int(n) for n in shape)
    text = f"{{'descr': {descr!r}, 'fortran_order': {fortran!r}, 'shape': {shape!r}, }}"
    for major, length_format, encoding in _VERSIONS:
        try:
            encoded = text.encode(encoding)
        except UnicodeEncodeError:
            continue
        prefix = len(_MAGIC) + 2 + struct.calcsize(length_format)
        padding = -(prefix + len(encoded) + 1) % _ALIGN
        length = len(encoded) + padding + 1
        if length >= 1 << (8 * struct.calcsize(length_format)):
            continue
        return (
            _MAGIC
            + bytes([major, 0])
            + struct.pack(length_format, length)
            + encoded
            + b" " * padding
            + b"\n"
        )
    msg = f"the .npy header for dtype {dtype} is too long"  # pragma: no cover
    raise ValueError(msg)  # pragma: no cover


def _read_header(view: memoryview) -> tuple[np.dtype[Any], tuple[int, ...], bool, int]:
    """Parse a ``.npy`` header: dtype, shape, Fortran order and where the data starts."""
    if view.nbytes < 10 or view[:6].tobytes() != _MAGIC:
        msg = "not .npy data: the magic string is missing"
        raise ValueError(msg)
    major, minor = view[6], view[7]
    formats = {major_: (fmt, enc) for major_, fmt, enc in _VERSIONS}
    if major not in formats or minor != 0:
        msg = f"unsupported .npy format version {major}.{minor}"
        raise ValueError(msg)
    length_format, encoding = formats[major]
    start = 8 + struct.calcsize(length_format)
    if view.nbytes < start:
        msg = "the .npy header is truncated"
        raise ValueError(msg)
    (length,) = struct.unpack(length_format, view[8:start])
    if length > _MAX_HEADER or view.nbytes < start + length:
        msg = f"the .npy header length {length} is invalid or truncated"
        raise ValueError(msg)
    text = view[start : start + length].tobytes().decode(encoding)
    try:
        header = ast.literal_eval(text)
    except (SyntaxError, ValueError) as exc:
        msg = f"the .npy header is not a Python literal: {text[:200]!r}"
        raise ValueError(msg) from exc
    if not (
        isinstance(header, dict)
        and set(header) == {"descr", "fortran_order", "shape"}
        and isinstance(header["fortran_order"], bool)
        and isinstance(header["shape"], tuple)
        and all(isinstance(n, int) and n >= 0 for n in header["shape"])
    ):
        msg = f"the .npy header is malformed: {text[:200]!r}"
        raise ValueError(msg)
    try:
        dtype = np.lib.format.descr_to_dtype(header["descr"])
    except (TypeError, ValueError) as exc:
        msg = f"the .npy header has an invalid dtype {header['descr']!r}: {exc}"
        raise ValueError(msg) from exc
    if dtype.hasobject:
        raise ValueError(_OBJECT_ARRAYS.format(dtype=dtype))
    return dtype, header["shape"], header["fortran_order"], start + length
