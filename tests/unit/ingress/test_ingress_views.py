"""Parsing of IngressClass, Ingress and TLS Secret objects into frozen views, never raising."""

from __future__ import annotations

import base64
import datetime as dt

import pytest

from operators.ingress.certs import self_signed
from operators.kube.ingresses import (
    BackendRef,
    host_matches,
    is_host,
    parse_ingress,
    parse_ingress_class,
    parse_tls_secret,
)


def _ingress(spec: dict, annotations: dict | None = None, **md: object) -> dict:
    return {"metadata": {"name": "i", "namespace": "ns", "annotations": annotations or {}, **md}, "spec": spec}


def test_ingress_class_default_annotation() -> None:
    cls, problems = parse_ingress_class({"metadata": {"name": "knet", "annotations": {
        "ingressclass.kubernetes.io/is-default-class": "true"}}, "spec": {"controller": "knet.io/ingress-nginx"}})
    assert cls is not None and cls.is_default and cls.controller == "knet.io/ingress-nginx" and not problems
    missing, problems = parse_ingress_class({"metadata": {"name": "x"}, "spec": {}})
    assert missing is None and problems


@pytest.mark.parametrize(("host", "ok"), [
    ("a.example.com", True), ("*.example.com", True), ("*.com", True), ("", False), ("A.example.com", False),
    ("*", False), ("a.*.com", False), ("10.0.0.1", False), ("a_b.com", False), ("a.com.", False), (7, False),
])
def test_hosts(host: object, ok: bool) -> None:
    assert is_host(host) is ok


def test_wildcards_cover_one_label() -> None:
    assert host_matches("*.example.com", "a.example.com")
    assert not host_matches("*.example.com", "a.b.example.com")
    assert not host_matches("*.example.com", "example.com")
    assert host_matches("a.example.com", "a.example.com")


def test_ingress_spec() -> None:
    ing, problems = parse_ingress(_ingress({
        "ingressClassName": "knet",
        "defaultBackend": {"service": {"name": "web", "port": {"name": "http"}}},
        "tls": [{"hosts": ["*.example.com"], "secretName": "wild"}],
        "rules": [{"host": "*.example.com", "http": {"paths": [
            {"path": "/a", "pathType": "Exact", "backend": {"service": {"name": "api", "port": {"number": 80}}}},
            {"pathType": "ImplementationSpecific", "backend": {"service": {"name": "api", "port": {"number": 80}}}},
        ]}}]}, creationTimestamp="2024-05-01T10:00:00+02:00"))
    assert ing is not None and not problems
    assert ing.class_name == "knet" and not ing.class_from_annotation
    assert ing.default_backend == BackendRef("web", "http")
    assert [(p.path, p.path_type) for p in ing.rules[0].paths] == [("/a", "Exact"), ("/", "ImplementationSpecific")]
    assert ing.tls[0].hosts == ("*.example.com",) and ing.tls[0].secret_name == "wild"
    assert ing.created == "2024-05-01T08:00:00Z"


def test_legacy_class_annotation_and_a_yaml_timestamp() -> None:
    """A YAML loader turns an unquoted creationTimestamp into a datetime: it reads as the API's string."""
    obj = {"metadata": {"name": "i", "namespace": "ns", "annotations": {"kubernetes.io/ingress.class": "knet"},
                        "creationTimestamp": dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC)},
           "spec": {"defaultBackend": {"service": {"name": "web", "port": {"number": 8080}}}}}
    ing, problems = parse_ingress(obj)
    assert ing is not None and not problems
    assert (ing.class_name, ing.class_from_annotation) == ("knet", True)
    assert ing.created == "2024-01-02T03:04:05Z" and ing.default_backend == BackendRef("web", 8080)


def test_bad_parts_are_dropped_with_problems() -> None:
    ing, problems = parse_ingress(_ingress({"rules": [
        {"host": "bad host", "http": {"paths": []}},
        {"host": "ok.example.com", "http": {"paths": [
            {"path": "/x", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 0}}}},
            {"path": "/y", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}},
        ]}}], "tls": "nope"}))
    assert ing is not None
    assert [p.path for r in ing.rules for p in r.paths] == ["/y"]
    assert len(problems) == 3
    assert parse_ingress("not a dict")[0] is None
    assert parse_ingress({"metadata": {"name": "x", "namespace": "Bad NS"}})[0] is None


def _secret(cert: bytes, key: bytes, kind: str = "kubernetes.io/tls") -> dict:
    return {"metadata": {"name": "s", "namespace": "ns"}, "type": kind,
            "data": {"tls.crt": base64.b64encode(cert).decode(), "tls.key": base64.b64encode(key).decode()}}


def test_tls_secret() -> None:
    cert, key = self_signed(["a.example.com", "*.b.example.com"])
    secret, problems = parse_tls_secret(_secret(cert, key))
    assert secret is not None and not problems
    assert secret.dns_names == ("*.b.example.com", "a.example.com")
    assert secret.covers("a.example.com") and secret.covers("x.b.example.com") and secret.covers("*.b.example.com")
    assert not secret.covers("b.example.com")
    assert secret.cert_pem.startswith(b"-----BEGIN CERTIFICATE-----")


def test_tls_secret_problems() -> None:
    cert, _ = self_signed(["a.example.com"])
    _, other_key = self_signed(["b.example.com"])
    mismatch = parse_tls_secret(_secret(cert, other_key))[1]
    assert mismatch[0].message == "tls.key does not match the certificate in tls.crt"
    assert parse_tls_secret(_secret(b"junk", b"junk"))[1][0].message == "tls.crt is not a PEM certificate chain"
    assert parse_tls_secret({"metadata": {"name": "s", "namespace": "ns"}, "type": "Opaque",
                             "data": {"password": "eA=="}}) == (None, [])
