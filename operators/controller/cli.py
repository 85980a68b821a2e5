"""`knet controller`: LoadBalancer addresses from LoadBalancerIPPools, CoreDNS's Corefile from DNSConfig."""

from __future__ import annotations

import argparse
import os
import random
import socket

from operators.controller.controller import Peering
from operators.runtime.cli import add_common_options, fail, periods, run_component, setup_logging


def coredns_ref(value: str) -> tuple[str, str] | None:
    """`NAMESPACE/NAME` -> (namespace, name); empty -> None (CoreDNS's ConfigMap is not managed)."""
    if not value:
        return None
    ns, sep, name = value.partition("/")
    if not sep or not ns or not name or "/" in name:
        raise ValueError(f"--coredns-configmap {value!r} is not NAMESPACE/NAME")
    return ns, name


def cmd_controller(args: argparse.Namespace) -> int:
    from operators.controller import operator
    from operators.runtime.servers import parse_addr

    try:
        parse_addr(args.metrics_addr)
        parse_addr(args.health_addr)
        coredns = coredns_ref(args.coredns_configmap or "")
    except ValueError as e:
        return fail(str(e))
    setup_logging(args.verbose)
    host = args.pod_name or socket.gethostname()
    # Kopf pauses every replica when two share a priority, so each picks its own at random.
    priority = args.priority if args.priority is not None else random.SystemRandom().randint(1, 2**31 - 1)
    options = operator.Options(
        api_server=args.api_server, kubeconfig=args.kubeconfig, metrics_addr=args.metrics_addr,
        health_addr=args.health_addr, peering=Peering(args.peering or "", host, priority), coredns=coredns,
        host=host, periods=periods(args))
    return run_component(operator.run(options))


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    env = os.environ.get
    p = sub.add_parser("controller", help="the cluster-wide controller (LoadBalancer pools, CoreDNS Corefile)",
                       description="Give LoadBalancer Services addresses from LoadBalancerIPPools "
                                   "(status.loadBalancer) "
                                   "and write the DNSConfig named default into CoreDNS's Corefile ConfigMap. Talks to "
                                   "the API server at KNET_API_SERVER with the pod's service account, or with "
                                   "--kubeconfig. With --peering, only one replica acts at a time.")
    add_common_options(p)
    p.add_argument("--peering", default=env("KNET_PEERING"),
                   help="ClusterKopfPeering name shared by the replicas; empty: standalone (default: $KNET_PEERING)")
    p.add_argument("--priority", type=int, help="peering priority (default: random; the highest replica acts)")
    p.add_argument("--coredns-configmap", default=env("KNET_COREDNS_CONFIGMAP", "kube-system/coredns"),
                   help="NAMESPACE/NAME of CoreDNS's Corefile ConfigMap; empty: not managed "
                        "(default: $KNET_COREDNS_CONFIGMAP, else %(default)s)")
    p.set_defaults(func=cmd_controller)
