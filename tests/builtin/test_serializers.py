"""The serializer conformance suites on every built-in serializer."""

from __future__ import annotations

from datetime import UTC
from datetime import date
from datetime import datetime
from datetime import timedelta
from datetime import timezone

import pytest

from lakery.builtin import BytesSerializer
from lakery.builtin import CsvSerializer
from lakery.builtin import IsoDateSerializer
from lakery.builtin import IsoDatetimeSerializer
from lakery.builtin import JsonSerializer
from lakery.builtin import JsonStreamSerializer
from lakery.testing.serializer import SerializerConformance
from lakery.testing.serializer import StreamSerializerConformance

JSON_VALUES = [
    None,
    True,
    False,
    0,
    -1,
    2**70,
    1.5,
    1e308,
    "",
    "text",
    "ünïcødé ✓ \n \u2028",
    [],
    {},
    [1, [2, [3]]],
    {"a": {"b": [1, 2.5, None, "x"]}, "": 1},
]


class TestJsonSerializer(SerializerConformance):
    serializer = JsonSerializer()
    values = JSON_VALUES


class TestJsonStreamSerializer(StreamSerializerConformance):
    serializer = JsonStreamSerializer()
    streams = [JSON_VALUES, [{"i": i, "s": "x" * i} for i in range(50)], ["\n", "a\nb"]]


class TestCsvSerializer(SerializerConformance):
    serializer = CsvSerializer()
    values = [
        [
            {"a": "1", "b": "x"},
            {"a": "2", "b": "with, comma"},
            {"a": "3", "b": 'quote " and\nnewline'},
        ],
        [],
    ]


class TestIsoDatetimeSerializer(SerializerConformance):
    serializer = IsoDatetimeSerializer()
    values = [
        datetime(2024, 1, 2, 3, 4, 5, 678901),
        datetime(2024, 1, 2, tzinfo=UTC),
        datetime(2024, 6, 1, 12, tzinfo=timezone(timedelta(hours=-5, minutes=-30))),
    ]


class TestIsoDateSerializer(SerializerConformance):
    serializer = IsoDateSerializer()
    values = [date(2024, 2, 29), date(1, 1, 1)]


class TestBytesSerializer(SerializerConformance):
    serializer = BytesSerializer()
    values = [b"", b"\x00\xff" * 100]


def test_json_rejects_non_string_keys() -> None:
    with pytest.raises(TypeError, match="keys must be str"):
        JsonSerializer().serialize({"ok": {1: "int key"}})


def test_json_rejects_unserializable_values() -> None:
    with pytest.raises(TypeError):
        JsonSerializer().serialize({"when": datetime(2024, 1, 1)})


def test_csv_rejects_ragged_rows() -> None:
    with pytest.raises(ValueError, match="columns"):
        CsvSerializer().serialize([{"a": 1}, {"b": 2}])
