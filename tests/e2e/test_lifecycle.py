"""Container lifecycle as a kubelet runs it: liveness restarts, graceful deletion with SIGTERM
then SIGKILL after the grace period, logs, and the external client on the underlay."""

from __future__ import annotations

import time

from tests.e2e.harness import Cluster, knet, wait_for

AGNHOST = "registry.k8s.io/e2e-test-images/agnhost:2.53"


def test_failing_liveness_probe_restarts_the_container(cluster: Cluster, namespace: str) -> None:
    cluster.apply(f"""
apiVersion: v1
kind: Pod
metadata: {{name: sick, namespace: {namespace}}}
spec:
  containers:
  - name: c
    image: {AGNHOST}
    args: [pause]
    livenessProbe: {{exec: {{command: [cat, /tmp/alive]}}, periodSeconds: 1, failureThreshold: 2}}
""")

    def restarted() -> dict | None:
        cs = (cluster.get("pod", "-n", namespace, "sick")["status"].get("containerStatuses") or [{}])[0]
        return cs if cs.get("restartCount", 0) >= 1 else None

    cs = wait_for(restarted, "a restart after liveness failures", 60)
    assert "terminated" in cs["lastState"]
    events = cluster.get("events", "-n", namespace, "--field-selector", "involvedObject.name=sick")["items"]
    reasons = {e["reason"] for e in events}
    assert {"Unhealthy", "Killing"} <= reasons, reasons


def test_graceful_deletion_waits_for_sigterm_then_kills_after_the_grace_period(
    cluster: Cluster, namespace: str
) -> None:
    cluster.apply(f"""
apiVersion: v1
kind: Pod
metadata: {{name: polite, namespace: {namespace}}}
spec:
  terminationGracePeriodSeconds: 30
  containers:
  - {{name: c, image: {AGNHOST}, command: [sh, -c, "trap 'exit 0' TERM; while true; do sleep 0.1; done"]}}
---
apiVersion: v1
kind: Pod
metadata: {{name: stubborn, namespace: {namespace}}}
spec:
  terminationGracePeriodSeconds: 3
  containers:
  - {{name: c, image: {AGNHOST}, command: [sh, -c, "trap '' TERM; while true; do sleep 0.1; done"]}}
""")
    for name in ("polite", "stubborn"):
        wait_for(
            lambda name=name: cluster.get("pod", "-n", namespace, name)["status"].get("phase") == "Running",
            f"{name} running",
            60,
        )
    t0 = time.monotonic()
    cluster.kubectl("delete", "pod", "-n", namespace, "polite", "--timeout=60s")
    polite = time.monotonic() - t0
    t0 = time.monotonic()
    cluster.kubectl("delete", "pod", "-n", namespace, "stubborn", "--timeout=60s")
    stubborn = time.monotonic() - t0
    assert polite < 3, f"a container that exits on SIGTERM took {polite:.1f}s to go"
    assert 3 <= stubborn < 10, f"a container ignoring SIGTERM went after {stubborn:.1f}s (grace 3s)"


def test_logs_and_external_client(cluster: Cluster, namespace: str) -> None:
    cluster.apply(f"""
apiVersion: v1
kind: Pod
metadata: {{name: talker, namespace: {namespace}}}
spec:
  hostNetwork: true
  containers:
  - {{name: c, image: {AGNHOST}, args: [netexec, --http-port=18080, --udp-port=-1]}}
""")
    pod = wait_for(
        lambda: (p := cluster.get("pod", "-n", namespace, "talker"))["status"].get("phase") == "Running" and p,
        "talker running",
        60,
    )
    logs = wait_for(
        lambda: knet("devcluster", "logs", "--name", cluster.name, f"{namespace}/talker").stdout, "a log line", 20
    )
    assert "Started HTTP server on port 18080" in logs
    # the external client reaches the node's address on the underlay, as a machine outside the cluster
    url = f"http://{pod['status']['hostIP']}:18080/clientip"
    out = wait_for(
        lambda: (
            knet(
                "devcluster",
                "exec",
                "--name",
                cluster.name,
                "external",
                "--",
                "curl",
                "-s",
                "--max-time",
                "3",
                url,
                check=False,
            ).stdout
        ),
        "an answer to the external client",
        20,
    )
    assert out.startswith("172.30.")
    # and has no route into the pod range
    unreachable = knet(
        "devcluster", "exec", "--name", cluster.name, "external", "--", "ip", "route", "get", "10.244.0.2", check=False
    )
    assert unreachable.returncode != 0
