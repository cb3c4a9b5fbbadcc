"""The UI's reply types mirror the API's reply models (the UI may not import the API, so they
are written twice): each TypedDict in sepsis_api.ui.client has exactly the properties of its
component schema in the served /openapi.json, with value types of the same JSON kinds."""

from __future__ import annotations

import types
import typing
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints, is_typeddict

import pytest

from sepsis_api.ui import client as ui

# TypedDict in sepsis_api.ui.client -> component schema in /openapi.json
MIRRORS: dict[str, str] = {
    "FeatureInfo": "FeatureInfo",
    "FeaturesInfo": "FeaturesResponse",
    "ModelSummary": "ModelSummary",
    "ModelsInfo": "ModelsResponse",
    "ModelDetail": "ModelDetail",
    "Contribution": "Contribution",
    "Prediction": "Prediction",
    "PredictResult": "PredictResponse",
    "HistoryRecord": "HistoryRecord",
    "CurrentOutcome": "CurrentOutcome",
    "HistoryPage": "HistoryPage",
    "FieldError": "FieldError",
    "Figure": "Figure",
    "BandFigures": "BandFigures",
    "Minimum": "Minimum",
    "CardFigures": "CardFigures",
    "PerformanceWindow": "Window",
    "ReliabilityBin": "ReliabilityBin",
    "PerformanceReport": "PerformanceReport",
}
# TypedDicts with no component schema to compare with, and why.
UNMIRRORED: dict[str, str] = {
    "Readiness": "/readyz documents no reply schema (200 ready, 503 with a reason)",
    "PerformanceFigures": "the figures PerformanceReport and PerformanceWindow share; "
    "checked through them",
    **dict.fromkeys(
        ("DriftReport", "FeatureDrift", "PredictedRiskDrift", "AlertRateDrift", "DayAlerts"),
        "/v1/monitoring/drift documents no reply schema (monitoring/drift.py's as_dict)",
    ),
}

# A JSON kind: ("string",), ("number",), ("integer",), ("boolean",), ("null",), ("any",),
# ("array", items), ("object", values) for a map, ("ref", component) for a named object.
Kinds = frozenset[tuple[Any, ...]]
ANY: Kinds = frozenset({("any",)})
_SCALARS = {str: "string", float: "number", int: "integer", bool: "boolean", type(None): "null"}


def _typeddicts() -> dict[str, Any]:
    return {
        name: obj
        for name, obj in vars(ui).items()
        if is_typeddict(obj) and obj.__module__ == ui.__name__
    }


def _python_kinds(tp: Any) -> Kinds:
    """The JSON kinds a Python annotation of the UI's types allows."""
    origin = get_origin(tp)
    if tp is Any:
        return ANY
    if origin in (Union, types.UnionType):
        return frozenset().union(*(_python_kinds(a) for a in get_args(tp)))
    if origin is Literal:
        return frozenset().union(*(_python_kinds(type(v)) for v in get_args(tp)))
    if origin is list:
        (item,) = get_args(tp)
        return frozenset({("array", _python_kinds(item))})
    if origin is dict:
        key, value = get_args(tp)
        assert key is str, f"JSON object keys are strings, not {key}"
        return frozenset({("object", _python_kinds(value))})
    if is_typeddict(tp):
        assert tp.__name__ in MIRRORS, f"{tp.__name__} is nested in a reply but not mirrored"
        return frozenset({("ref", MIRRORS[tp.__name__])})
    if tp in _SCALARS:
        return frozenset({(_SCALARS[tp],)})
    raise AssertionError(f"no JSON kind for the annotation {tp!r}")


def _schema_kinds(schema: dict[str, Any]) -> Kinds:
    """The JSON kinds a property's schema allows (pydantic's output: anyOf, $ref, type)."""
    if "$ref" in schema:
        return frozenset({("ref", schema["$ref"].rsplit("/", 1)[-1])})
    if "anyOf" in schema:
        return frozenset().union(*(_schema_kinds(s) for s in schema["anyOf"]))
    kind = schema.get("type")
    if kind is None:
        return ANY  # {}: any JSON value
    if kind == "array":
        return frozenset({("array", _schema_kinds(schema.get("items", {})))})
    if kind == "object":
        values = schema.get("additionalProperties", True)
        return frozenset({("object", ANY if values is True else _schema_kinds(values))})
    return frozenset({(kind,)})


def _same(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    if a[0] != b[0]:
        return False
    if a[0] == "ref":
        return bool(a[1] == b[1])
    if a[0] in ("array", "object"):
        return _agree(a[1], b[1])
    return True


def _agree(ours: Kinds, theirs: Kinds) -> bool:
    """Both sides allow the same kinds (Any on either side agrees with everything)."""
    if ours == ANY or theirs == ANY:
        return True
    return all(any(_same(a, b) for b in theirs) for a in ours) and all(
        any(_same(a, b) for a in ours) for b in theirs
    )


@pytest.fixture
def schemas(client) -> dict[str, Any]:
    r = client.get("/openapi.json")
    assert r.status_code == 200
    return r.json()["components"]["schemas"]


def test_every_typeddict_is_mirrored_or_says_why_not():
    assert set(_typeddicts()) == set(MIRRORS) | set(UNMIRRORED)
    assert not set(MIRRORS) & set(UNMIRRORED)


@pytest.mark.parametrize("typed_name", sorted(MIRRORS))
def test_keys_equal_the_schema_properties(schemas, typed_name):
    typed = _typeddicts()[typed_name]
    properties = schemas[MIRRORS[typed_name]]["properties"]
    keys = set(typed.__required_keys__ | typed.__optional_keys__)
    assert keys == set(properties), (
        f"ui.client.{typed_name} vs {MIRRORS[typed_name]}: "
        f"only in the UI {sorted(keys - set(properties))}, "
        f"only in the API {sorted(set(properties) - keys)}"
    )


@pytest.mark.parametrize("typed_name", sorted(MIRRORS))
def test_value_types_are_of_the_same_json_kinds(schemas, typed_name):
    typed = _typeddicts()[typed_name]
    properties = schemas[MIRRORS[typed_name]]["properties"]
    hints = get_type_hints(typed)
    wrong = {
        key: (hints[key], properties[key])
        for key in hints.keys() & properties.keys()
        if not _agree(_python_kinds(hints[key]), _schema_kinds(properties[key]))
    }
    assert not wrong, f"ui.client.{typed_name} vs {MIRRORS[typed_name]}: {wrong}"


def test_the_kind_comparison_tells_types_apart():
    """The checker itself: nullability, scalars, nesting and references all count."""

    def agree(tp: Any, schema: dict[str, Any]) -> bool:
        return _agree(_python_kinds(tp), _schema_kinds(schema))

    null_or_str = {"anyOf": [{"type": "string"}, {"type": "null"}]}
    assert agree(str | None, null_or_str) and not agree(str, null_or_str)
    assert not agree(str | None, {"type": "string"})
    assert not agree(float, {"type": "integer"}) and not agree(bool, {"type": "string"})
    assert agree(Literal["a", "b"], {"type": "string", "enum": ["a", "b"]})
    assert agree(list[int], {"type": "array", "items": {"type": "integer"}})
    assert not agree(list[str], {"type": "array", "items": {"type": "integer"}})
    number_map = {"type": "object", "additionalProperties": {"type": "number"}}
    assert agree(dict[str, float], number_map) and not agree(dict[str, str], number_map)
    contribution = {"$ref": "#/components/schemas/Contribution"}
    assert agree(ui.Contribution, contribution)
    assert not agree(ui.Contribution, {"$ref": "#/components/schemas/Prediction"})
    assert agree(typing.Any, {"type": "integer"}) and agree(int, {})


def _keys(typed: Any) -> set[str]:
    return set(typed.__required_keys__ | typed.__optional_keys__)


def test_the_drift_reply_has_the_keys_of_its_typeddicts(client):
    """/v1/monitoring/drift has no reply schema to compare with: compare a real reply."""
    from factories import patient

    assert client.post("/v1/predict", json=patient()).status_code == 200
    r = client.get("/v1/monitoring/drift")
    assert r.status_code == 200
    report = r.json()
    assert set(report) == _keys(ui.DriftReport)
    assert report["features"] and all(set(f) == _keys(ui.FeatureDrift) for f in report["features"])
    assert set(report["predicted_risk"]) == _keys(ui.PredictedRiskDrift)
    assert set(report["alert_rate"]) == _keys(ui.AlertRateDrift)
    assert report["alerts_per_day"]
    assert all(set(d) == _keys(ui.DayAlerts) for d in report["alerts_per_day"])
