"""One tenant's Ingress never breaks or takes over another's: what nginx would refuse is refused by the
model (an Event on that Ingress alone, the rest still passes `nginx -t`), and a host belongs to the
namespace that claimed it first."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from ingress_nginx import NGINX, nginx_check
from tenants import ANN, LONG_HOST, ingress, routes, tls_secret, world

from operators.ingress.model import IngressModel
from operators.ingress.offline import model_from_objects


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
