"""`knet devcluster up/down/status/env`: the lifecycle of a local cluster."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from . import controlplane, network, upstream
from .layout import PREFIX, Layout, created_paths_record, state_root
from .netns import CommandError
from .state import load_layout, new_layout, save_layout
from .volumes import remove_created_paths


class DevclusterError(RuntimeError):
    """A fault with a one-line cause, printed as `error: ...` by the CLI."""


REQUIRED_TOOLS = ("ip", "nsenter", "ss", "nft", "sysctl")


def preflight() -> None:
    if os.geteuid() != 0:
        raise DevclusterError("knet devcluster must run as root: it creates network namespaces and veths")
    missing = [t for t in REQUIRED_TOOLS if shutil.which(t) is None]
    if missing:
        raise DevclusterError(f"missing tools {', '.join(missing)}: install iproute2, util-linux and nftables")
    if miss := upstream.missing():
        raise DevclusterError(
            f"missing upstream binary {miss[0]} in {upstream.bin_dir()}: run hack/build-upstream.sh (make tools)"
        )


def status_of(layout: Layout) -> dict:
    try:
        return json.loads((layout.dir / "supervisor.json").read_text())
    except (OSError, ValueError):
        return {}


def alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def up(name: str, nodes: int = 2, dual_stack: bool = False, timeout: float = 180, knet_image: str = "knet") -> Layout:
    """Start cluster `name` (or find it running) and return its layout once every node is Ready."""
    preflight()
    t0 = time.time()
    try:
        layout = load_layout(name)
        st = status_of(layout)
        if st.get("phase") in ("ready", "starting") and alive(st.get("pid")):
            return wait_ready(layout, t0, timeout)
    except FileNotFoundError:
        layout = new_layout(name, nodes, dual_stack, knet_image)
    try:
        save_layout(layout)
        layout.logs.mkdir(parents=True, exist_ok=True)
        controlplane.write_credentials(layout)
        network.create(layout)
        (layout.dir / "supervisor.json").unlink(missing_ok=True)
        log = open(layout.logs / "supervisor.log", "ab")  # noqa: SIM115 - handed to the child
        subprocess.Popen(
            [sys.executable, "-m", "operators.devcluster.supervisor", name],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        return wait_ready(layout, t0, timeout)
    except (DevclusterError, CommandError, OSError) as e:
        down(name, keep_logs=True)
        raise DevclusterError(f"{e} (logs kept in {layout.logs})") from None


def wait_ready(layout: Layout, t0: float, timeout: float) -> Layout:
    deadline = t0 + timeout
    while time.time() < deadline:
        st = status_of(layout)
        if st.get("phase") == "ready":
            api = max(0.0, st.get("api_ready_at", t0) - t0)
            print(
                f"devcluster {layout.name}: API ready in {api:.1f}s, {layout.nodes} nodes ready in "
                f"{time.time() - t0:.1f}s",
                file=sys.stderr,
            )
            return layout
        if st.get("phase") == "failed":
            raise DevclusterError(st.get("error") or "the supervisor failed")
        if st and not alive(st.get("pid")):
            raise DevclusterError("the devcluster supervisor died; see supervisor.log")
        time.sleep(0.2)
    raise DevclusterError(f"devcluster {layout.name} not ready after {timeout:.0f}s")


def down(name: str, keep_logs: bool = False) -> None:
    """Stop every process of the cluster and remove its namespaces, links, routes and files
    (found by name, so a cluster whose start failed half-way is removed just the same)."""
    d = state_root() / name
    try:
        pid = status_of(load_layout(name)).get("pid")
    except FileNotFoundError:
        pid = None
    if alive(pid):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 40
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
    network.destroy(name)
    for p in Path("/etc/netns").glob(f"{PREFIX}-{name}-*"):
        shutil.rmtree(p, ignore_errors=True)
    if d.exists():
        if keep_logs:
            for child in d.iterdir():
                if child.name != "logs":
                    shutil.rmtree(child) if child.is_dir() else child.unlink()
        else:
            shutil.rmtree(d, ignore_errors=True)
    if not any(state_root().glob("*/cluster.json")):
        remove_created_paths(created_paths_record())


def env_lines(layout: Layout) -> list[str]:
    return [
        f"export KUBECONFIG={layout.kubeconfig}",
        f'export PATH="{upstream.bin_dir()}:$PATH"',
    ]
