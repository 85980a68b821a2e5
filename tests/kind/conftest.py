"""The session's kind cluster, taken from its kubeconfig as any e2e test takes a cluster.

`KNET_KIND_KUBECONFIG` names a running cluster to test (nothing is created or deleted); otherwise the
session runs the README's kind section as written (`knet kind up --install`, ...), and its `down` block
runs last (test_kind_lifecycle.py). Tests use kubectl
only (exec, logs, apply), plus `outside`: a command on the node network, outside every node (the machine's
side of kind's network, as a client on a Docker host reaches kind's nodes).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from operators.kind.containment import RootState, leftovers, root_state
from operators.kind.layout import KindLayout
from tests.e2e.harness import FIGURES, Cluster, knet, wait_for

NAME = "knet"  # the README's cluster
REPO = Path(__file__).resolve().parents[2]
KNET_IMAGE = "localhost/knet:0.1.0"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything here is marked `kind`; tests marked `kind_teardown` (uninstall, down) run after the rest."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.kind)
    last = [i for i in items if i.get_closest_marker("kind_teardown")]
    items[:] = [i for i in items if not i.get_closest_marker("kind_teardown")] + last


class KubeCluster(Cluster):
    """A cluster driven through its API server only: exec and logs go through the kubelet."""

    def exec(self, pod: str, *cmd: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        ns, name = pod.split("/", 1)
        return subprocess.run([self.kubectl_bin, f"--kubeconfig={self.kubeconfig}", "exec", "-n", ns, name, "--",
                               *cmd], capture_output=True, text=True, timeout=timeout)

    def outside(self, *cmd: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["nsenter", "--net=/run/netns/knet-kind", "--", *cmd],
                              capture_output=True, text=True, timeout=timeout)

    def nodes(self) -> list[dict]:
        return self.get("nodes")["items"]

    def node_ip(self, node: dict) -> str:
        return next(a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP")


def readme_block(marker: str) -> str:
    """The shell block after `<!-- marker -->` in the README's kind section, as written there."""
    text = (REPO / "README.md").read_text()
    after = text[text.index(f"<!-- {marker} -->"):]
    return after.split("```sh\n", 1)[1].split("```", 1)[0]


def run_readme(marker: str, timeout: float = 3000) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", readme_block(marker)], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"README block {marker} failed ({proc.returncode}):\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="session")
def before_up() -> RootState:
    """The machine's root namespace before the session's kind cluster came up (a cluster an earlier run
    left behind is taken down first)."""
    if not os.environ.get("KNET_KIND_KUBECONFIG") and leftovers(NAME):
        knet("kind", "down", "--name", NAME, timeout=600)
    return root_state()


@pytest.fixture(scope="session")
def kind(before_up: RootState) -> Iterator[KubeCluster]:
    """The cluster the README's kind section brings up, with its commands as written there
    (or the one KNET_KIND_KUBECONFIG names, left as it is)."""
    if kubeconfig := os.environ.get("KNET_KIND_KUBECONFIG"):
        yield KubeCluster(NAME, kubeconfig, {})
        return
    t0 = time.monotonic()
    proc = run_readme("kind-up")
    total = time.monotonic() - t0
    FIGURES.append(f"README kind-up block (knet kind up --install, 3 nodes, from cached images): {total:.0f}s")
    FIGURES.extend(f"  {line}" for line in proc.stderr.splitlines() if line.startswith("== ") or " built " in line)
    yield KubeCluster(NAME, str(KindLayout(NAME).kubeconfig), {"nodes": total})
    if leftovers(NAME):  # the lifecycle test's `down` did not run or failed
        knet("kind", "down", "--name", NAME, timeout=600)


@pytest.fixture
def ns(kind: KubeCluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace per test, deleted afterwards."""
    name = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:50].strip("-")
    kind.kubectl("create", "namespace", name)
    wait_for(lambda: kind.kubectl("get", "sa", "default", "-n", name, check=False).startswith("NAME"),
             f"serviceaccount {name}/default", 30)
    yield name
    kind.kubectl("delete", "namespace", name, "--wait=false", check=False)


SERVER = """
import http.server, os, socket
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = (os.environ["POD_NAME"] + "\\n").encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): print(self.client_address[0], *a, flush=True)
http.server.ThreadingHTTPServer.address_family = socket.AF_INET
print("serving", flush=True)
http.server.ThreadingHTTPServer(("", 8080), H).serve_forever()
"""

FETCH = """
import sys, urllib.request
print(urllib.request.urlopen(sys.argv[1], timeout=3).read().decode().strip())
"""


def server_pod(name: str, node: str, labels: dict[str, str]) -> dict:
    """A pod on `node` answering HTTP on 8080 with its own name (python3 from knet's image)."""
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels},
            "spec": {"nodeName": node, "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "app", "image": KNET_IMAGE, "command": ["python3", "-c", SERVER],
                                     "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {
                                         "fieldPath": "metadata.name"}}}],
                                     "ports": [{"containerPort": 8080}],
                                     "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}}]}}


def client_pod(name: str, node: str, labels: dict[str, str] | None = None) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels or {}},
            "spec": {"nodeName": node, "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "app", "image": KNET_IMAGE, "command": ["sleep", "infinity"]}]}}


def fetch_in(kind: KubeCluster, pod: str, url: str) -> str:
    """The body of GET url from inside pod ('' when it fails)."""
    proc = kind.exec(pod, "python3", "-c", FETCH, url)
    return proc.stdout.strip() if proc.returncode == 0 else ""


def apply_all(kind: KubeCluster, ns: str, *objs: dict) -> None:
    objects = {"apiVersion": "v1", "kind": "List", "items": list(objs)}
    kind.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(objects))


def wait_ready(kind: KubeCluster, ns: str, *pods: str, timeout: float = 120) -> None:
    kind.kubectl("wait", "-n", ns, "--for=condition=Ready", f"--timeout={int(timeout)}s", *(f"pod/{p}" for p in pods))
