"""Property: whatever Ingresses the API server would accept, the config passes `nginx -t`, each Ingress is
either served or named by a problem (its Event), and an unrelated tenant's routes stay in the config.

`KNET_PROPERTY_EXAMPLES` sets the number of examples (a few seconds' worth by default)."""

from __future__ import annotations

import os
import string
import tempfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ingress_nginx import NGINX, nginx_check
from tenants import ANN, ingress, routes, tls_secret, world

from operators.ingress.offline import model_from_objects

pytestmark = pytest.mark.skipif(not Path(NGINX).exists(), reason="nginx is not installed")
EXAMPLES = int(os.environ.get("KNET_PROPERTY_EXAMPLES") or 12)

label = st.one_of(st.from_regex(r"\A[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\Z"), st.integers(1, 63).map(lambda n: "l" * n))
host = st.lists(label, min_size=1, max_size=5).map(".".join).filter(lambda h: len(h) <= 253)
hosts = st.one_of(st.just(""), host, host.map(lambda h: "*." + h).filter(lambda h: len(h) <= 253))
url_chars = string.ascii_letters + string.digits + "/-._~%!$&'()*+,;=:@"
long = st.sampled_from([1024, 1025, 1400, 4100]).map(lambda n: "a" * n)  # nginx reads 4096 bytes in one word
path = st.one_of(st.text(url_chars, max_size=30), long).map(lambda p: "/" + p)
regex = st.one_of(st.text(url_chars + "|?^[]{}\\ \"#", max_size=30), long, st.integers(1, 99999).map(
    lambda n: f"a{{{n}}}")).map(lambda p: "/" + p)
value = st.one_of(st.text(max_size=20), st.sampled_from(["true", "false", "*", "GET,POST", "X-Canary", "50", "/$1"]),
                  long, long.map(lambda p: "/" + p), host.map(lambda h: "https://" + h),
                  st.integers(1, 128).map(lambda n: "v" * n),
                  st.integers(1, 1500).map(lambda n: ",".join(f"M{chr(65 + i % 26)}{chr(65 + i // 26 % 26)}"
                                                              for i in range(n))))
annotation_names = ["rewrite-target", "use-regex", "enable-cors", "cors-allow-origin", "cors-allow-methods",
                    "cors-allow-headers", "canary", "canary-by-header", "canary-by-header-value", "canary-weight",
                    "app-root", "permanent-redirect", "upstream-hash-by", "session-cookie-path", "affinity",
                    "proxy-body-size", "upstream-vhost", "custom-http-errors"]
annotations = st.dictionaries(st.sampled_from(annotation_names).map(lambda n: ANN + n), value, max_size=5)
KEYS = {"good": rsa.generate_private_key(65537, 2048), "rsa1024": rsa.generate_private_key(65537, 1024),
        "p192": ec.generate_private_key(ec.SECP192R1())}


@st.composite
def tenant_ingress(draw: st.DrawFn, n: int) -> dict:
    path_type = draw(st.sampled_from(["Exact", "Prefix", "ImplementationSpecific"]))
    obj = ingress(f"i{n}", draw(hosts), draw(regex if path_type == "ImplementationSpecific" else path), path_type,
                  ns=draw(st.sampled_from(["t1", "t2"])), annotations=draw(annotations),
                  created=draw(st.sampled_from(["2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"])))
    secret = draw(st.sampled_from([None, *KEYS]))
    if secret and obj["spec"]["rules"][0]["host"]:
        obj["spec"]["tls"] = [{"hosts": [obj["spec"]["rules"][0]["host"].removeprefix("*.")], "secretName": secret}]
    return obj


def _secrets() -> list[dict]:
    out = []
    for ns in ("t1", "t2"):
        for name, key in KEYS.items():
            secret = tls_secret(name, f"cert-{name}.test", key)
            secret["metadata"]["namespace"] = ns
            out.append(secret)
    return out


SECRETS = _secrets()


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(0, 10**6), min_size=1, max_size=4).flatmap(
    lambda ids: st.tuples(*(tenant_ingress(n) for n in range(len(ids))))))
def test_any_valid_ingresses_are_served_or_named(tenants: tuple[dict, ...]) -> None:
    objects = [*world(*tenants), *SECRETS]
    model, problems = model_from_objects(objects)
    with tempfile.TemporaryDirectory() as root:
        nginx_check(model, Path(root))
    named = {(p.namespace, p.name) for p in problems}
    assert routes(model, "good.example.com") == {"/": "app/good"}
    for obj in tenants:
        md, rule = obj["metadata"], obj["spec"]["rules"][0]
        key, path = f"{md['namespace']}/{md['name']}", rule["http"]["paths"][0]["path"]
        served = any(loc.ingress == key and loc.path == path for s in model.servers for loc in s.locations)
        assert served or (md["namespace"], md["name"]) in named, f"{key} neither served nor named"
