"""The nginx Ingress controller on the devcluster: `knet ingress` in a pod, real nginx, requests from outside.

Placement (there is no Service proxy in these tests; nginx proxies to the pod addresses it learns from
EndpointSlices): `knet ingress` runs as a hostNetwork pod on the worker with its ServiceAccount and a
least-privilege ClusterRole, so nginx listens on the worker's address, ports 80 and 443. The backends
are agnhost netexec Deployments and the echo Deployment (apps/echo_server.py, the conformance suite's
echoserver role); requests come from the external client namespace (`curl --resolve HOST:PORT:WORKER`,
apps/http_batch.py for many requests at once, wrk for load). Each backend reports which pod answered;
the echo backend also reports the Service, path, Host and method it saw. The conformance scenarios follow
kubernetes-sigs/ingress-controller-conformance's features (default_backend, host_rules, path_rules,
ingress_class, load balancing over 10 replicas). Reloads are read from the controller's metrics
endpoint (`knet_ingress_reloads_total`).
"""

from __future__ import annotations

import base64
import concurrent.futures
import functools
import json
import re
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from bench.ingress_wrk import parse_wrk, wrk_command
from operators.ingress.certs import self_signed
from tests.e2e.apps import app_path
from tests.e2e.harness import FIGURES, Cluster, wait_for

CTL = "knet-ingress-e2e"
APPS = "ingress-apps"
AGNHOST = "registry.k8s.io/e2e-test-images/agnhost:2.53"
REPLICAS = 10  # the conformance suite spreads over 10 replicas
ANN = "nginx.ingress.kubernetes.io/"
PATH_CASES = {  # name: (pathType, path)
    "exact-foo": ("Exact", "/foo"),
    "prefix-foo": ("Prefix", "/foo"),
    "aaa": ("Prefix", "/aaa"),
    "aaa-bbb": ("Prefix", "/aaa/bbb"),
    "ccc": ("Prefix", "/ccc/"),
    "root": ("Prefix", "/"),
}
# request path -> the rule that must answer (Exact over Prefix, whole path elements, longest first)
PATH_EXPECT = {
    "/foo": "exact-foo", "/foo/": "prefix-foo", "/foo/bar": "prefix-foo", "/foo/bar/baz": "prefix-foo",
    "/foobar": "root", "/FOO": "root", "/aaa": "aaa", "/aaa/": "aaa", "/aaa/bbb": "aaa-bbb",
    "/aaa/bbb/": "aaa-bbb", "/aaa/bbbccc": "aaa", "/aaa/bbb/ccc": "aaa-bbb", "/ccc": "ccc", "/ccc/": "ccc",
    "/cccc": "root", "/": "root",
}


MORE_ANNOTATIONS = {  # Ingress (and host NAME.test) -> annotations without the prefix
    "redirect": {"permanent-redirect": "https://example.org/moved"},
    "temporal": {"temporal-redirect": "https://example.org/for-now"},
    "approot": {"app-root": "/app1"},
    "canary-main": {},
    "sticky": {"affinity": "cookie", "session-cookie-name": "route"},
    "cors": {"enable-cors": "true"},
    "small": {"proxy-body-size": "1k"},
    "vhost": {"upstream-vhost": "internal.example"},
    "hashed": {"upstream-hash-by": "$request_uri"},
    "blocked": {"denylist-source-range": "{external}/32"},
    "forced": {"force-ssl-redirect": "true"},
    "badann": {"proxy-body-size": "lots"},
    "weighted": {},
    "errors": {"custom-http-errors": "404,503"},
}
ECHO_ANNOTATIONS = {  # Ingress (and host NAME.test) -> (Service, port, annotations without the prefix), echo backends
    "tlsback": ("echo", 443, {"backend-protocol": "HTTPS"}),
    "grpc": ("echo", 50051, {"backend-protocol": "GRPC"}),
    "grpcs": ("echo", 50443, {"backend-protocol": "GRPCS"}),
    "timeout": ("echo", 8080, {"proxy-read-timeout": "1", "proxy-connect-timeout": "2", "proxy-send-timeout": "2"}),
    "retry": ("flaky", 8080, {"proxy-next-upstream": "error timeout http_503", "proxy-next-upstream-tries": "3"}),
    "noretry": ("flaky", 8080, {"proxy-next-upstream": "off"}),
    "onetry": ("flaky", 8080, {"proxy-next-upstream": "http_503", "proxy-next-upstream-tries": "1"}),
    "rps": ("echo", 8080, {"limit-rps": "1"}),
    "conns": ("echo", 8080, {"limit-connections": "1"}),
    "rr": ("echo", 8080, {"load-balance": "round_robin"}),
    "leastconn": ("echo", 8080, {"load-balance": "least_conn"}),
    "ewma": ("echo", 8080, {"load-balance": "ewma"}),
    "ws": ("echo", 8080, {}),
}
# The request-body cases go to `other`: the devcluster's netexec stand-in does not read request bodies, so
# the upstream keep-alive connection nginx reuses after a POST starts with the unread body (501, 502), and
# the later tests of `web` must not meet such a connection.
BODY_HOSTS = ("small", "badann")
# The echo backend's program (see its docstring), delivered to the pods in a ConfigMap.
ECHO = Path(app_path("echo_server")).read_text()
ECHO_SERVICES = {"echo": 8080, "foo-exact": 8081, "foo-prefix": 8082, "aaa-slash-bbb-prefix": 8083, "aaa-prefix": 8084,
                 "aaa-slash-bbb-slash-prefix": 8085, "foo-slash-exact": 8086, "wildcard-foo-com": 8087,
                 "foo-bar-com": 8088}
SERVICE_AT = {port: name for name, port in ECHO_SERVICES.items()}
# path_rules.feature: host -> its rules (path, pathType, Service)
CONFORMANCE_RULES = {
    "exact-path-rules": [("/foo", "Exact", "foo-exact")],
    "prefix-path-rules": [("/foo", "Prefix", "foo-prefix"), ("/aaa/bbb", "Prefix", "aaa-slash-bbb-prefix"),
                          ("/aaa", "Prefix", "aaa-prefix")],
    "mixed-path-rules": [("/foo", "Prefix", "foo-prefix"), ("/foo", "Exact", "foo-exact")],
    "trailing-slash-path-rules": [("/aaa/bbb/", "Prefix", "aaa-slash-bbb-slash-prefix"),
                                  ("/foo/", "Exact", "foo-slash-exact")],
}
# its 16 scenarios: (host, request path, the Service that must answer with that path, or None for 404)
CONFORMANCE_PATHS = [
    ("exact-path-rules", "/foo", "foo-exact"), ("exact-path-rules", "/foo/", None),
    ("exact-path-rules", "/FOO", None), ("exact-path-rules", "/bar", None),
    ("prefix-path-rules", "/foo", "foo-prefix"), ("prefix-path-rules", "/foo/", "foo-prefix"),
    ("prefix-path-rules", "/FOO", None), ("prefix-path-rules", "/aaa/bbb", "aaa-slash-bbb-prefix"),
    ("prefix-path-rules", "/aaa/bbb/ccc", "aaa-slash-bbb-prefix"), ("prefix-path-rules", "/aaa/ccc", "aaa-prefix"),
    ("prefix-path-rules", "/aaaccc", None), ("prefix-path-rules", "/foo/", "foo-prefix"),  # (twice in the feature)
    ("mixed-path-rules", "/foo", "foo-exact"), ("trailing-slash-path-rules", "/aaa/bbb", "aaa-slash-bbb-slash-prefix"),
    ("trailing-slash-path-rules", "/aaa/bbb/", "aaa-slash-bbb-slash-prefix"),
    ("trailing-slash-path-rules", "/foo", None),
]
CONFORMANCE_CERT = self_signed(["foo.bar.com"])


def node_address(cluster: Cluster, node: str) -> str:
    obj = cluster.get("node", node)
    return next(a["address"] for a in obj["status"]["addresses"] if a["type"] == "InternalIP")


def http_get(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=3) as r:
            return r.read().decode()
    except OSError:
        return ""


def metric(worker: str, name: str) -> float:
    text = http_get(f"http://{worker}:9090/metrics")
    m = re.search(rf"^{re.escape(name)} ([0-9.e+]+)$", text, re.M)
    assert m, f"{name} not in the metrics"
    return float(m.group(1))


def curl(cluster: Cluster, worker: str, host: str, path: str, *extra: str, https: bool = False) -> tuple[int, str]:
    """(status, body) of one request from the external client; (0, error) when none came back."""
    port = 443 if https else 80
    proc = cluster.exec("external", "curl", "-sk", "--max-time", "5", "--resolve", f"{host}:{port}:{worker}",
                        "-o", "-", "-w", "\n%{http_code}", *extra, f"{'https' if https else 'http'}://{host}{path}")
    body, _, code = proc.stdout.rpartition("\n")
    return (int(code), body) if code.isdigit() else (0, proc.stderr)


def hostnames(cluster: Cluster, worker: str, host: str, count: int) -> list[str]:
    """The pods that answered `count` requests for /hostname (one curl per request: new connections)."""
    script = (f"f=$(mktemp); for i in $(seq {count}); do c=$(curl -s -o $f -w '%{{http_code}}' --max-time 5 "
              f"--resolve {host}:80:{worker} http://{host}/hostname); echo \"$c $(tr '\\n' ' ' <$f | head -c 300)\"; "
              "done; rm -f $f")
    lines = cluster.exec("external", "sh", "-c", script, timeout=120).stdout.splitlines()
    failed = [line for line in lines if not line.startswith("200 ")]
    assert not failed, f"{len(failed)} of {count} requests failed: {failed[:3]}"
    return [line.split(" ", 1)[1].strip() for line in lines]


def pod_names(cluster: Cluster, app: str) -> set[str]:
    pods = cluster.pods(APPS, f"app={app}")
    return {p["metadata"]["name"] for p in pods if not p["metadata"].get("deletionTimestamp")
            and cluster.condition(p, "Ready") == "True"}


def ingress(name: str, rules: str, annotations: dict[str, str] | None = None, extra: str = "",
            class_name: str = "knet") -> str:
    return f"""---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: {name}
  namespace: {APPS}
  annotations: {json.dumps(annotations or {})}
spec:
  ingressClassName: {class_name}{extra}
  rules: {rules}
"""


def service_yaml(name: str, selector: str, ports: str, namespace: str = APPS) -> str:
    """A Service; `selector` and `ports` are the insides of YAML flow collections."""
    return f"""---
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  selector: {{{selector}}}
  ports: [{ports}]
"""


HTTP_80 = "{name: http, port: 80, targetPort: 8080}"


def rule(host: str, path: str = "/", path_type: str = "Prefix", service: str = "web", port: int = 80) -> str:
    return (f"[{{host: '{host}', http: {{paths: [{{path: '{path}', pathType: {path_type}, "
            f"backend: {{service: {{name: {service}, port: {{number: {port}}}}}}}}}]}}}}]")


def tls_secret(name: str, host: str, pair: tuple[bytes, bytes] | None = None) -> str:
    cert, key = pair or self_signed([host])
    return f"""---
apiVersion: v1
kind: Secret
metadata: {{name: {name}, namespace: {APPS}}}
type: kubernetes.io/tls
data: {{tls.crt: {base64.b64encode(cert).decode()}, tls.key: {base64.b64encode(key).decode()}}}
"""


def backend(app: str, replicas: int, namespace: str = APPS) -> str:
    return f"""---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {app}, namespace: {namespace}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {app}}}}}
  template:
    metadata: {{labels: {{app: {app}}}}}
    spec:
      containers:
      - name: netexec
        image: {AGNHOST}
        # serve 3 s after SIGTERM, while the controller takes the terminating pod out (as a preStop sleep)
        args: [netexec, --http-port=8080, --delay-shutdown=3]
        readinessProbe: {{httpGet: {{path: /healthz, port: 8080}}, periodSeconds: 1}}
""" + service_yaml(app, f"app: {app}", HTTP_80, namespace)


def echo_backend(app: str, replicas: int, labels: str, fail: int = 0) -> str:
    """The echo Deployment (knet's image running ECHO from a ConfigMap, TLS from the Secret echo-tls)."""
    return f"""---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {app}, namespace: {APPS}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {app}}}}}
  template:
    metadata: {{labels: {{app: {app}, {labels}}}}}
    spec:
      containers:
      - name: echo
        image: localhost/knet:dev
        command: [python3, /app/echo.py]
        env:
        - {{name: PORTS, value: "{','.join(map(str, ECHO_SERVICES.values()))}"}}
        - {{name: TLS_PORT, value: "8443"}}
        - {{name: GRPC_PORT, value: "50051"}}
        - {{name: GRPCS_PORT, value: "50443"}}
        - {{name: FAIL, value: "{fail or ''}"}}
        readinessProbe: {{httpGet: {{path: /healthz, port: 8080}}, periodSeconds: 1}}
        volumeMounts: [{{name: app, mountPath: /app}}, {{name: tls, mountPath: /tls}}]
      volumes:
      - {{name: app, configMap: {{name: echo-script}}}}
      - {{name: tls, secret: {{secretName: echo-tls}}}}
"""


def echo_objects() -> str:
    """The echo script, its Deployments (`echo`, and `echo-bad` answering /flaky with 503), the conformance
    Services (one target port each) and `flaky` over both Deployments."""
    objects = f"""---
apiVersion: v1
kind: ConfigMap
metadata: {{name: echo-script, namespace: {APPS}}}
data: {{echo.py: {json.dumps(ECHO)}}}
"""
    objects += tls_secret("echo-tls", "echo") + echo_backend("echo", 2, "role: flaky")
    objects += echo_backend("echo-bad", 1, "role: flaky", fail=503)
    for name, port in ECHO_SERVICES.items():
        https = (", {name: https, port: 443, targetPort: 8443}, {name: grpc, port: 50051, targetPort: 50051}"
                 ", {name: grpcs, port: 50443, targetPort: 50443}") if name == "echo" else ""
        objects += service_yaml(name, "app: echo", f"{{name: http, port: 8080, targetPort: {port}}}{https}")
    return objects + service_yaml("flaky", "role: flaky", "{name: http, port: 8080, targetPort: 8080}")


def paths(*rules: tuple[str, str, str, int | str]) -> dict:
    """An Ingress rule's `http`: (path, pathType, service, port number or name) each."""
    return {"paths": [{"path": p, "pathType": t, "backend": {"service": {
        "name": svc, "port": {"number": port} if isinstance(port, int) else {"name": port}}}}
        for p, t, svc, port in rules]}


def conformance_ingresses() -> str:
    """path_rules.feature, host_rules.feature and ingress_class.feature's Ingresses."""
    objects = ingress("path-rules", json.dumps([{"host": host, "http": paths(*(
        (p, t, svc, 8080) for p, t, svc in rules))} for host, rules in CONFORMANCE_RULES.items()]))
    objects += tls_secret("conformance-tls", "foo.bar.com", CONFORMANCE_CERT)
    rules = [{"host": "*.foo.com", "http": paths(("/", "Prefix", "wildcard-foo-com", 8080))},
             {"host": "foo.bar.com", "http": paths(("/", "Prefix", "foo-bar-com", "http"))}]
    # (HTTP to a TLS host is answered there, where knet redirects by default as ingress-nginx does)
    objects += ingress("host-rules", json.dumps(rules), {ANN + "ssl-redirect": "false"},
                       extra="\n  tls: [{hosts: [foo.bar.com], secretName: conformance-tls}]")
    return objects + ingress("ingress-class", rule("ingress-class", service="echo", port=8080),
                             class_name="some-invalid-class-name")


# default_backend.feature: an Ingress without rules whose defaultBackend takes every request no rule takes
DEFAULT_INGRESS = ingress("default", "[]", extra="\n  defaultBackend: {service: {name: echo, port: {number: 8080}}}")


def batch(cluster: Cluster, worker: str, requests: list[dict], sequential: bool = False,
          ) -> list[tuple[int, dict[str, str], str]]:
    """Send `requests` (see apps/http_batch.py) from the external client, concurrently unless `sequential`."""
    proc = cluster.exec("external", "python3", app_path("http_batch"), worker, json.dumps(requests),
                        *(["sequential"] if sequential else []), timeout=120)
    assert proc.returncode == 0, proc.stderr
    return [tuple(r) for r in json.loads(proc.stdout)]


def echoed(body: str) -> dict:
    """The echo backend's report, with the Service its port names; {} for any other answer."""
    try:
        report = json.loads(body)
    except ValueError:
        return {}
    return {**report, "service": SERVICE_AT.get(report.get("port"), "")} if isinstance(report, dict) else {}


@pytest.fixture(scope="module")
def worker(cluster: Cluster) -> str:
    return node_address(cluster, f"{cluster.name}-worker")


@pytest.fixture(scope="module")
def external(worker: str) -> str:
    return worker.rsplit(".", 1)[0] + ".250"


def start_controller(cluster: Cluster, namespace: str, worker: str) -> None:
    """`knet ingress` as a hostNetwork pod on the worker, with the ServiceAccount knet-ingress of `namespace`;
    returns once it is ready."""
    cluster.apply(f"""
apiVersion: v1
kind: Pod
metadata: {{name: knet-ingress, namespace: {namespace}, labels: {{app: knet-ingress}}}}
spec:
  serviceAccountName: knet-ingress
  nodeName: {cluster.name}-worker
  hostNetwork: true
  containers:
  - name: ingress
    image: localhost/knet:dev
    args: [ingress, --access-log, "off"]
    env:
    - {{name: KNET_API_SERVER, value: "{cluster.config('server')}"}}
    - {{name: HOST_IP, valueFrom: {{fieldRef: {{fieldPath: status.hostIP}}}}}}
    - {{name: POD_NAME, valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}}}
    readinessProbe: {{httpGet: {{path: /readyz, port: 8080}}, periodSeconds: 1}}
    volumeMounts: [{{name: nginx, mountPath: /var/lib/knet/ingress}}]
  volumes: [{{name: nginx, emptyDir: {{}}}}]
""")
    wait_for(lambda: http_get(f"http://{worker}:8080/readyz") == "ok\n", "knet ingress ready", 90)


@pytest.fixture(scope="module")
def controller(cluster: Cluster, worker: str) -> Iterator[str]:
    """`knet ingress` as a hostNetwork pod on the worker, with the IngressClass `knet` it serves."""
    cluster.apply(f"""
apiVersion: v1
kind: Namespace
metadata: {{name: {CTL}}}
---
apiVersion: v1
kind: ServiceAccount
metadata: {{name: knet-ingress, namespace: {CTL}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {{name: knet-ingress-e2e}}
rules:
- {{apiGroups: [networking.k8s.io], resources: [ingressclasses, ingresses], verbs: [list, watch]}}
- {{apiGroups: [networking.k8s.io], resources: [ingresses/status], verbs: [update]}}
- {{apiGroups: [""], resources: [services, secrets], verbs: [list, watch]}}
- {{apiGroups: [discovery.k8s.io], resources: [endpointslices], verbs: [list, watch]}}
- {{apiGroups: [""], resources: [events], verbs: [create, patch]}}
- {{apiGroups: [""], resources: [namespaces], verbs: [list, watch]}}
- {{apiGroups: [gateway.networking.k8s.io], resources: [gatewayclasses, gateways, httproutes, referencegrants],
   verbs: [list, watch]}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{name: knet-ingress-e2e}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: knet-ingress-e2e}}
subjects: [{{kind: ServiceAccount, name: knet-ingress, namespace: {CTL}}}]
---
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {{name: knet}}
spec: {{controller: knet.io/ingress-nginx}}
---
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {{name: other-e2e}}
spec: {{controller: example.com/other}}
""")
    wait_for(lambda: cluster.kubectl("get", "sa", "knet-ingress", "-n", CTL, check=False).startswith("NAME"),
             "the knet-ingress ServiceAccount", 30)
    start_controller(cluster, CTL, worker)
    yield worker
    cluster.kubectl("delete", "namespace", CTL, "--wait=false", check=False)
    cluster.kubectl("delete", "clusterrolebinding,clusterrole", "knet-ingress-e2e", check=False)
    cluster.kubectl("delete", "ingressclass", "knet", "other-e2e", check=False)


@pytest.fixture(scope="module")
def apps(cluster: Cluster, controller: str, external: str) -> Iterator[str]:
    """The backends, the Secrets and every Ingress of the scenarios; yields once all are served."""
    cluster.apply(f"{{apiVersion: v1, kind: Namespace, metadata: {{name: {APPS}}}}}")
    wait_for(lambda: cluster.kubectl("get", "sa", "default", "-n", APPS, check=False).startswith("NAME"),
             f"serviceaccount {APPS}/default", 30)
    objects = backend("web", REPLICAS) + backend("other", 1) + echo_objects() + conformance_ingresses()
    for name, (service, port, extra) in ECHO_ANNOTATIONS.items():
        objects += ingress(name, rule(f"{name}.test", service=service, port=port),
                           {ANN + k: v for k, v in extra.items()})
    objects += tls_secret("tls-a", "a.tls.test") + tls_secret("tls-b", "b.tls.test")
    objects += ingress("hosts", "[" + rule("web.test")[1:-1] + ", " + rule("*.wild.test")[1:-1] + "]")
    for name, (path_type, path) in PATH_CASES.items():
        objects += ingress(f"path-{name}", rule("paths.test", path, path_type), {ANN + "rewrite-target":
                                                                                 f"/echo?msg={name}"})
    objects += DEFAULT_INGRESS
    objects += ingress("only-exact", rule("only.test", "/hostname", "Exact"))
    objects += ingress("ignored", rule("ignored.test"), class_name="other-e2e")
    objects += ingress("tls-a", rule("a.tls.test"), extra="\n  tls: [{hosts: [a.tls.test], secretName: tls-a}]")
    objects += ingress("tls-b", rule("b.tls.test"), {ANN + "ssl-redirect": "false"},
                       extra="\n  tls: [{hosts: [b.tls.test], secretName: tls-b}]")
    objects += ingress("rewrite", rule("rw.test", "/api(/|$)(.*)", "ImplementationSpecific"),
                       {ANN + "rewrite-target": "/$2", ANN + "use-regex": "true"})
    objects += ingress("allow", rule("allow.test"), {ANN + "whitelist-source-range": f"{external}/32"})
    objects += ingress("deny", rule("deny.test"), {ANN + "whitelist-source-range": "10.0.0.0/8"})
    objects += ingress("missing", rule("missing.test", service="nosuch"))
    objects += service_yaml("idle", "app: idle", HTTP_80)  # its selector matches no pod: never an endpoint
    objects += ingress("idle", rule("idle.test", service="idle"))
    objects += ingress("fallback", rule("fallback.test")) + ingress(
        "fallback-canary", rule("fallback.test", service="idle"),
        {ANN + "canary": "true", ANN + "canary-weight": "100"})
    for name, extra in MORE_ANNOTATIONS.items():
        service = "other" if name in BODY_HOSTS else "web"
        objects += ingress(name, rule(f"{name}.test", service=service), {ANN + k: v.format(external=external)
                                                                         for k, v in extra.items()})
    objects += ingress("canary", rule("canary-main.test", service="other"),
                       {ANN + "canary": "true", ANN + "canary-by-header": "X-Canary",
                        ANN + "canary-by-cookie": "knet_canary"})
    objects += ingress("weighted-canary", rule("weighted.test", service="other"),
                       {ANN + "canary": "true", ANN + "canary-weight": "50"})
    cluster.apply(objects)
    wait_for(lambda: len(pod_names(cluster, "web")) == REPLICAS and pod_names(cluster, "other")
             and len(pod_names(cluster, "echo")) == 2 and pod_names(cluster, "echo-bad"), "backends ready", 120)
    wait_for(lambda: curl(cluster, controller, "web.test", "/hostname")[1] in pod_names(cluster, "web"),
             "web.test served", 60)
    yield controller
    cluster.kubectl("delete", "namespace", APPS, "--wait=false", check=False)


def test_host_rules_and_wildcard(cluster: Cluster, apps: str) -> None:
    web = pod_names(cluster, "web")
    assert curl(cluster, apps, "web.test", "/hostname")[1] in web
    assert curl(cluster, apps, "x.wild.test", "/hostname")[1] in web
    # a wildcard matches exactly one label; other hosts go to the catch-all (the default backend)
    for host in ("a.b.wild.test", "wild.test"):
        assert echoed(curl(cluster, apps, host, "/hostname")[1]).get("service") == "echo", host


def test_conformance_path_rules(cluster: Cluster, apps: str) -> None:
    """path_rules.feature: each scenario's status, the Service that answered and the path it saw."""
    answers = batch(cluster, apps, [{"host": host, "path": path} for host, path, _ in CONFORMANCE_PATHS])
    wrong = []
    for (host, path, service), (code, _, body) in zip(CONFORMANCE_PATHS, answers, strict=True):
        report = echoed(body)
        got = (code, report.get("service"), report.get("path")) if report else (code, None, None)
        if got != ((200, service, path) if service else (404, None, None)):
            wrong.append((host, path, service, got))
    assert not wrong


def test_conformance_host_rules(cluster: Cluster, apps: str) -> None:
    """host_rules.feature (the 404 cases are in test_conformance_without_a_default_backend)."""
    ca = CONFORMANCE_CERT[0].decode()
    answers = batch(cluster, apps, [{"host": "foo.bar.com", "path": "/", "https": True, "ca": ca},
                                    {"host": "foo.bar.com", "path": "/"}, {"host": "bar.foo.com", "path": "/"}])
    got = [(code, echoed(body).get("service"), echoed(body).get("host")) for code, _, body in answers]
    assert got == [(200, "foo-bar-com", "foo.bar.com"), (200, "foo-bar-com", "foo.bar.com"),
                   (200, "wildcard-foo-com", "bar.foo.com")]


def test_conformance_default_backend_every_method(cluster: Cluster, apps: str) -> None:
    """default_backend.feature: every method, any host (or none), any path reaches the defaultBackend."""
    examples = [("GET", "my-host", "/"), ("GET", "my-host", "/sub-path"), ("POST", "some-host", "/"),
                ("PUT", "", "/resource"), ("DELETE", "some-host", "/resource"), ("PATCH", "my-host", "/resource")]
    answers = batch(cluster, apps, [{"method": m, "host": h or apps, "path": p} for m, h, p in examples])
    for (method, _, path), (code, headers, body) in zip(examples, answers, strict=True):
        report = echoed(body)
        assert (code, report.get("service"), report.get("method"), report.get("path")) == (
            200, "echo", method, path), (method, path, code, body)
        assert {"content-length", "content-type", "date", "server"} <= set(headers), headers
    # a host without a `/` rule and no default backend of its own: the built-in 404
    assert curl(cluster, apps, "only.test", "/hostname")[1] in pod_names(cluster, "web")
    assert curl(cluster, apps, "only.test", "/other")[0] == 404


def test_conformance_without_a_default_backend(cluster: Cluster, apps: str) -> None:
    """Without the rule-less Ingress: hosts no rule matches get the built-in 404 (host_rules.feature's
    non-matches, one-label wildcards), and an Ingress of an unknown class routes nothing (ingress_class.feature)."""
    cluster.kubectl("delete", "ingress", "default", "-n", APPS)
    try:
        wait_for(lambda: curl(cluster, apps, "unknown.test", "/")[0] == 404, "the built-in 404 for unknown hosts", 30)
        hosts = ["subdomain.bar.com", "baz.bar.foo.com", "foo.com", "ingress-class", "ignored.test"]
        answers = batch(cluster, apps, [{"host": host, "path": "/"} for host in hosts])
        assert [a[0] for a in answers] == [404] * len(hosts), list(zip(hosts, answers, strict=True))
    finally:
        cluster.apply(DEFAULT_INGRESS)
        wait_for(lambda: echoed(curl(cluster, apps, "unknown.test", "/")[1]).get("service") == "echo",
                 "the default backend again", 30)


def test_ingress_of_another_class_is_ignored(cluster: Cluster, apps: str) -> None:
    assert echoed(curl(cluster, apps, "ignored.test", "/hostname")[1]).get("service") == "echo"
    for name in ("ignored", "ingress-class"):
        assert not cluster.get("ingress", name, "-n", APPS).get("status", {}).get("loadBalancer")


def test_status_has_the_node_address(cluster: Cluster, apps: str) -> None:
    def address(name: str) -> str:
        lb = cluster.get("ingress", name, "-n", APPS).get("status", {}).get("loadBalancer", {})
        return (lb.get("ingress") or [{}])[0].get("ip", "")

    wait_for(lambda: address("hosts") == apps and address("default") == apps, "Ingress status", 30)
    # writing the status keeps the rest of the object (the status strategy takes metadata from the request)
    annotations = cluster.get("ingress", "rewrite", "-n", APPS)["metadata"].get("annotations", {})
    assert annotations.get(ANN + "rewrite-target") == "/$2"


def test_tls_sni_two_hosts(cluster: Cluster, apps: str) -> None:
    for host in ("a.tls.test", "b.tls.test"):
        script = (f"openssl s_client -connect {apps}:443 -servername {host} </dev/null 2>/dev/null "
                  "| openssl x509 -noout -subject")
        subject = cluster.exec("external", "sh", "-c", script).stdout
        assert f"CN = {host}" in subject, subject
        assert curl(cluster, apps, host, "/hostname", https=True)[1] in pod_names(cluster, "web")
    # TLS hosts redirect plain HTTP (308), unless ssl-redirect is "false"
    redirect = cluster.exec("external", "curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}",
                            "--resolve", f"a.tls.test:80:{apps}", "http://a.tls.test/x").stdout
    assert redirect == "308 https://a.tls.test/x"
    assert curl(cluster, apps, "b.tls.test", "/hostname")[1] in pod_names(cluster, "web")


def test_annotations_rewrite_and_source_ranges(cluster: Cluster, apps: str) -> None:
    assert curl(cluster, apps, "rw.test", "/api/hostname")[1] in pod_names(cluster, "web")
    assert curl(cluster, apps, "rw.test", "/api/echo?msg=hi") == (200, "hi")
    assert curl(cluster, apps, "allow.test", "/hostname")[1] in pod_names(cluster, "web")
    assert curl(cluster, apps, "deny.test", "/hostname")[0] == 403


def head(cluster: Cluster, worker: str, host: str, path: str, *extra: str) -> tuple[int, dict[str, str]]:
    """(status, headers with lower-case names) of one request from the external client."""
    proc = cluster.exec("external", "curl", "-s", "--max-time", "5", "--resolve", f"{host}:80:{worker}", "-o",
                        "/dev/null", "-D", "-", *extra, f"http://{host}{path}")
    lines = proc.stdout.splitlines()
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]) if lines else 0, {k.lower(): v for k, v in headers.items()}


def test_annotations_redirects_app_root_force_ssl(cluster: Cluster, apps: str) -> None:
    code, headers = head(cluster, apps, "redirect.test", "/x")
    assert (code, headers.get("location")) == (301, "https://example.org/moved")
    code, headers = head(cluster, apps, "temporal.test", "/x")
    assert (code, headers.get("location")) == (302, "https://example.org/for-now")
    code, headers = head(cluster, apps, "approot.test", "/")
    assert code == 302 and headers.get("location", "").endswith("/app1")
    code, headers = head(cluster, apps, "forced.test", "/x")
    assert (code, headers.get("location")) == (308, "https://forced.test/x")


def test_annotations_canary_affinity_hash_vhost(cluster: Cluster, apps: str) -> None:
    web, other = pod_names(cluster, "web"), pod_names(cluster, "other")
    assert curl(cluster, apps, "canary-main.test", "/hostname", "-H", "X-Canary: always")[1] in other
    assert curl(cluster, apps, "canary-main.test", "/hostname", "-H", "X-Canary: never")[1] in web
    assert curl(cluster, apps, "canary-main.test", "/hostname")[1] in web
    assert "route=" in head(cluster, apps, "sticky.test", "/hostname")[1].get("set-cookie", "")
    sticky = {curl(cluster, apps, "sticky.test", "/hostname", "-b", "route=abc")[1] for _ in range(6)}
    assert len(sticky) == 1 and sticky <= web
    assert len(set(hostnames(cluster, apps, "hashed.test", 8))) == 1
    assert curl(cluster, apps, "vhost.test", "/header?key=Host") == (200, "internal.example")


def test_annotations_cors_body_size_denylist(cluster: Cluster, apps: str) -> None:
    code, headers = head(cluster, apps, "cors.test", "/hostname", "-X", "OPTIONS", "-H",
                         "Origin: https://app.example", "-H", "Access-Control-Request-Method: GET")
    assert code == 204 and headers.get("access-control-allow-origin") == "*"
    # (the backend's answer after a POST is unreliable, see BODY_HOSTS: only nginx's 413 or not is checked)
    assert curl(cluster, apps, "small.test", "/echo?msg=ok", "--data-binary", "x" * 512)[0] not in (0, 413)
    assert curl(cluster, apps, "small.test", "/echo?msg=ok", "--data-binary", "x" * 4096)[0] == 413
    assert curl(cluster, apps, "blocked.test", "/hostname")[0] == 403


def test_path_rules_element_wise(cluster: Cluster, apps: str) -> None:
    """More path cases than the conformance suite's (each rule rewrites to /echo?msg=RULE, so the body names it)."""
    answers = batch(cluster, apps, [{"host": "paths.test", "path": path} for path in PATH_EXPECT])
    got = {path: (code, body) for path, (code, _, body) in zip(PATH_EXPECT, answers, strict=True)}
    assert got == {path: (200, name) for path, name in PATH_EXPECT.items()}


def test_annotations_backend_protocol_timeouts_websocket(cluster: Cluster, apps: str) -> None:
    tls, slow, fast, untimed = batch(cluster, apps, [
        {"host": "tlsback.test", "path": "/x"}, {"host": "timeout.test", "path": "/slow?s=3"},
        {"host": "timeout.test", "path": "/slow?s=0.1"}, {"host": "ws.test", "path": "/slow?s=3"}])
    report = echoed(tls[2])
    assert (tls[0], report.get("port"), report.get("tls")) == (200, 8443, True), tls
    # proxy-read-timeout 1 s: a 3 s answer times out (504) where the default (60 s) waits for it
    assert (slow[0], fast[0], untimed[0]) == (504, 200, 200), (slow, fast, untimed)
    # gRPC over HTTP/2 from the client; nginx speaks h2c (GRPC) or h2 over TLS (GRPCS) to the echo pods'
    # minimal gRPC responder, which answers with a message naming the pod and grpc-status 0
    for host in ("grpc.test", "grpcs.test"):
        call = (f"printf '\\0\\0\\0\\0\\0' | curl -sk --http2 --max-time 5 --resolve {host}:443:{apps} -D - -o - "
                f"-H 'content-type: application/grpc' -H 'te: trailers' --data-binary @- https://{host}/knet.Echo/Name")
        out = cluster.exec("external", "sh", "-c", call).stdout
        assert out.startswith("HTTP/2 200") and "grpc-status: 0" in out, (host, out)
        assert any(pod in out for pod in pod_names(cluster, "echo")), (host, out)
    # WebSocket: the upgrade passes without an annotation, and frames flow both ways
    proc = cluster.exec("external", "python3", app_path("websocket_client"), apps, "ws.test")
    status, _, echo = proc.stdout.partition("\n")
    assert status == "HTTP/1.1 101 Switching Protocols", proc.stdout + proc.stderr
    assert echo.strip().removeprefix("hello from ") in pod_names(cluster, "echo"), echo


def test_annotations_next_upstream_and_limits(cluster: Cluster, apps: str) -> None:
    """`flaky` has three endpoints, one answering 503: retried on the next one, or not (off, tries 1)."""
    hosts = ("retry.test", "noretry.test", "onetry.test")
    answers = batch(cluster, apps, [{"host": h, "path": "/flaky"} for h in hosts for _ in range(12)]
                    + [{"host": "rps.test", "path": "/"} for _ in range(20)]
                    + [{"host": "conns.test", "path": "/slow?s=1.5"} for _ in range(4)])
    codes = [a[0] for a in answers]
    retry, noretry, onetry, rps, conns = codes[:12], codes[12:24], codes[24:36], codes[36:56], codes[56:]
    assert retry == [200] * 12, retry
    for got in (noretry, onetry):
        assert set(got) == {200, 503}, got
    # limit-rps 1 (burst 5, as ingress-nginx's multiplier) and limit-connections 1: the excess gets 503
    assert 200 in rps and rps.count(503) >= 10, rps
    assert 200 in conns and 503 in conns, conns


def test_annotations_load_balance_canary_cookie_weight_custom_errors(cluster: Cluster, apps: str) -> None:
    web, other, echo = pod_names(cluster, "web"), pod_names(cluster, "other"), pod_names(cluster, "echo")
    balanced = batch(cluster, apps, [{"host": f"{h}.test", "path": "/"} for h in ("rr", "leastconn", "ewma")
                                     for _ in range(8)])
    for i, host in enumerate(("rr", "leastconn", "ewma")):
        assert {echoed(b[2]).get("pod") for b in balanced[i * 8:(i + 1) * 8]} == echo, host
    # while a slow request holds one echo pod, least_conn sends the next ones to the other; round robin alternates
    for host, others_only in (("leastconn.test", True), ("rr.test", False)):
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            slow = pool.submit(batch, cluster, apps, [{"host": host, "path": "/slow?s=6"}])
            time.sleep(2)
            fast = {echoed(b[2]).get("pod") for b in batch(cluster, apps, [{"host": host, "path": "/"}] * 4, True)}
            busy = echoed(slow.result()[0][2]).get("pod")
        assert busy in echo and fast == (echo - {busy} if others_only else echo), (host, busy, fast)
    for name in ("rr", "leastconn", "ewma"):  # all three values are valid (ewma is least_conn, see the README)
        items = cluster.get("events", "-n", APPS, "--field-selector", f"involvedObject.name={name}")["items"]
        problems = [e["message"] for e in items if e["reason"] == "IngressProblem"]
        assert not [p for p in problems if "annotation" in p], (name, problems)  # (start-up: no endpoints yet)
    canary = batch(cluster, apps, [
        {"host": "canary-main.test", "path": "/hostname", "headers": {"Cookie": "knet_canary=always"}},
        {"host": "canary-main.test", "path": "/hostname", "headers": {"Cookie": "knet_canary=never"}},
        {"host": "canary-main.test", "path": "/hostname",  # the header decides before the cookie
         "headers": {"Cookie": "knet_canary=always", "X-Canary": "never"}}])
    assert [c[2] in other for c in canary] == [True, False, False] and canary[1][2] in web, canary
    weighted = [b[2] for b in batch(cluster, apps, [{"host": "weighted.test", "path": "/hostname"}] * 60)]
    to_canary = sum(body in other for body in weighted)
    assert set(weighted) <= web | other and 10 <= to_canary <= 50, weighted
    # custom-http-errors: nginx answers the listed codes itself (the backend's own 404 page does not pass)
    (code, _, body), (plain_code, _, plain) = batch(cluster, apps, [{"host": "errors.test", "path": "/nosuch"},
                                                                    {"host": "web.test", "path": "/nosuch"}])
    assert (code, plain_code) == (404, 404) and "<center>nginx</center>" in body and "nginx" not in plain, (body, plain)


def test_service_without_endpoints(cluster: Cluster, apps: str) -> None:
    """A Service without endpoints: 503 (the Lua balancer's peer for it is nginx's 503 server), and a canary
    taking every request (weight 100) whose Service has none sends them to the main Service instead."""
    assert curl(cluster, apps, "idle.test", "/hostname")[0] == 503
    web = pod_names(cluster, "web")
    got = batch(cluster, apps, [{"host": "fallback.test", "path": "/hostname"}] * 10)
    assert all(code == 200 and body in web for code, _, body in got), got


def test_problem_is_an_event_on_the_ingress(cluster: Cluster, apps: str) -> None:
    assert curl(cluster, apps, "missing.test", "/hostname")[0] == 503

    def events() -> list[str]:
        items = cluster.get("events", "-n", APPS, "--field-selector", "involvedObject.name=missing")["items"]
        return [e["message"] for e in items if e["reason"] == "IngressProblem"]

    assert "nosuch" in wait_for(events, "an IngressProblem Event on Ingress missing", 30)[0]
    # an invalid annotation value is ignored (the default applies) and reported
    assert curl(cluster, apps, "badann.test", "/echo?msg=ok", "--data-binary", "x" * 4096)[0] not in (0, 413)
    bad = cluster.get("events", "-n", APPS, "--field-selector", "involvedObject.name=badann")["items"]
    assert any("proxy-body-size" in e["message"] for e in bad), bad


def test_spreads_over_the_replicas(cluster: Cluster, apps: str) -> None:
    """load_balancing.feature: 100 requests, all answered (200) by all the 10 replicas."""
    answers = batch(cluster, apps, [{"host": "web.test", "path": "/hostname"}] * 100)
    assert [code for code, _, _ in answers] == [200] * 100, answers
    assert {body for _, _, body in answers} == pod_names(cluster, "web")


def test_endpoint_churn_without_reload_and_one_reload_per_edit(cluster: Cluster, apps: str) -> None:
    reloads, pushes = metric(apps, 'knet_ingress_reloads_total{result="success"}'), metric(
        apps, "knet_ingress_endpoint_updates_total")
    cluster.kubectl("scale", "deployment", "web", "-n", APPS, f"--replicas={REPLICAS + 2}")
    wait_for(lambda: len(pod_names(cluster, "web")) == REPLICAS + 2, "web scaled up", 120)
    wait_for(lambda: set(hostnames(cluster, apps, "web.test", 6 * (REPLICAS + 2))) == pod_names(cluster, "web"),
             "the new replicas served", 60)
    cluster.kubectl("scale", "deployment", "web", "-n", APPS, f"--replicas={REPLICAS}")
    wait_for(lambda: len(cluster.pods(APPS, "app=web")) == REPLICAS, "web scaled down", 120)
    wait_for(lambda: set(hostnames(cluster, apps, "web.test", 4 * REPLICAS)) <= pod_names(cluster, "web"),
             "only the remaining replicas served", 60)
    churn_reloads = metric(apps, 'knet_ingress_reloads_total{result="success"}') - reloads
    churn_pushes = metric(apps, "knet_ingress_endpoint_updates_total") - pushes
    assert churn_reloads == 0 and churn_pushes >= 2

    cluster.kubectl("patch", "ingress", "hosts", "-n", APPS, "--type=json", "-p",
                    '[{"op": "add", "path": "/spec/rules/-", "value": {"host": "new.test", "http": {"paths": '
                    '[{"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": '
                    '{"number": 80}}}}]}}}]')
    wait_for(lambda: curl(cluster, apps, "new.test", "/hostname")[1] in pod_names(cluster, "web"), "new.test", 30)
    time.sleep(3)  # the status write and any late watch event must not reload again
    edit_reloads = metric(apps, 'knet_ingress_reloads_total{result="success"}') - reloads
    FIGURES.append(f"knet ingress: scaling web {REPLICAS}->{REPLICAS + 2}->{REPLICAS}: {churn_reloads:.0f} nginx "
                   f"reloads, {churn_pushes:.0f} endpoint pushes; one Ingress edit: {edit_reloads:.0f} reload(s)")
    assert edit_reloads == 1


def test_rolling_update_under_load(cluster: Cluster, apps: str) -> None:
    """A rolling update of the backend under steady load from wrk (4 kept-alive connections from the external
    client): no failed request, no reload."""
    reloaded = 'knet_ingress_reloads_total{result="success"}'
    reloads = metric(apps, reloaded)
    before = pod_names(cluster, "web")
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        load = pool.submit(cluster.exec, "external", *wrk_command(f"http://{apps}/hostname", 40, 4, "web.test"),
                           timeout=90)
        time.sleep(5)
        cluster.kubectl("rollout", "restart", "deployment", "web", "-n", APPS)
        cluster.kubectl("rollout", "status", "deployment", "web", "-n", APPS, "--timeout=120s")
        proc = load.result()
    result = parse_wrk(proc.stdout)
    FIGURES.append(f"knet ingress: rolling update of web under wrk load: {result.requests} requests "
                   f"({result.rps:.0f}/s, p99 {result.p99_seconds * 1000:.1f} ms), {result.failed} failed, "
                   f"{metric(apps, reloaded) - reloads:.0f} reloads")
    assert not pod_names(cluster, "web") & before, "the rollout finished after the load ended"
    assert result.requests > 0 and result.failed == 0, proc.stdout
    assert metric(apps, reloaded) == reloads


def test_nginx_restarted_when_it_dies(cluster: Cluster, apps: str) -> None:
    starts = metric(apps, "knet_ingress_nginx_starts_total")
    killed = cluster.exec(f"{CTL}/knet-ingress", "sh", "-c", "kill -9 $(cat /var/lib/knet/ingress/nginx.pid)")
    assert killed.returncode == 0, killed.stderr
    wait_for(lambda: metric(apps, "knet_ingress_nginx_starts_total") == starts + 1, "nginx restarted", 30)
    wait_for(lambda: curl(cluster, apps, "web.test", "/hostname")[1] in pod_names(cluster, "web"),
             "web.test served again (endpoints pushed to the new nginx)", 30)
    wait_for(lambda: http_get(f"http://{apps}:8080/readyz") == "ok\n", "ready again", 30)


# --- one tenant never breaks or takes over another's traffic -------------------------------------------------------

TENANTS = ("ingress-t1", "ingress-t2")


def tenant(manifest: str, ns: str) -> str:
    """A manifest that the helpers above write for APPS, in the namespace `ns` instead."""
    return manifest.replace(APPS, ns)


def tenant_pods(cluster: Cluster, ns: str) -> set[str]:
    return {p["metadata"]["name"] for p in cluster.pods(ns, "app=web") if cluster.condition(p, "Ready") == "True"}


def events(cluster: Cluster, ns: str, name: str) -> list[str]:
    items = cluster.get("events", "-n", ns, "--field-selector", f"involvedObject.name={name}")["items"]
    return [f"{e['reason']}: {e['message']}" for e in items]


@functools.cache
def refused_objects() -> str:
    """What nginx -t refused (and with it every later change): an RSA-1024 key, a path longer than nginx reads."""
    weak = self_signed(["weak.test"], key=rsa.generate_private_key(65537, 1024))
    return (tls_secret("weak", "weak.test", weak)
            + ingress("weak", rule("weak.test"), extra="\n  tls: [{hosts: [weak.test], secretName: weak}]")
            + ingress("long", rule("long.test", "/" + "a" * 5000)))


@pytest.fixture(scope="module")
def tenants(cluster: Cluster, controller: str) -> Iterator[str]:
    """Two tenants, each with a one-replica backend `web`; the first serves shop.test."""
    for ns in TENANTS:
        cluster.apply(f"{{apiVersion: v1, kind: Namespace, metadata: {{name: {ns}}}}}")
        wait_for(lambda ns=ns: cluster.kubectl("get", "sa", "default", "-n", ns, check=False).startswith("NAME"),
                 f"serviceaccount {ns}/default", 30)
    cluster.apply("".join(tenant(backend("web", 1), ns) for ns in TENANTS)
                  + tenant(ingress("shop", rule("shop.test")), TENANTS[0]))
    wait_for(lambda: all(tenant_pods(cluster, ns) for ns in TENANTS), "both tenants' backends ready", 120)
    wait_for(lambda: curl(cluster, controller, "shop.test", "/hostname")[1] in tenant_pods(cluster, TENANTS[0]),
             "shop.test served", 60)
    yield controller
    for ns in TENANTS:
        cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def test_tenant_cannot_freeze_the_shared_nginx(cluster: Cluster, tenants: str) -> None:
    """What nginx would refuse is refused for its Ingress alone (an Event there); the other tenant's later
    Ingress is served."""
    t1, t2 = TENANTS
    cluster.apply(tenant(refused_objects(), t2))
    wait_for(lambda: events(cluster, t2, "weak"), "an Event on Ingress weak", 30)
    cluster.apply(tenant(ingress("later", rule("later.test")), t1))
    wait_for(lambda: curl(cluster, tenants, "later.test", "/hostname")[1] in tenant_pods(cluster, t1),
             "later.test served", 30)
    assert any("1024 bits" in e for e in events(cluster, t2, "weak"))
    assert any("too long" in e for e in events(cluster, t2, "long"))
    assert not [e for e in events(cluster, t1, "shop") + events(cluster, t1, "later") if "Rejected" in e]


def test_restart_keeps_the_last_good_config(cluster: Cluster, tenants: str) -> None:
    """The controller killed while refused Ingresses exist: nginx.conf stays, and it is ready and serving again."""
    cluster.apply(tenant(refused_objects(), TENANTS[1]))
    pod, prefix = f"{CTL}/knet-ingress", "/var/lib/knet/ingress"

    def restarts() -> int:
        return cluster.get("pod", "knet-ingress", "-n", CTL)["status"]["containerStatuses"][0]["restartCount"]

    before = restarts()
    killed = cluster.exec(pod, "sh", "-c", f"kill -9 $(awk '{{print $4}}' /proc/$(cat {prefix}/nginx.pid)/stat)")
    assert killed.returncode == 0, killed.stderr
    wait_for(lambda: restarts() > before, "the controller restarted", 60)
    wait_for(lambda: http_get(f"http://{tenants}:8080/readyz") == "ok\n", "ready again", 60)
    assert cluster.exec(pod, "test", "-s", f"{prefix}/nginx.conf").returncode == 0
    assert curl(cluster, tenants, "shop.test", "/hostname")[1] in tenant_pods(cluster, TENANTS[0])


def test_another_namespace_cannot_take_a_host(cluster: Cluster, tenants: str) -> None:
    """A newer Ingress of another namespace with a regex `/zzzz|/`, and a canary of weight 100, for the first
    tenant's host: every request still reaches the first tenant, and the newer Ingresses get an Event."""
    t1, t2 = TENANTS
    cluster.apply(tenant(ingress("take", rule("shop.test", "/zzzz|/", "ImplementationSpecific"),
                                 {ANN + "use-regex": "true"})
                         + ingress("take-canary", rule("shop.test"), {ANN + "canary": "true",
                                                                      ANN + "canary-weight": "100"}), t2))

    def read() -> bool:  # the controller has read them: an Event, or (taken over) an answer from the second tenant
        return any(f"namespace {t1}" in e for e in events(cluster, t2, "take")) or curl(
            cluster, tenants, "shop.test", "/hostname")[1] in tenant_pods(cluster, t2)

    wait_for(read, f"the controller has read the Ingresses of {t2}", 30)
    assert set(hostnames(cluster, tenants, "shop.test", 10)) <= tenant_pods(cluster, t1)
    wait_for(lambda: any(f"namespace {t1}" in e for e in events(cluster, t2, "take-canary")),
             "an Event on Ingress take-canary", 30)
