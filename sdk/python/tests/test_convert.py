"""Payloads <-> Struct, filters -> filter.proto, enums <-> protobuf names (no server)."""

from __future__ import annotations

import numpy as np
import pytest
from google.protobuf import json_format

import vectron
from vectron import Field, Filter, HasId, Metric, ReadConsistency
from vectron._convert import (
    enum_arg,
    enum_from_proto,
    enum_name,
    payload_to_struct,
    struct_to_payload,
)
from vectron._proto.vectron.v1 import collections_pb2, filter_pb2


def test_payloads_round_trip() -> None:
    doc = {
        "title": "Moon",
        "year": 1969,
        "score": 0.25,
        "tags": ["a", 1, None, True],
        "author": {"name": "Sagan", "born": -1934},
        "empty": {},
        "nothing": [],
    }
    assert struct_to_payload(payload_to_struct(doc, "t")) == doc
    assert type(struct_to_payload(payload_to_struct({"n": 3.0}, "t"))["n"]) is int
    big = 2.0**60
    assert struct_to_payload(payload_to_struct({"n": big}, "t"))["n"] == big


def test_numpy_values_in_payloads() -> None:
    payload = {"i": np.int64(3), "f": np.float32(0.5), "b": np.bool_(True), "v": np.arange(3)}
    assert struct_to_payload(payload_to_struct(payload, "t")) == {
        "i": 3,
        "f": 0.5,
        "b": True,
        "v": [0, 1, 2],
    }


@pytest.mark.parametrize(
    ("payload", "pattern"),
    [
        ({"x": float("inf")}, "x is not a finite number"),
        ({"x": 10**400}, "not a finite number"),
        ({"x": {"y": {1, 2}}}, r"x\.y is a set"),
        ({2: "a"}, "key 2"),
        ([1, 2], "JSON object"),
    ],
)
def test_bad_payloads_are_refused(payload: object, pattern: str) -> None:
    with pytest.raises(vectron.InvalidArgument, match=pattern):
        payload_to_struct(payload, "point 'p'")  # type: ignore[arg-type]


def test_filters_map_onto_filter_proto() -> None:
    f = Filter(
        must=[Field("kind").keyword("moon"), Field("year").range(gt=1, lte=9.5)],
        should=[Field("tag").any_of(["a", "b"]), HasId(["x", 7])],
        must_not=[Filter(must=[Field("a.b").range(gte=0)])],
    )
    expected = json_format.ParseDict(
        {
            "must": [
                {"field": {"key": "kind", "keyword": "moon"}},
                {"field": {"key": "year", "range": {"gt": 1, "lte": 9.5}}},
            ],
            "should": [
                {"field": {"key": "tag", "anyOf": {"keywords": ["a", "b"]}}},
                {"hasId": {"ids": ["x", "7"]}},
            ],
            "mustNot": [{"filter": {"must": [{"field": {"key": "a.b", "range": {"gte": 0}}}]}}],
        },
        filter_pb2.Filter(),
    )
    assert f.to_proto() == expected
    # Open bounds stay unset (proto3 `optional`), so `gte=0` is not `gte` absent.
    r = Field("y").range(lt=0).to_proto().range
    assert r.HasField("lt") and not r.HasField("gt") and not r.HasField("gte")
    assert Filter().to_proto() == filter_pb2.Filter()


def test_enums() -> None:
    assert enum_arg(Metric, "COSINE", "metric") is Metric.COSINE
    assert enum_name(Metric.DOT) == "METRIC_DOT"
    assert enum_name(ReadConsistency.LINEARIZABLE) == "READ_CONSISTENCY_LINEARIZABLE"
    assert enum_from_proto(Metric, collections_pb2.METRIC_L2) is Metric.L2
    assert enum_from_proto(Metric, 99) is Metric.UNSPECIFIED  # a value from a newer server
    with pytest.raises(vectron.InvalidArgument, match="'cosine', 'l2', 'dot'"):
        enum_arg(Metric, "euclid", "metric")


def test_search_result_is_a_sequence() -> None:
    hits = (
        vectron.ScoredPoint("a", 0.9, None, None),
        vectron.ScoredPoint("b", 0.5, {"k": 1}, np.ones(2, dtype=np.float32)),
    )
    result = vectron.SearchResult(hits)
    assert len(result) == 2 and result[1].id == "b" and list(result) == list(hits)
    assert result.ids == ["a", "b"]
    assert result[1] == vectron.ScoredPoint("b", 0.5, {"k": 1}, np.ones(2, dtype=np.float32))
    assert result[1] != vectron.ScoredPoint("b", 0.5, {"k": 1}, np.zeros(2, dtype=np.float32))
