"""kind and podman as knet runs them: in the `knet-kind` network namespace, with knet's own podman settings.

podman reads `CONTAINERS_CONF` and `CONTAINERS_REGISTRIES_CONF` instead of /etc/containers: the machine's
files stay as they are, and only kind's nodes get these settings:
- runc, not crun (crun fails on this kernel's cgroup v1 set-up);
- nofile/nproc ulimits within the machine's own (there is no CAP_SYS_RESOURCE to raise them);
- netavark with aardvark-dns, which resolves node names (`<cluster>-control-plane`) as Docker's embedded
  DNS does for kind, and is the nodes' only name server (no resolver of the machine's in their resolv.conf);
- no registry at all: every image is built here, and a pull is refused by podman before any lookup.

`nsenter --net` rather than `ip netns exec`: the latter remounts /sys, which hides the cgroup mounts, and
runc then fails with "no cgroup mount found in mountinfo".
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

from .layout import NETNS, state_root

CONTAINERS_CONF = """\
# knet's podman settings for kind nodes (operators/kind/podman.py)
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=32768:32768"]
# The nodes resolve through aardvark-dns on podman's bridge only (node names), never the machine's resolvers.
dns_servers = ["172.18.0.1"]

[engine]
runtime = "runc"

[network]
network_backend = "netavark"
"""

REGISTRIES_CONF = """\
# knet's kind nodes pull nothing: every image is built on this machine (operators/kind/podman.py).
unqualified-search-registries = []
short-name-mode = "enforcing"

[[registry]]
prefix = "docker.io"
location = "docker.io"
blocked = true

[[registry]]
prefix = "registry.k8s.io"
location = "registry.k8s.io"
blocked = true

[[registry]]
prefix = "quay.io"
location = "quay.io"
blocked = true

[[registry]]
prefix = "gcr.io"
location = "gcr.io"
blocked = true

[[registry]]
prefix = "ghcr.io"
location = "ghcr.io"
blocked = true
"""


class KindError(RuntimeError):
    """A step of bringing a kind cluster up or down failed; the message says which and why."""


def config_dir() -> Path:
    return state_root() / "podman"


def write_config() -> None:
    d = config_dir()
    d.mkdir(parents=True, exist_ok=True)
    for name, text in (("containers.conf", CONTAINERS_CONF), ("registries.conf", REGISTRIES_CONF)):
        p = d / name
        if not p.exists() or p.read_text() != text:
            p.write_text(text)


def environ(kind_bin: Path | None = None, extra_path: Sequence[Path] = ()) -> dict[str, str]:
    """The environment kind and podman run with."""
    env = dict(os.environ)
    env["CONTAINERS_CONF"] = str(config_dir() / "containers.conf")
    env["CONTAINERS_REGISTRIES_CONF"] = str(config_dir() / "registries.conf")
    env["KIND_EXPERIMENTAL_PROVIDER"] = "podman"
    dirs = [str(p) for p in ([kind_bin] if kind_bin else []) + list(extra_path)]
    env["PATH"] = ":".join([*dirs, env.get("PATH", "/usr/bin:/bin")])
    return env


def run(args: Sequence[str], *, env: dict[str, str] | None = None, check: bool = True,
        capture: bool = True, timeout: float | None = None, input: str | None = None) -> str:
    """Run a command in the knet-kind namespace."""
    cmd = ["nsenter", f"--net=/run/netns/{NETNS}", "--", *args]
    proc = subprocess.run(cmd, env=env or environ(), capture_output=capture, text=True,
                          timeout=timeout, input=input)
    if check and proc.returncode != 0:
        err = ((proc.stderr or "") + (proc.stdout or "")).strip().splitlines() if capture else []
        tail = "\n".join(err[-15:]) if err else f"exit {proc.returncode}"
        raise KindError(f"`{' '.join(args)}` failed:\n{tail}")
    return proc.stdout or ""
