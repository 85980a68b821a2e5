"""The session's devcluster and helpers to drive it as a user would (kubectl, exec).

A pytest plugin (registered by the root conftest.py), so that the end-to-end tests and the
benchmarks under bench/ share one cluster per session.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from operators.devcluster import upstream

CLUSTER = os.environ.get("KNET_E2E_CLUSTER", "e2e")
KNET = [sys.executable, "-m", "operators.cli"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under tests/e2e, and anything else that uses the cluster, is end-to-end."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents or "cluster" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.e2e)


def knet(
    *args: str, check: bool = True, timeout: float = 300, env: dict | None = None
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([*KNET, *args], capture_output=True, text=True, timeout=timeout, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"knet {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


def wait_for(cond: Callable[[], Any], what: str, timeout: float = 60, interval: float = 0.5) -> Any:
    """Poll until cond() is truthy; fail naming `what` (and the last value seen)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = cond()
        except (AssertionError, subprocess.CalledProcessError, KeyError, IndexError, TypeError) as e:
            last = e
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


class Cluster:
    def __init__(self, name: str, kubeconfig: str, startup: dict[str, float]) -> None:
        self.name = name
        self.kubeconfig = kubeconfig
        self.startup = startup
        self.kubectl_bin = str(upstream.bin_dir() / "kubectl")

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> str:
        proc = subprocess.run(
            [self.kubectl_bin, f"--kubeconfig={self.kubeconfig}", *args],
            capture_output=True,
            text=True,
            input=input,
            timeout=120,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)}: {proc.stderr.strip()}")
        return proc.stdout if check else proc.stdout + proc.stderr

    def apply(self, manifest: str) -> None:
        self.kubectl("apply", "-f", "-", input=manifest)

    def get(self, *args: str) -> dict:
        return json.loads(self.kubectl("get", *args, "-o", "json"))

    def pods(self, ns: str, selector: str) -> list[dict]:
        return self.get("pods", "-n", ns, "-l", selector)["items"]

    def exec(self, pod: str, *cmd: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return knet("devcluster", "exec", "--name", self.name, pod, "--", *cmd, check=False, timeout=timeout)

    def config(self, key: str) -> str:
        """A field of the admin kubeconfig (`server`, `certificate-authority`)."""
        text = Path(self.kubeconfig).read_text()
        return next(line.split()[-1] for line in text.splitlines() if line.strip().startswith(f"{key}:"))

    def condition(self, obj: dict, ctype: str) -> str | None:
        return next((c["status"] for c in obj.get("status", {}).get("conditions", []) if c["type"] == ctype), None)


FIGURES: list[str] = []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the measured figures (startup times) at the end of every run that made a cluster."""
    if FIGURES:
        terminalreporter.section("cluster figures (devcluster, kind)")
        for line in FIGURES:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    t0 = time.monotonic()
    proc = knet("devcluster", "up", "--name", CLUSTER, "--nodes", "2", timeout=600)
    total = time.monotonic() - t0
    kubeconfig = proc.stdout.strip().splitlines()[-1].removeprefix("KUBECONFIG=")
    m = re.search(r"API ready in ([\d.]+)s", proc.stderr)
    startup = {"api": float(m.group(1)) if m else total, "nodes": total}
    FIGURES.append(
        f"knet devcluster up --name {CLUSTER} --nodes 2 (warm cache): API ready in {startup['api']:.1f}s "
        f"(goal < 30s), 2 nodes Ready in {total:.1f}s (goal < 45s)"
    )
    yield Cluster(CLUSTER, kubeconfig, startup)
    knet("devcluster", "down", "--name", CLUSTER, timeout=120)


@pytest.fixture
def namespace(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace per test, deleted afterwards."""
    name = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:50].strip("-")
    cluster.kubectl("create", "namespace", name)
    # pods are admitted only once the service-account controller made the `default` account
    has_sa = lambda: cluster.kubectl("get", "sa", "default", "-n", name, check=False).startswith("NAME")  # noqa: E731
    wait_for(has_sa, f"serviceaccount {name}/default", 30)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)
