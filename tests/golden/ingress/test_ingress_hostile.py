"""Property tests: hostile strings in hosts, paths, annotation values and Secret names never reach
nginx.conf as written, never break the rest of the config, and the result still passes `nginx -t`."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ingress_nginx import NGINX, nginx_check

from operators.ingress.annotations import KNOWN, PREFIX
from operators.ingress.offline import model_from_objects
from operators.ingress.render import render_config

pytestmark = pytest.mark.skipif(not Path(NGINX).exists(), reason="nginx is not installed")

DANGEROUS = ';{}"\'\n\r\\$#` \t'
# Mostly URL-ish text with the characters that would end a directive, a block or a string, or
# interpolate a variable, mixed in; plus a few known attack shapes.
hostile = st.one_of(
    st.text(alphabet=st.sampled_from("abz019/.-_*:?=&%()[]" + DANGEROUS), min_size=1, max_size=24),
    st.sampled_from(['/x; return 200 "pwned"', "a.com;}\nserver {", "$host", "${jndi:ldap://x}", "/a\\",
                     "x\n}\nlocation / { proxy_pass http://evil; }", "*.example.com;", "\x00", "/é"]),
)
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _objects(host: str = "good.example.com", path: str = "/", path_type: str = "Prefix",
             annotations: dict[str, str] | None = None, secret: str = "good-tls") -> list[dict]:
    """A Service with one endpoint, one good Ingress, and one Ingress carrying the hostile values."""
    def ingress(name: str, host: str, path: str, ann: dict[str, str], secret: str) -> dict:
        return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                "metadata": {"name": name, "namespace": "app", "annotations": ann,
                             "creationTimestamp": "2024-01-01T00:00:00Z" if name == "good" else None},
                "spec": {"ingressClassName": "knet", "tls": [{"hosts": [host], "secretName": secret}],
                         "rules": [{"host": host, "http": {"paths": [
                             {"path": path, "pathType": path_type if name != "good" else "Prefix",
                              "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}}

    return [
        {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass", "metadata": {"name": "knet"},
         "spec": {"controller": "knet.io/ingress-nginx"}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "app"},
         "spec": {"clusterIP": "10.96.0.10", "ports": [{"name": "http", "port": 80}]}},
        {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
         "metadata": {"name": "web-1", "namespace": "app", "labels": {"kubernetes.io/service-name": "web"}},
         "addressType": "IPv4", "ports": [{"name": "http", "port": 80}], "endpoints": [{"addresses": ["10.0.0.5"]}]},
        ingress("good", "good.example.com", "/", {}, "good-tls"),
        ingress("hostile", host, path, annotations or {}, secret),
    ]


def _check(objects: list[dict], raw: str, dangerous: str = DANGEROUS) -> None:
    """The raw value (if it holds a dangerous character) is nowhere in the config unless the config
    without the hostile Ingress holds it too (`$` alone, say); the good Ingress survives; nginx -t passes."""
    model, _ = model_from_objects(objects)
    text = render_config(model)
    baseline = render_config(model_from_objects(objects[:-1])[0])
    if any(c in raw for c in dangerous) or any(ord(c) < 32 for c in raw):
        assert raw in baseline or raw not in text, f"hostile input {raw!r} reached nginx.conf"
    assert "good.example.com" in text, "the good Ingress was lost"
    with tempfile.TemporaryDirectory() as root:
        nginx_check(model, Path(root))


@SETTINGS
@given(hostile)
def test_hostile_hosts(host: str) -> None:
    _check(_objects(host=host), host)


@SETTINGS
@given(hostile.map(lambda s: "/" + s), st.sampled_from(["Exact", "Prefix", "ImplementationSpecific"]), st.booleans())
def test_hostile_paths(path: str, path_type: str, regex: bool) -> None:
    annotations = {PREFIX + "use-regex": "true"} if regex else {}
    # a regex may keep `$`, `{}` and backslashes (quoted; nginx does not expand variables in regexes)
    dangerous = ';"\'\n\r#` \t' if regex and path_type == "ImplementationSpecific" else DANGEROUS
    _check(_objects(path=path, path_type=path_type, annotations=annotations), path, dangerous)


@SETTINGS
@given(st.sampled_from(sorted(KNOWN)), hostile)
def test_hostile_annotation_values(name: str, value: str) -> None:
    enable = {PREFIX + "enable-cors": "true", PREFIX + "affinity": "cookie", PREFIX + "canary": "false"}
    _check(_objects(annotations={**enable, PREFIX + name: value}), value)


@SETTINGS
@given(hostile)
def test_hostile_secret_names(secret: str) -> None:
    _check(_objects(secret=secret), secret)


@SETTINGS
@given(hostile, st.sampled_from(["name", "namespace", "service", "port"]))
def test_hostile_object_names(value: str, where: str) -> None:
    """Names end up in comments and upstream names: a newline there would end the comment."""
    objects = _objects()
    hostile_ingress = objects[-1]
    backend = hostile_ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    if where in ("name", "namespace"):
        hostile_ingress["metadata"][where] = value
    elif where == "service":
        backend["name"] = value
    else:
        backend["port"] = {"name": value}
    _check(objects, value)
