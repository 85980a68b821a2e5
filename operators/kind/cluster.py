"""`knet kind up|down|status|env`: kind clusters from knet's offline node image, in knet's own namespace.

`up` builds (or reuses) the node image, makes the network namespace, renders the repository's
kind-config.yaml for the cluster's name and size, runs `kind create cluster` there and writes a kubeconfig
that reaches the API server from the machine. With `install`, it also builds knet's image, loads it into
the nodes (`kind load image-archive`) and installs the chart with charts/knet/ci/kind-values.yaml.

`baseline` makes the same cluster with the upstream components knet is judged against
(conformance/baseline/README.md): kubeadm's kube-proxy in nftables mode, kubeadm's CoreDNS as kubeadm
configures it, kube-network-policies for NetworkPolicy, and knet's agent in CNI mode alone for the pods'
network, so that both clusters share it.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

from operators.devcluster import netns, upstream

from . import network
from .layout import LB_POOL_V4, NETNS, KindLayout, cache_root, state_root
from .podman import KindError, environ, run, write_config

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "knet"
BASELINE = REPO / "conformance" / "baseline"
NAMESPACE = "knet-system"


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _script(name: str) -> str:
    """Run one of hack/'s build scripts; its last line is what it built."""
    proc = subprocess.run([str(REPO / "hack" / name)], stdout=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise KindError(f"hack/{name} failed (exit {proc.returncode})")
    return proc.stdout.strip().splitlines()[-1]


def kind_bin() -> Path:
    return Path(_script("build-kind.sh"))


def render_config(source: dict, layout: KindLayout, image: str, baseline: bool = False) -> dict:
    """kind-config.yaml for this cluster: its name, one control plane and `workers` workers, knet's node
    image on each; for the baseline, kubeadm's kube-proxy in nftables mode (pure)."""
    cfg = json.loads(json.dumps(source))
    if baseline:
        cfg["networking"] = {**cfg.get("networking", {}), "kubeProxyMode": "nftables"}
    nodes = cfg.get("nodes") or [{"role": "control-plane"}]
    cp = next((n for n in nodes if n.get("role") == "control-plane"), {"role": "control-plane"})
    worker = next((n for n in nodes if n.get("role") == "worker"), {"role": "worker"})
    cfg["name"] = layout.name
    cfg["nodes"] = [{**cp, "image": image}] + [{**worker, "image": image} for _ in range(layout.workers)]
    return cfg


def clusters(env: dict[str, str]) -> list[str]:
    out = run(["kind", "get", "clusters"], env=env, check=False)
    return [line.strip() for line in out.splitlines() if line.strip()]


def containers(name: str, env: dict[str, str], fmt: str = "{{.Names}}", all_states: bool = False) -> str:
    """podman's list of the cluster's node containers (running ones unless all_states)."""
    return run(["podman", "ps", *(["-a"] if all_states else []), "--filter", f"label=io.x-k8s.kind.cluster={name}",
                "--format", fmt], env=env)


def _running(layout: KindLayout, env: dict[str, str]) -> bool:
    return set(containers(layout.name, env).split()) == set(layout.node_names)


def node_ip(name: str, env: dict[str, str] | None = None) -> str:
    out = run(["podman", "inspect", name, "--format", "{{json .NetworkSettings.Networks}}"], env=env)
    nets = json.loads(out)
    addr = (nets.get("kind") or {}).get("IPAddress", "")
    if not addr:
        raise KindError(f"node {name} has no address on podman's `kind` network")
    return addr


def write_kubeconfig(layout: KindLayout, env: dict[str, str]) -> None:
    """kind's kubeconfig, with the API server at the control-plane node's address on the node network
    (routed from the machine over knet-kind's link), instead of a port on knet-kind's loopback."""
    raw = run(["kind", "get", "kubeconfig", "--internal", "--name", layout.name], env=env)
    internal = f"https://{layout.control_plane}:6443"
    if internal not in raw:
        raise KindError(f"kind's kubeconfig does not name {internal}")
    layout.kubeconfig.write_text(raw.replace(internal, f"https://{node_ip(layout.control_plane, env)}:6443"))
    layout.kubeconfig.chmod(0o600)


def kubectl(layout: KindLayout, *args: str, input: str | None = None, check: bool = True,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([str(upstream.bin_dir() / "kubectl"), f"--kubeconfig={layout.kubeconfig}", *args],
                          capture_output=True, text=True, input=input, timeout=timeout)
    if check and proc.returncode != 0:
        raise KindError(f"kubectl {' '.join(args)}: {proc.stderr.strip()}")
    return proc


def wait(what: str, check, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except (KindError, subprocess.SubprocessError):
            pass
        if time.monotonic() > deadline:
            raise KindError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(1)


def readiness(layout: KindLayout, timeout: float = 120) -> tuple[int, int]:
    """(nodes registered, of which Ready)."""
    items = json.loads(kubectl(layout, "get", "nodes", "-o", "json", timeout=timeout).stdout)["items"]
    ready = [n for n in items if any(c["type"] == "Ready" and c["status"] == "True"
                                     for c in n["status"].get("conditions", []))]
    return len(items), len(ready)


def nodes_ready(layout: KindLayout) -> bool:
    return readiness(layout)[1] == len(layout.node_names)


def knet_image() -> str:
    """Build knet's image from this checkout (hack/build-image.sh) and return its name."""
    version = next(line.split('"')[1] for line in (REPO / "pyproject.toml").read_text().splitlines()
                   if line.startswith("version = "))
    tag = f"localhost/knet:{version}"
    proc = subprocess.run([str(REPO / "hack" / "build-image.sh"), tag], stdout=sys.stderr)
    if proc.returncode != 0:
        raise KindError(f"hack/build-image.sh failed (exit {proc.returncode})")
    return tag


def load_image(layout: KindLayout, image: str, env: dict[str, str]) -> None:
    """`kind load image-archive` of a podman image into every node of the cluster."""
    archive = cache_root() / "kind" / "images" / (image.replace("/", "_").replace(":", "_") + ".tar")
    archive.parent.mkdir(parents=True, exist_ok=True)
    archive.unlink(missing_ok=True)
    run(["podman", "save", "--quiet", "--format", "docker-archive", "-o", str(archive), image], env=env)
    run(["kind", "load", "image-archive", str(archive), "--name", layout.name], env=env)


def install(layout: KindLayout, env: dict[str, str], timeout: float, baseline: bool = False) -> float:
    """knet from its image with Helm (kind-values.yaml), then a LoadBalancerIPPool on the node network; for the
    baseline, knet's CNI mode alone, then kube-network-policies. Returns the seconds spent building knet's image."""
    t = time.monotonic()
    image = knet_image()
    image_build = time.monotonic() - t
    _say(f"== built {image} in {image_build:.0f}s")
    t = time.monotonic()
    load_image(layout, image, env)
    _say(f"== loaded {image} into {len(layout.node_names)} nodes in {time.monotonic() - t:.0f}s")
    repo, tag = image.rsplit(":", 1)
    values = BASELINE / "knet-values.yaml" if baseline else CHART / "ci" / "kind-values.yaml"
    helm = [str(upstream.bin_dir() / "helm"), f"--kubeconfig={layout.kubeconfig}", "upgrade", "--install",
            "knet", str(CHART), "-n", NAMESPACE, "--create-namespace", "-f", str(values),
            "--set", f"image.repository={repo}", "--set", f"image.tag={tag}", "--wait", f"--timeout={int(timeout)}s"]
    proc = subprocess.run(helm, capture_output=True, text=True)
    if proc.returncode != 0:
        raise KindError(f"helm: {proc.stderr.strip()}")
    if baseline:
        install_baseline(layout, env, timeout)
    else:
        pool = {"apiVersion": "knet.io/v1alpha1", "kind": "LoadBalancerIPPool", "metadata": {"name": "kind"},
                "spec": {"ranges": [{"cidr": LB_POOL_V4}]}}
        kubectl(layout, "apply", "-f", "-", input=yaml.safe_dump(pool))
    return image_build


def install_baseline(layout: KindLayout, env: dict[str, str], timeout: float) -> None:
    """kube-network-policies from its image (hack/build-baseline-images.sh), and every upstream component of the
    baseline rolled out: kube-proxy and CoreDNS as kubeadm installed them, kube-network-policies."""
    archive = _script("build-baseline-images.sh")
    run(["kind", "load", "image-archive", archive, "--name", layout.name], env=env)
    manifest = BASELINE / "kube-network-policies.yaml"
    kubectl(layout, "apply", "-f", str(manifest))
    for workload in ("daemonset/kube-proxy", "deployment/coredns", "daemonset/kube-network-policies"):
        kubectl(layout, "rollout", "status", "-n", "kube-system", f"--timeout={int(timeout)}s", workload,
                timeout=timeout + 30)


LIB_MODULES = Path("/lib/modules")


def ensure_lib_modules() -> None:
    """kind mounts the machine's /lib/modules into every node, and the agent mounts the node's as a
    directory. Where the machine has none (or only the devcluster's empty stand-in file), an empty
    directory is made, and recorded so that the last `down` removes it."""
    if LIB_MODULES.is_dir():
        return
    if LIB_MODULES.is_file() and LIB_MODULES.stat().st_size == 0:
        LIB_MODULES.unlink()
    LIB_MODULES.mkdir()
    (state_root() / "created-lib-modules").touch()


def remove_lib_modules() -> None:
    marker = state_root() / "created-lib-modules"
    if marker.exists():
        with contextlib.suppress(OSError):
            LIB_MODULES.rmdir()
        marker.unlink()


def up(name: str, workers: int = 2, install_knet: bool = False, timeout: float = 300,
       baseline: bool = False) -> KindLayout:
    layout = KindLayout(name, workers)
    start = time.monotonic()
    write_config()
    ensure_lib_modules()
    image = _script("build-kind-node.sh")
    kbin = kind_bin()
    env = environ(kbin, [upstream.bin_dir()])
    network.create()
    layout.dir.mkdir(parents=True, exist_ok=True)
    if name in clusters(env) and not _running(layout, env):
        _say(f"== kind cluster {name} exists but its nodes are not all running: re-creating it")
        run(["kind", "delete", "cluster", "--name", name], env=env)
    if name not in clusters(env):
        source = yaml.safe_load((REPO / "kind-config.yaml").read_text())
        cfg = render_config(source, layout, image, baseline)
        layout.kind_config.write_text(yaml.safe_dump(cfg, sort_keys=False))
        t = time.monotonic()
        run(["kind", "create", "cluster", "--name", name, "--config", str(layout.kind_config),
             "--kubeconfig", str(layout.dir / "kubeconfig.kind")], env=env, capture=False)
        _say(f"== kind create cluster {name} ({len(layout.node_names)} nodes) took {time.monotonic() - t:.0f}s")
    write_kubeconfig(layout, env)
    if install_knet:
        image_build = install(layout, env, timeout, baseline)
        wait(f"{len(layout.node_names)} Ready nodes", lambda: nodes_ready(layout), timeout)
        stack = "the baseline" if baseline else "knet"
        _say(f"== {len(layout.node_names)} nodes Ready with {stack} {time.monotonic() - start:.0f}s after `up` started"
             f" ({time.monotonic() - start - image_build:.0f}s without building knet's image)")
    return layout


def down(name: str) -> None:
    """Delete the cluster; with no kind cluster left, the namespace and its link go too."""
    env = environ(kind_bin())
    layout = KindLayout(name)
    if netns.exists(NETNS):
        if name in clusters(env):
            run(["kind", "delete", "cluster", "--name", name], env=env)
        last = not clusters(env)
    else:
        last = True
    shutil.rmtree(layout.dir, ignore_errors=True)
    if last:  # the namespace, its link, and knet's podman settings go with the last cluster
        network.destroy()
        remove_lib_modules()
        shutil.rmtree(state_root(), ignore_errors=True)


def env_lines(name: str) -> list[str]:
    layout = KindLayout(name)
    return [f"export KUBECONFIG={layout.kubeconfig}", f'export PATH="{upstream.bin_dir()}:$PATH"']


def status(name: str) -> tuple[bool, str]:
    env = environ(kind_bin())
    if not netns.exists(NETNS) or name not in clusters(env):
        return False, f"kind cluster {name}: down"
    layout = KindLayout(name)
    out = containers(name, env, "{{.Names}} {{.Status}}", all_states=True)
    try:
        registered, ready_count = readiness(layout, timeout=10)
        ready = registered > 0 and ready_count == registered
    except (KindError, subprocess.SubprocessError):
        ready = False
    return ready, f"kind cluster {name}: {'ready' if ready else 'not ready'}\n{out.rstrip()}"


__all__ = ["KindError", "down", "env_lines", "state_root", "status", "up"]
