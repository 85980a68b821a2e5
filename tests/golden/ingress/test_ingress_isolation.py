"""One tenant's Ingress never breaks or takes over another's: what nginx would refuse is refused by the
model (an Event on that Ingress alone, the rest still passes `nginx -t`), and a host belongs to the
namespace that claimed it first."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from ingress_nginx import NGINX, nginx_check

from operators.ingress.certs import self_signed
from operators.ingress.model import IngressModel
from operators.ingress.offline import model_from_objects

ANN = "nginx.ingress.kubernetes.io/"
LONG_HOST = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])  # 253 characters, the API's longest


def ingress(name: str, host: str, path: str = "/", path_type: str = "Prefix", ns: str = "app",
            annotations: dict[str, str] | None = None, created: str = "2026-01-01T00:00:00Z", uid: str = "",
            tls: str = "") -> dict:
    spec: dict = {"ingressClassName": "knet", "rules": [{"host": host, "http": {"paths": [
        {"path": path, "pathType": path_type, "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}
    if tls:
        spec["tls"] = [{"hosts": [host], "secretName": tls}]
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "spec": spec,
            "metadata": {"name": name, "namespace": ns, "annotations": annotations or {},
                         "creationTimestamp": created, "uid": uid or f"uid-{ns}-{name}"}}


def world(*ingresses: dict) -> list[dict]:
    """The class, a Service `web` with one endpoint in every namespace used, a good Ingress, and `ingresses`."""
    out: list[dict] = [{"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass", "metadata": {"name": "knet"},
                        "spec": {"controller": "knet.io/ingress-nginx"}}]
    all_ingresses = [ingress("good", "good.example.com", created="2025-01-01T00:00:00Z"), *ingresses]
    for ns in sorted({i["metadata"]["namespace"] for i in all_ingresses}):
        out += [{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": ns},
                 "spec": {"clusterIP": "10.96.0.10", "ports": [{"name": "http", "port": 80}]}},
                {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
                 "metadata": {"name": "web-1", "namespace": ns, "labels": {"kubernetes.io/service-name": "web"}},
                 "ports": [{"name": "http", "port": 80}], "endpoints": [{"addresses": ["10.0.0.5"]}]}]
    return out + all_ingresses


def served(objects: list[dict], tmp: Path, config: dict | None = None) -> tuple[IngressModel, str, dict[str, str]]:
    """The model, the config that `nginx -t` accepted, and the problems by Ingress name (joined)."""
    if not Path(NGINX).exists():
        pytest.skip("nginx is not installed")
    model, problems = model_from_objects(objects, config)
    text = nginx_check(model, tmp)
    by_name: dict[str, str] = {}
    for p in problems:
        by_name[p.name] = by_name.get(p.name, "") + p.message + "\n"
    assert "good.example.com" in text
    return model, text, by_name


def routes(model: IngressModel, host: str) -> dict[str, str]:
    """path -> the Ingress (namespace/name) that serves it on `host`."""
    server = next(s for s in model.servers if s.host == host)
    return {loc.path: loc.ingress for loc in server.locations}


def tls_secret(name: str, host: str, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> dict:
    cert, key_pem = self_signed([host], key=key)
    return {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {"name": name, "namespace": "app"},
            "data": {"tls.crt": base64.b64encode(cert).decode(), "tls.key": base64.b64encode(key_pem).decode()}}


# --- what nginx would refuse ----------------------------------------------------------------------


def test_longest_host_the_api_allows_is_served(tmp_path: Path) -> None:
    model, _, problems = served(world(ingress("long", LONG_HOST)), tmp_path)
    assert routes(model, LONG_HOST) == {"/": "app/long"} and not problems


def test_long_cors_origin_and_canary_header_value_are_served(tmp_path: Path) -> None:
    origin = "https://" + LONG_HOST
    cors = ingress("cors", "cors.test", annotations={ANN + "enable-cors": "true", ANN + "cors-allow-origin": origin})
    canary = ingress("canary", "cors.test", annotations={ANN + "canary": "true", ANN + "canary-by-header": "X-C",
                                                         ANN + "canary-by-header-value": "v" * 128})
    _, text, problems = served(world(cors, canary), tmp_path)
    assert origin in text and "v" * 128 in text and not problems


@pytest.mark.parametrize("path_type", ["Exact", "Prefix", "ImplementationSpecific"])
def test_path_longer_than_nginx_reads_is_refused(tmp_path: Path, path_type: str) -> None:
    _, text, problems = served(world(ingress("long", "long.test", "/" + "a" * 5000, path_type)), tmp_path)
    assert "too long" in problems["long"] and "a" * 5000 not in text


def test_rewrite_target_longer_than_nginx_reads_is_refused(tmp_path: Path) -> None:
    target = {ANN + "rewrite-target": "/" + "a" * 5000}
    _, text, problems = served(world(ingress("long", "long.test", annotations=target)), tmp_path)
    assert "rewrite-target" in problems["long"] and "a" * 5000 not in text


def test_thousands_of_cors_methods_are_refused(tmp_path: Path) -> None:
    methods = ",".join("".join(chr(65 + i // 26**k % 26) for k in range(3)) for i in range(1200))
    annotations = {ANN + "enable-cors": "true", ANN + "cors-allow-methods": methods}
    _, _, problems = served(world(ingress("cors", "cors.test", annotations=annotations)), tmp_path)
    assert "cors-allow-methods" in problems["cors"]


@pytest.mark.parametrize("key", [lambda: rsa.generate_private_key(65537, 1024),
                                 lambda: ec.generate_private_key(ec.SECP192R1())], ids=["rsa1024", "p192"])
def test_tls_key_nginx_would_refuse_gets_the_default_certificate(tmp_path: Path, key) -> None:
    objects = [*world(ingress("weak", "weak.test", tls="weak-tls")), tls_secret("weak-tls", "weak.test", key())]
    model, _, problems = served(objects, tmp_path)
    assert "weak-tls" in problems["weak"] and not model.certificates


# --- host takeover across namespaces ----------------------------------------------------------------


def test_host_belongs_to_the_namespace_that_claimed_it_first() -> None:
    late = ingress("take", "shop.test", "/admin", ns="evil", created="2026-02-01T00:00:00Z")
    model, problems = model_from_objects(world(ingress("shop", "shop.test", ns="shop"), late))
    assert routes(model, "shop.test") == {"/": "shop/shop"}
    assert [(p.namespace, p.name) for p in problems if "shop.test" in p.message] == [("evil", "take")]


def test_regex_catch_all_from_another_namespace_does_not_catch_the_host() -> None:
    regex = ingress("take", "shop.test", "/zzzz|/", "ImplementationSpecific", ns="evil",
                    annotations={ANN + "use-regex": "true"}, created="2026-02-01T00:00:00Z")
    model, _ = model_from_objects(world(ingress("shop", "shop.test", ns="shop"), regex))
    assert set(routes(model, "shop.test").values()) == {"shop/shop"}


def test_same_timestamp_the_lower_uid_claims_the_host() -> None:
    first, second = ingress("a", "shop.test", ns="zz", uid="1"), ingress("b", "shop.test", "/b", ns="aa", uid="2")
    model, _ = model_from_objects(world(first, second))
    assert set(routes(model, "shop.test").values()) == {"zz/a"}


def test_binding_off_merges_namespaces() -> None:
    late = ingress("other", "shop.test", "/other", ns="team2", created="2026-02-01T00:00:00Z")
    model, _ = model_from_objects(world(ingress("shop", "shop.test", ns="shop"), late), {"bindHostToNamespace": False})
    assert routes(model, "shop.test") == {"/": "shop/shop", "/other": "team2/other"}


def test_canary_from_another_namespace_is_refused() -> None:
    weight = {ANN + "canary": "true", ANN + "canary-weight": "100"}
    canary = ingress("canary", "shop.test", ns="evil", annotations=weight)
    model, problems = model_from_objects(world(ingress("shop", "shop.test", ns="shop"), canary),
                                         {"bindHostToNamespace": False})
    assert not any(loc.canary for s in model.servers for loc in s.locations)
    assert any(p.name == "canary" and "namespace" in p.message for p in problems)


def test_regex_quantifier_pcre_refuses_is_refused(tmp_path: Path) -> None:
    regex = ingress("big", "big.test", "/a{70000}", "ImplementationSpecific", annotations={ANN + "use-regex": "true"})
    _, _, problems = served(world(regex), tmp_path)
    assert "/a{70000}" in problems["big"]
