"""Faults of `knet devcluster up` give one clear line and leave nothing behind; two clusters
run side by side; a crashed control-plane process is restarted; `down` removes everything."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from operators.devcluster.layout import state_root
from tests.e2e.harness import Cluster, knet, wait_for

SIDE = "e2e-side"


def leftovers(name: str) -> list[str]:
    """Everything a cluster named `name` could leave on the machine."""
    out = []
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    out += [f"netns {line.split()[0]}" for line in netns.splitlines() if line.startswith(f"knet-{name}-")]
    out += (
        [f"/etc/netns/{p.name}" for p in Path("/etc/netns").glob(f"knet-{name}-*")]
        if Path("/etc/netns").exists()
        else []
    )
    links = subprocess.run(["ip", "-br", "link"], capture_output=True, text=True).stdout
    out += [f"link {line.split()[0]}" for line in links.splitlines() if f"-{name}"[:12] in line.split()[0]]
    procs = subprocess.run(
        ["pgrep", "-af", f"(--cluster|supervisor) {name}( |$)"], capture_output=True, text=True
    ).stdout
    out += [f"process {line}" for line in procs.splitlines()]
    procs = subprocess.run(["pgrep", "-af", str(state_root() / name) + "/"], capture_output=True, text=True).stdout
    out += [f"process {line}" for line in procs.splitlines()]
    if (state_root() / name).exists():
        out.append(f"dir {state_root() / name}")
    return out


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode != 0
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error: ")]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_missing_binary_is_named(cluster: Cluster) -> None:
    env = {**os.environ, "KNET_UPSTREAM_BIN": "/nonexistent/bin"}
    err = one_line_error(knet("devcluster", "up", "--name", "e2e-nobin", check=False, env=env))
    assert "missing upstream binary etcd in /nonexistent/bin" in err
    assert leftovers("e2e-nobin") == []


def test_non_root_user_is_refused(cluster: Cluster) -> None:
    # a user namespace makes the process uid 1000 (files stay readable, so the venv still runs)
    proc = subprocess.run(
        [
            "unshare",
            "--user",
            "--map-user=1000",
            "--map-group=1000",
            sys.executable,
            "-m",
            "operators.cli",
            "devcluster",
            "up",
            "--name",
            "e2e-user",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "must run as root" in one_line_error(proc)
    assert leftovers("e2e-user") == []


def test_crash_while_starting_tears_everything_down(cluster: Cluster) -> None:
    name = "e2e-crash"
    d = state_root() / name
    d.mkdir(parents=True, exist_ok=True)
    (d / "etcd").write_text("not a directory")  # etcd cannot use its data dir and exits
    proc = knet("devcluster", "up", "--name", name, "--nodes", "1", check=False, timeout=120)
    err = one_line_error(proc)
    assert "etcd exited with code" in err, err
    assert [x for x in leftovers(name) if not x.startswith("dir ")] == []
    knet("devcluster", "down", "--name", name)
    assert leftovers(name) == []


def test_port_in_use_is_named_and_torn_down(cluster: Cluster) -> None:
    from operators.devcluster import network
    from operators.devcluster.state import new_layout

    name = "e2e-port"
    layout = new_layout(name, 1, False)
    network.create(layout)
    squatter = subprocess.Popen(
        [
            "nsenter",
            f"--net=/run/netns/{layout.node_ns(layout.node_names[0])}",
            "--",
            "python3",
            "-c",
            "import socket,time;s=socket.socket();s.bind(('0.0.0.0',6443));s.listen();time.sleep(600)",
        ],
    )
    try:
        time.sleep(0.5)
        err = one_line_error(knet("devcluster", "up", "--name", name, "--nodes", "1", check=False, timeout=120))
        assert "port 6443 needed by kube-apiserver is already in use" in err, err
        assert [x for x in leftovers(name) if not x.startswith("dir ")] == []
    finally:
        squatter.kill()
        knet("devcluster", "down", "--name", name)
    assert leftovers(name) == []


@pytest.fixture(scope="module")
def side() -> Cluster:
    proc = knet("devcluster", "up", "--name", SIDE, "--nodes", "1", timeout=300)
    return Cluster(SIDE, proc.stdout.strip().splitlines()[-1].removeprefix("KUBECONFIG="), {})


def test_two_clusters_side_by_side(cluster: Cluster, side: Cluster) -> None:
    assert side.kubeconfig != cluster.kubeconfig
    servers = {c.kubectl("config", "view", "-o", "jsonpath={.clusters[0].cluster.server}") for c in (cluster, side)}
    assert len(servers) == 2
    assert [n["metadata"]["name"] for n in side.get("nodes")["items"]] == [f"{SIDE}-control-plane"]
    side.kubectl("create", "namespace", "only-here")
    assert "only-here" not in cluster.kubectl("get", "namespaces")
    env = knet("devcluster", "env", "--name", SIDE).stdout
    assert f"export KUBECONFIG={side.kubeconfig}" in env and "export PATH=" in env


def test_crashed_control_plane_process_is_restarted(side: Cluster) -> None:
    status = json.loads((state_root() / SIDE / "supervisor.json").read_text())
    pid = status["children"]["kube-scheduler"]["pid"]
    os.kill(pid, signal.SIGKILL)

    def restarted() -> bool:
        st = json.loads((state_root() / SIDE / "supervisor.json").read_text())
        return st["children"]["kube-scheduler"]["restarts"] == 1 and st["children"]["kube-scheduler"]["pid"] != pid

    wait_for(restarted, "kube-scheduler restarted", 30)
    out = knet("devcluster", "status", "--name", SIDE).stdout
    assert "ready" in out.splitlines()[0]


def test_down_leaves_nothing_behind(side: Cluster) -> None:
    side.apply("""
apiVersion: v1
kind: Pod
metadata: {name: p, namespace: default}
spec:
  containers: [{name: c, image: registry.k8s.io/e2e-test-images/agnhost:2.53, args: [pause]}]
""")
    wait_for(lambda: side.get("pod", "p")["status"].get("phase") == "Running", "pod running", 60)
    assert leftovers(SIDE)
    knet("devcluster", "down", "--name", SIDE, timeout=120)
    assert leftovers(SIDE) == []
    routes = subprocess.run(["ip", "route"], capture_output=True, text=True).stdout
    assert "10.244." not in routes and "10.96." not in routes
