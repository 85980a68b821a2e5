"""`knet devcluster ...` sub-commands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from ..cli_errors import one_line_errors
from . import cluster
from .cluster import DevclusterError
from .layout import Layout
from .netns import CommandError
from .state import load_layout

Command = Callable[[argparse.Namespace], int]


def _layout(name: str) -> Layout:
    try:
        return load_layout(name)
    except FileNotFoundError:
        raise DevclusterError(
            f"no devcluster named {name!r} (start it with `knet devcluster up --name {name}`)"
        ) from None


def cmd_up(args: argparse.Namespace) -> int:
    layout = cluster.up(
        args.name,
        nodes=args.nodes,
        dual_stack=args.ip_family == "dual",
        timeout=args.timeout,
        knet_image=args.knet_image,
    )
    print(f"KUBECONFIG={layout.kubeconfig}")
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    cluster.down(args.name, keep_logs=args.keep_logs)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    layout = _layout(args.name)
    st = cluster.status_of(layout)
    phase = st.get("phase", "unknown") if cluster.alive(st.get("pid")) else "down"
    print(f"devcluster {layout.name}: {phase}  api {layout.api_url}  nodes {', '.join(layout.node_names)}")
    for name, c in sorted(st.get("children", {}).items()):
        print(f"  {name:<40} pid {c['pid']}  restarts {c['restarts']}")
    return 0 if phase == "ready" else 1


def cmd_env(args: argparse.Namespace) -> int:
    print("\n".join(cluster.env_lines(_layout(args.name))))
    return 0


def cmd_exec(args: argparse.Namespace) -> int:
    from .podexec import exec_in_namespace, exec_in_pod

    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    layout = _layout(args.name)
    if args.pod == "external":
        return exec_in_namespace(layout.external_ns, cmd)
    return exec_in_pod(layout, args.pod, cmd, container=args.container)


def cmd_logs(args: argparse.Namespace) -> int:
    from .podexec import pod_logs

    sys.stdout.write(pod_logs(_layout(args.name), args.pod, container=args.container))
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("devcluster", help="the local cluster: real control plane, nodes as network namespaces")
    dsub = p.add_subparsers(dest="devcluster_command", required=True)

    def add(name: str, func: Command, help: str) -> argparse.ArgumentParser:
        sp = dsub.add_parser(name, help=help)
        sp.add_argument("--name", default="knet", help="cluster name (default: knet)")
        sp.set_defaults(func=_guard(func))
        return sp

    up = add("up", cmd_up, "start a cluster (idempotent); prints KUBECONFIG=... last")
    up.add_argument("--nodes", type=int, default=2)
    up.add_argument("--ip-family", choices=("ipv4", "dual"), default="ipv4")
    up.add_argument("--timeout", type=float, default=180)
    up.add_argument("--knet-image", default="knet", help="repository name whose pods run knet's own command")
    down = add("down", cmd_down, "stop a cluster and remove everything it made")
    down.add_argument("--keep-logs", action="store_true")
    add("status", cmd_status, "show the state of a cluster")
    add("env", cmd_env, 'print export lines for KUBECONFIG and PATH (eval "$(knet devcluster env)")')
    ex = add("exec", cmd_exec, "run a command in a pod (network namespace, resolv.conf, mounts, env)")
    ex.add_argument("-c", "--container")
    ex.add_argument("pod", help="NAMESPACE/POD, or `external` for the external client on the underlay")
    ex.add_argument("cmd", nargs=argparse.REMAINDER)
    lg = add("logs", cmd_logs, "print a pod container's log")
    lg.add_argument("-c", "--container")
    lg.add_argument("pod", help="NAMESPACE/POD")


def _guard(func: Command) -> Command:
    return one_line_errors(func, (DevclusterError, CommandError), 1)
