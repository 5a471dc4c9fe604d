"""`NpySerializer`: the serializer conformance suite, dtypes, shapes, memory layout, errors."""

from __future__ import annotations

import io
import warnings
from typing import Any

import numpy as np
import pytest

from lakery.extra.numpy import NpySerializer
from lakery.testing.serializer import SerializerConformance

SERIALIZER = NpySerializer()

STRUCTURED = np.dtype([("id", "<i4"), ("score", ">f8"), ("tag", "S3"), ("xy", "<f4", (2,))])
ALIGNED = np.dtype({"names": ["a", "b"], "formats": ["u1", "<f8"], "aligned": True})

ARRAYS: dict[str, np.ndarray] = {
    "bool": np.array([True, False, True]),
    "int8": np.array([-128, 0, 127], dtype=np.int8),
    "uint16": np.array([0, 65535], dtype=np.uint16),
    "int64": np.arange(-5, 5, dtype=np.int64),
    "big-endian int32": np.arange(6, dtype=">i4").reshape(2, 3),
    "float16": np.array([0.5, -1.25], dtype=np.float16),
    "float32": np.linspace(0, 1, 7, dtype=np.float32),
    "float64 with nan and inf": np.array([np.nan, np.inf, -np.inf, 0.0, -0.0]),
    "longdouble": np.array([1.5, 2.5], dtype=np.longdouble),
    "complex64": np.array([1 + 2j, -3.5j], dtype=np.complex64),
    "complex128": np.array([[1 + 1j, 2], [3, 4 - 4j]]),
    "datetime64[ns]": np.array(["2024-01-02T03:04:05.123456789", "NaT"], dtype="datetime64[ns]"),
    "datetime64[D]": np.arange("2024-02-27", "2024-03-02", dtype="datetime64[D]"),
    "timedelta64[s]": np.array([1, -60, 3600], dtype="timedelta64[s]"),
    "bytes": np.array([b"abc", b"", b"\x00\xff"], dtype="S3"),
    "unicode": np.array(["héllo", "名前", ""]),
    "structured": np.array([(1, 2.5, b"x", (1, 2)), (2, -1.0, b"yz", (3, 4))], dtype=STRUCTURED),
    "aligned structured": np.zeros(3, dtype=ALIGNED),
    "non-latin-1 field name": np.zeros(2, dtype=[("名前", "<i4")]),
    "void": np.array([b"\x01\x02", b"\x03\x04"], dtype="V2"),
    "0-d": np.array(3.25),
    "0-d structured": np.array((1, 2.0, b"a", (0, 0)), dtype=STRUCTURED),
    "empty": np.zeros((0,)),
    "empty 2-d": np.zeros((3, 0), dtype=np.int16),
    "3-d": np.arange(24).reshape(2, 3, 4),
    "fortran": np.asfortranarray(np.arange(12.0).reshape(3, 4)),
    "fortran 3-d": np.asfortranarray(np.arange(24).reshape(2, 3, 4)),
    "strided view": np.arange(20)[::3],
    "transposed view": np.arange(24).reshape(2, 3, 4).transpose(1, 0, 2),
    "negative strides": np.arange(10.0)[::-1],
    "column": np.arange(12).reshape(3, 4)[:, 1],
}


def assert_same_array(loaded: Any, original: np.ndarray) -> None:
    assert type(loaded) is np.ndarray
    assert loaded.dtype == original.dtype
    assert loaded.shape == original.shape
    _assert_same_values(loaded, original)


def _assert_same_values(loaded: np.ndarray, original: np.ndarray) -> None:
    if original.dtype.names:  # field by field: padding bytes between fields carry no data
        for name in original.dtype.names:
            _assert_same_values(loaded[name], original[name])
    elif original.dtype.kind in "fc":
        np.testing.assert_array_equal(loaded, original)  # NaN equals NaN here
    else:
        assert loaded.tobytes() == original.tobytes()


def joined(serialized: Any) -> bytes:
    return b"".join(bytes(buffer) for buffer in serialized)


class TestNpySerializer(SerializerConformance):
    serializer = SERIALIZER
    values = list(ARRAYS.values())

    def assert_equal(self, loaded: Any, original: Any) -> None:
        assert_same_array(loaded, original)


@pytest.mark.parametrize("name", list(ARRAYS))
def test_round_trip_and_numpy_load(name: str) -> None:
    array = ARRAYS[name]
    data = joined(SERIALIZER.serialize(array))
    assert_same_array(SERIALIZER.deserialize(bytearray(data)), array)
    # The bytes are a standard .npy file ...
    assert_same_array(np.load(io.BytesIO(data), allow_pickle=False), array)
    # ... and files written by numpy read back.
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Stored array in format 3.0"
        np.save(buffer, array, allow_pickle=False)
    assert_same_array(SERIALIZER.deserialize(buffer.getvalue()), array)


def test_header_keeps_the_data_64_byte_aligned() -> None:
    for array in ARRAYS.values():
        header = bytes(SERIALIZER.serialize(array)[0])
        assert header.startswith(b"\x93NUMPY")
        assert len(header) % 64 == 0


@pytest.mark.parametrize("name", ["float64", "fortran", "0-d", "structured", "datetime"])
def test_contiguous_arrays_are_written_without_a_copy(name: str) -> None:
    array = {
        "float64": np.random.default_rng(0).random((50, 40)),
        "fortran": np.asfortranarray(np.random.default_rng(1).random((50, 40))),
        "0-d": np.array(1.5),
        "structured": ARRAYS["structured"],
        "datetime": ARRAYS["datetime64[ns]"],
    }[name]
    header, data = SERIALIZER.serialize(array)
    assert isinstance(data, memoryview)
    assert data.nbytes == array.nbytes
    assert np.shares_memory(np.frombuffer(data, dtype=np.uint8), array)
    loaded = SERIALIZER.deserialize(bytearray(bytes(header) + bytes(data)))
    assert loaded.flags.f_contiguous == array.flags.f_contiguous
    assert loaded.flags.c_contiguous == array.flags.c_contiguous


def test_non_contiguous_views_are_copied_once_into_c_order() -> None:
    base = np.arange(100.0).reshape(10, 10)
    view = base[::2, 1::3]
    header, data = SERIALIZER.serialize(view)
    assert not np.shares_memory(np.frombuffer(data, dtype=np.uint8), base)
    loaded = SERIALIZER.deserialize(bytes(header) + bytes(data))
    assert loaded.flags.c_contiguous
    np.testing.assert_array_equal(loaded, view)


def test_loading_from_a_bytearray_is_zero_copy_and_writable() -> None:
    array = np.arange(1000.0)
    data = bytearray(joined(SERIALIZER.serialize(array)))
    loaded = SERIALIZER.deserialize(data)
    assert loaded.flags.writeable
    assert np.shares_memory(loaded, np.frombuffer(data, dtype=np.uint8))
    loaded[0] = 42.0  # a normal, writable array


def test_loading_from_immutable_bytes_gives_a_writable_array() -> None:
    data = joined(SERIALIZER.serialize(np.arange(10)))
    loaded = SERIALIZER.deserialize(data)
    assert loaded.flags.writeable
    loaded += 1
    np.testing.assert_array_equal(loaded, np.arange(1, 11))


def test_loading_from_a_memoryview() -> None:
    data = bytearray(joined(SERIALIZER.serialize(ARRAYS["fortran"])))
    assert_same_array(SERIALIZER.deserialize(memoryview(data)), ARRAYS["fortran"])


def test_the_serialization_is_deterministic_across_layouts() -> None:
    array = np.arange(12).reshape(3, 4)
    assert joined(SERIALIZER.serialize(array)) == joined(SERIALIZER.serialize(array.copy()))


@pytest.mark.parametrize(
    "array",
    [
        np.array([{"a": 1}, None], dtype=object),
        np.array([1, "two"], dtype=object),
        np.zeros(2, dtype=[("a", "i4"), ("b", "O")]),
    ],
    ids=["objects", "mixed", "structured-with-object"],
)
def test_object_arrays_are_refused_with_the_reason(array: np.ndarray) -> None:
    with pytest.raises(TypeError, match="pickle") as error:
        SERIALIZER.serialize(array)
    assert "never uses" in str(error.value)
    assert "astype" in str(error.value)


def test_object_arrays_written_by_numpy_are_never_unpickled() -> None:
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="pickle"):
        SERIALIZER.deserialize(buffer.getvalue())


def test_masked_arrays_are_refused() -> None:
    with pytest.raises(TypeError, match="mask"):
        SERIALIZER.serialize(np.ma.masked_array([1, 2], mask=[0, 1]))


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")
def test_ndarray_subclasses_are_stored_as_plain_arrays() -> None:
    loaded = SERIALIZER.deserialize(joined(SERIALIZER.serialize(np.matrix([[1, 2], [3, 4]]))))
    assert type(loaded) is np.ndarray
    np.testing.assert_array_equal(loaded, [[1, 2], [3, 4]])


def test_non_arrays_are_refused() -> None:
    with pytest.raises(TypeError, match=r"numpy\.ndarray"):
        SERIALIZER.serialize([1, 2, 3])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "magic"),
        (b"not an npy file at all", "magic"),
        (b"\x93NUMPY\x09\x00\x10\x00", "version"),
        (b"\x93NUMPY\x01\x00\xff\x00{'descr'", "truncated"),
    ],
)
def test_malformed_data_is_a_value_error(data: bytes, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SERIALIZER.deserialize(data)


def test_truncated_array_data_is_a_value_error() -> None:
    data = joined(SERIALIZER.serialize(np.arange(10)))
    with pytest.raises(ValueError, match="needs 80"):
        SERIALIZER.deserialize(data[:-8])


def test_a_header_that_is_not_a_literal_is_refused() -> None:
    text = b"__import__('os').system('true')".ljust(117) + b"\n"
    data = b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text
    with pytest.raises(ValueError, match=r"not a Python literal|malformed"):
        SERIALIZER.deserialize(data)


def test_component_attributes() -> None:
    assert SERIALIZER.name == "lakery.numpy.npy@v1"
    assert SERIALIZER.types == (np.ndarray,)
    assert SERIALIZER.content_type == "application/x-npy"
