"""`knet devcluster exec` and `logs`: find a pod's record on its node and use it."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from .cluster import DevclusterError
from .layout import Layout
from .podworker import shim_argv


def find_record(layout: Layout, pod: str) -> tuple[Path, dict]:
    ns, _, name = pod.partition("/")
    if not name:
        ns, name = "default", ns
    for rec in sorted(layout.dir.glob("nodes/*/pods/*/record.json")):
        data = json.loads(rec.read_text())
        if data["namespace"] == ns and data["name"] == name:
            return rec.parent, data
    raise DevclusterError(f"pod {ns}/{name} is not running on any node of devcluster {layout.name}")


def _container(data: dict, container: str | None) -> str:
    name = container or data["containers"][0]
    if name not in data["plans"]:
        raise DevclusterError(f"container {name!r} of pod {data['namespace']}/{data['name']} is not running")
    return name


def exec_in_pod(layout: Layout, pod: str, cmd: list[str], container: str | None = None) -> int:
    """Run `cmd` in the pod's namespaces, mounts and env (as `kubectl exec`); returns its exit code."""
    if not cmd:
        raise DevclusterError("no command given (knet devcluster exec NS/POD -- CMD...)")
    _, data = find_record(layout, pod)
    plan = data["plans"][_container(data, container)]
    return subprocess.run(shim_argv(cmd), env={**os.environ, "KNET_SHIM": json.dumps(plan)}).returncode


def exec_in_namespace(netns: str, cmd: list[str]) -> int:
    """Run `cmd` in one of the cluster's own namespaces (the external client), with the machine's files."""
    if not cmd:
        raise DevclusterError("no command given")
    plan = {"netns": netns, "hostname": netns, "mounts": [], "env": dict(os.environ), "workdir": os.getcwd()}
    return subprocess.run(shim_argv(cmd), env={**os.environ, "KNET_SHIM": json.dumps(plan)}).returncode


def pod_logs(layout: Layout, pod: str, container: str | None = None) -> str:
    d, data = find_record(layout, pod)
    name = container or data["containers"][0]
    try:
        return (d / f"{name}.log").read_text(errors="replace")
    except FileNotFoundError:
        raise DevclusterError(f"no log for container {name!r} of pod {pod}") from None
