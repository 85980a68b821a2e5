"""`knet kind ...` sub-commands, in the devcluster's style."""

from __future__ import annotations

import argparse

from operators.cli_errors import Command, one_line_errors
from operators.devcluster.netns import CommandError

from . import cluster
from .podman import KindError


def cmd_up(args: argparse.Namespace) -> int:
    layout = cluster.up(args.name, workers=args.workers, install_knet=args.install, timeout=args.timeout,
                        baseline=args.baseline)
    print(f"KUBECONFIG={layout.kubeconfig}")
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    cluster.down(args.name)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    ready, text = cluster.status(args.name)
    print(text)
    return 0 if ready else 1


def cmd_env(args: argparse.Namespace) -> int:
    print("\n".join(cluster.env_lines(args.name)))
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("kind", help="a real kind cluster (podman provider) from offline images, in its own netns")
    ksub = p.add_subparsers(dest="kind_command", required=True)

    def add(name: str, func: Command, help: str) -> argparse.ArgumentParser:
        sp = ksub.add_parser(name, help=help)
        sp.add_argument("--name", default="knet", help="cluster name (default: knet)")
        sp.set_defaults(func=_guard(func))
        return sp

    up = add("up", cmd_up, "build or reuse the images, create the cluster; prints KUBECONFIG=... last")
    up.add_argument("--workers", type=int, default=2)
    up.add_argument("--install", action="store_true", help="also load knet's image and install the chart")
    up.add_argument("--timeout", type=float, default=300)
    up.add_argument("--baseline", action="store_true", help="the upstream components instead of knet: kube-proxy "
                    "(nftables), kubeadm's CoreDNS, kube-network-policies; knet's agent wires pods alone (with "
                    "--install; conformance/baseline/README.md)")
    add("down", cmd_down, "delete the cluster; the last one takes the namespace and its link along")
    add("status", cmd_status, "show the cluster's nodes (exit 1 unless every node is Ready)")
    add("env", cmd_env, 'print export lines for KUBECONFIG and PATH (eval "$(knet kind env)")')


def _guard(func: Command) -> Command:
    return one_line_errors(func, (KindError, CommandError), 1)
