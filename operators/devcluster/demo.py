"""`make demo`: bring up the devcluster, run a small application on it and show, step by
step, what works. The cluster stays up afterwards for the user to explore."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from . import cluster, testapps, upstream
from .cluster import DevclusterError
from .layout import Layout

NAME = "knet"


def kubectl(layout: Layout, *args: str, input: str | None = None) -> str:
    return subprocess.run(
        [str(upstream.bin_dir() / "kubectl"), f"--kubeconfig={layout.kubeconfig}", *args],
        capture_output=True,
        text=True,
        input=input,
        check=True,
    ).stdout


def step(ok: bool, what: str) -> bool:
    print(f"  [{'ok' if ok else 'FAILED'}] {what}", flush=True)
    return ok


def main() -> int:
    print("== knet devcluster demo: a real control plane, nodes as network namespaces, pods as processes")
    try:
        layout = cluster.up(NAME, nodes=2)
    except DevclusterError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    results = []
    nodes = json.loads(kubectl(layout, "get", "nodes", "-o", "json"))["items"]
    for n in nodes:
        ip = next(a["address"] for a in n["status"]["addresses"] if a["type"] == "InternalIP")
        ready = next(c["status"] for c in n["status"]["conditions"] if c["type"] == "Ready")
        results.append(
            step(
                ready == "True",
                f"node {n['metadata']['name']} Ready, address {ip}, podCIDR {n['spec'].get('podCIDR')}",
            )
        )
    probe = {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 2}
    namespace = "apiVersion: v1\nkind: Namespace\nmetadata: {name: demo}\n---\n"
    kubectl(layout, "apply", "-f", "-", input=namespace + testapps.netexec("demo", "web", 4, readiness=probe))
    deadline = time.monotonic() + 120
    pods: list[dict] = []
    while time.monotonic() < deadline:
        pods = json.loads(kubectl(layout, "get", "pods", "-n", "demo", "-l", "app=web", "-o", "json"))["items"]
        ready = [
            p
            for p in pods
            if any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))
        ]
        if len(ready) == 4:
            break
        time.sleep(1)
    by_node: dict[str, list[dict]] = {}
    for p in pods:
        by_node.setdefault(p["spec"].get("nodeName", "?"), []).append(p)
    results.append(
        step(
            len(pods) == 4 and len(by_node) == 2,
            "4 agnhost netexec pods Running and Ready, spread over "
            + ", ".join(f"{n} ({len(ps)})" for n, ps in sorted(by_node.items())),
        )
    )
    slices = json.loads(kubectl(layout, "get", "endpointslices", "-n", "demo", "-o", "json"))["items"]
    eps = sorted(a for s in slices for e in s.get("endpoints") or [] for a in e["addresses"])
    results.append(step(len(eps) == 4, f"EndpointSlice of Service demo/web lists {', '.join(eps)}"))
    if len(by_node) == 2:
        a, b = (ps[0] for _, ps in sorted(by_node.items()))
        url = f"http://{b['status']['podIP']}:8080/hostname"
        code = f"import urllib.request;print(urllib.request.urlopen('{url}',timeout=5).read().decode())"
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "operators.cli",
                "devcluster",
                "exec",
                "--name",
                NAME,
                f"demo/{a['metadata']['name']}",
                "--",
                "python3",
                "-c",
                code,
            ],
            capture_output=True,
            text=True,
        )
        results.append(
            step(
                proc.stdout.strip() == b["metadata"]["name"],
                f"pod {a['metadata']['name']} on {a['spec']['nodeName']} -> {url} "
                f"answered {proc.stdout.strip()!r} (on {b['spec']['nodeName']})",
            )
        )
    print("\nThe cluster keeps running. Use it with:")
    print(f'  eval "$(.venv/bin/knet devcluster env --name {NAME})"; kubectl get pods -A -o wide')
    print(f"  .venv/bin/knet devcluster exec --name {NAME} demo/<pod> -- sh")
    print("Stop it with: make demo-down")
    print(f"\n{sum(results)} passed, {len(results) - sum(results)} failed")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
