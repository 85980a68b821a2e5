"""Label selectors: semantics of each operator, empty vs null, and invalid input as problems."""

from __future__ import annotations

import pytest

from operators.kube.parse import Reader
from operators.kube.selectors import (
    EVERYTHING,
    NOTHING,
    Labels,
    parse_selector,
    valid_label_key,
    valid_label_value,
)


def sel(obj):
    reader = Reader("NetworkPolicy", "p", "ns")
    selector = parse_selector(obj, reader)
    assert reader.problems == [] and selector is not None
    return selector


def test_empty_matches_everything_and_null_nothing() -> None:
    assert sel({}) == EVERYTHING and sel({}).is_empty
    assert sel({}).matches({}) and sel({}).matches({"a": "b"})
    assert sel(None) == NOTHING and not sel(None).is_empty
    assert not sel(None).matches({}) and not sel(None).matches({"a": "b"})
    assert sel({"matchLabels": None, "matchExpressions": None}) == EVERYTHING


def test_match_labels_are_anded() -> None:
    s = sel({"matchLabels": {"app": "web", "tier": "front"}})
    assert s.matches({"app": "web", "tier": "front", "x": "y"})
    assert not s.matches({"app": "web"})
    assert not s.matches({"app": "web", "tier": "back"})


@pytest.mark.parametrize(
    ("expr", "labels", "want"),
    [
        ({"key": "a", "operator": "In", "values": ["1", "2"]}, {"a": "2"}, True),
        ({"key": "a", "operator": "In", "values": ["1"]}, {"a": "2"}, False),
        ({"key": "a", "operator": "In", "values": ["1"]}, {}, False),
        ({"key": "a", "operator": "NotIn", "values": ["1"]}, {"a": "2"}, True),
        ({"key": "a", "operator": "NotIn", "values": ["1"]}, {"a": "1"}, False),
        ({"key": "a", "operator": "NotIn", "values": ["1"]}, {}, True),  # absent key: not in
        ({"key": "a", "operator": "Exists"}, {"a": ""}, True),
        ({"key": "a", "operator": "Exists"}, {"b": "1"}, False),
        ({"key": "a", "operator": "DoesNotExist"}, {"b": "1"}, True),
        ({"key": "a", "operator": "DoesNotExist"}, {"a": "1"}, False),
    ],
)
def test_expressions(expr, labels, want) -> None:
    assert sel({"matchExpressions": [expr]}).matches(labels) is want


def test_labels_and_expressions_combine_with_and() -> None:
    s = sel({"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "env", "operator": "DoesNotExist"}]})
    assert s.matches({"app": "web"})
    assert not s.matches({"app": "web", "env": "dev"})


def test_equal_selectors_parse_equal() -> None:
    a = sel({"matchLabels": {"a": "1", "b": "2"}})
    b = sel(
        {"matchExpressions": [{"key": "b", "operator": "In", "values": ["2"]}], "matchLabels": {"a": "1"}}
    )
    assert a == b and hash(a) == hash(b)


@pytest.mark.parametrize(
    "obj",
    [
        "app=web",
        {"matchLabels": ["app"]},
        {"matchLabels": {"app": 1}},
        {"matchLabels": {"bad key!": "x"}},
        {"matchLabels": {"app": "-web"}},
        {"matchExpressions": {"key": "a"}},
        {"matchExpressions": ["a"]},
        {"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]},
        {"matchExpressions": [{"key": "a", "operator": "In", "values": []}]},
        {"matchExpressions": [{"key": "a", "operator": "NotIn"}]},
        {"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]},
        {"matchExpressions": [{"operator": "Exists"}]},
        {"matchExpressions": [{"key": "a", "operator": "In", "values": ["ok", "not ok"]}]},
    ],
)
def test_invalid_selectors_are_problems_not_exceptions(obj) -> None:
    reader = Reader("NetworkPolicy", "p", "ns")
    assert parse_selector(obj, reader, "spec.podSelector") is None
    assert reader.problems and all(p.message.startswith("spec.podSelector") for p in reader.problems)
    assert {(p.kind, p.namespace, p.name) for p in reader.problems} == {("NetworkPolicy", "ns", "p")}


@pytest.mark.parametrize(
    ("key", "ok"),
    [
        ("app", True),
        ("app.kubernetes.io/name", True),
        ("kubernetes.io/metadata.name", True),
        ("a" * 63, True),
        ("a" * 64, False),
        ("/app", False),
        ("Example.com/app", False),
        ("example.com/", False),
        ("-app", False),
        ("a/b/c", False),
        (3, False),
    ],
)
def test_label_keys(key, ok) -> None:
    assert valid_label_key(key) is ok


def test_label_values() -> None:
    assert valid_label_value("") and valid_label_value("v1.2_3-x") and valid_label_value("A")
    assert not valid_label_value("x" * 64) and not valid_label_value("a b") and not valid_label_value(None)


def test_labels_view_is_hashable_and_compares_as_mapping() -> None:
    a = Labels({"b": "2", "a": "1"})
    assert a == {"a": "1", "b": "2"} and a == Labels({"a": "1", "b": "2"})
    assert hash(a) == hash(Labels({"a": "1", "b": "2"}))
    assert list(a) == ["a", "b"] and len(a) == 2 and a["b"] == "2"
    assert a != Labels({"a": "1"})


@pytest.mark.parametrize("text", ["app\n", "a.example\n"])
def test_a_trailing_newline_is_no_label(text: str) -> None:
    assert not valid_label_value(text) and not valid_label_key(text) and not valid_label_key(f"{text}/x")
