"""Paths and helm/kubectl runners shared by the chart tests (unit and e2e)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from operators.devcluster import upstream

ROOT = Path(__file__).resolve().parents[3]
CHART = ROOT / "charts" / "knet"
CRDS = ROOT / "manifests" / "crds"
CHART_CRDS = CHART / "crds"
EXAMPLES = ROOT / "manifests" / "examples"
INSTALL = ROOT / "manifests" / "install.yaml"
RENDER_SCRIPT = ROOT / "hack" / "render-install.sh"
NAMESPACE = "knet-system"
RELEASE = "knet"
# the documented values variants: None is the defaults, then every charts/knet/ci/*-values.yaml
VARIANTS: list[str | None] = [None, *sorted(p.name for p in (CHART / "ci").glob("*-values.yaml"))]
# stands for the cluster that `controlPlaneEndpoint: auto` would look up (offline there is none)
OFFLINE_VALUES = Path(__file__).with_name("offline-values.yaml")
KNET_KINDS = ("ClusterNetworkConfig", "DNSConfig", "LoadBalancerIPPool", "NodeNetworkStatus")


def tool(name: str) -> str:
    """The pinned binary from the upstream cache; skip the test cleanly when it is not built."""
    path = upstream.bin_dir() / name
    if not os.access(path, os.X_OK):
        pytest.skip(f"{name} not built: run hack/build-upstream.sh ({path} is missing)")
    return str(path)


def variant_args(variant: str | None) -> list[str]:
    """The values of one variant rendered offline: OFFLINE_VALUES, then the variant's file."""
    return ["-f", str(OFFLINE_VALUES), *(["-f", str(CHART / "ci" / variant)] if variant else [])]


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([tool("helm"), *args], capture_output=True, text=True, timeout=120, cwd=ROOT)
    if check and proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def template(*args: str, crds: bool = False) -> str:
    """`helm template knet charts/knet -n knet-system ARGS` (stdout)."""
    extra = ["--include-crds"] if crds else []
    return helm("template", RELEASE, str(CHART), "--namespace", NAMESPACE, *extra, *args).stdout


def docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def load(path: Path) -> list[dict[str, Any]]:
    return docs(path.read_text())


def find(objs: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [o for o in objs if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]


def one(objs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = find(objs, kind, name)
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]
