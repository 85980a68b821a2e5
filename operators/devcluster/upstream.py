"""Where the pinned upstream binaries are (built by hack/build-upstream.sh)."""

from __future__ import annotations

import os
from pathlib import Path

NAMES = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
    "kube-proxy",
    "helm",
    "coredns",
)


def versions() -> dict[str, str]:
    """The pins, read from the same file the build script sources."""
    out = {}
    for line in (Path(__file__).with_name("versions.env")).read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            k, v = line.split("=", 1)
            out[k.strip()] = v.strip()
    return out


def bin_dir() -> Path:
    """The versioned cache directory (KNET_UPSTREAM_BIN overrides it)."""
    if env := os.environ.get("KNET_UPSTREAM_BIN"):
        return Path(env)
    v = versions()
    root = Path(os.environ.get("KNET_CACHE") or Path.home() / ".cache/knet")
    name = f"k8s-{v['KUBE_VERSION']}-etcd-{v['ETCD_VERSION']}-helm-{v['HELM_VERSION']}-coredns-{v['COREDNS_VERSION']}"
    return root / "upstream" / name / "bin"


def missing() -> list[str]:
    d = bin_dir()
    return [n for n in NAMES if not os.access(d / n, os.X_OK)]
