"""`knet dns`: knet's DNS server, from YAML files (`--objects`, offline) or watching the API server."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os

from operators.dns.config import DEFAULT_DOMAIN
from operators.runtime.cli import add_api_options, fail, run_component, setup_logging, without_kubernetes_client

OFFLINE_LISTEN = "127.0.0.1:53"  # a debugging tool: loopback unless told otherwise
CLUSTER_HTTP = "0.0.0.0:8080"
HTTP_PORT_ENV = ("KNET_HEALTH_PORT", "KNET_READY_PORT", "KNET_METRICS_PORT")  # set by the chart


def cluster_listen() -> str:
    return f"0.0.0.0:{os.environ.get('KNET_DNS_PORT') or 53}"


def cluster_http() -> list[str]:
    """One HTTP listener per distinct port the chart names (each serves /health, /ready and /metrics)."""
    ports = dict.fromkeys(os.environ[k] for k in HTTP_PORT_ENV if os.environ.get(k))
    return [f"0.0.0.0:{port}" for port in ports] or [CLUSTER_HTTP]


def nameservers(given: list[str], listen: str) -> tuple[str, ...]:
    """Addresses for ns.dns.<zone>: as given, else the address we listen on, else $POD_IP (CoreDNS answers
    its own address there)."""
    from operators.dns.server import parse_listen

    host = parse_listen(listen)[0]
    if given:
        return tuple(given)
    if host not in ("0.0.0.0", "::", ""):
        return (host,)
    return (os.environ["POD_IP"],) if os.environ.get("POD_IP") else ()


def cmd_dns(args: argparse.Namespace) -> int:
    from operators.dns.server import parse_listen

    setup_logging(args.verbose)
    try:
        for addr in [args.listen, *args.http]:
            if addr:
                parse_listen(addr)
    except ValueError as e:
        return fail(str(e))
    if args.objects:
        from operators.dns import offline
        from operators.kube.objects import load_objects

        try:
            objects = load_objects(args.objects)
        except (ValueError, OSError) as e:
            return fail(str(e))
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(offline.serve(objects, args.listen or OFFLINE_LISTEN, http=args.http))
        return 0
    without_kubernetes_client()
    from operators.dns import watch
    from operators.dns.config import Server
    from operators.dns.names import parse_server

    forward_to = [parse_server(text) for text in args.forward_to]
    if None in forward_to or bool(args.node_local) != bool(forward_to):
        return fail("--node-local ADDR needs --forward-to IP[:PORT] (and only it)")
    if args.node_local:
        from operators.dns import nodelocal

        nodelocal.ensure_address(args.node_local)
    listen = args.listen or (f"{args.node_local}:53" if args.node_local else cluster_listen())
    options = watch.Options(listen=listen, http=tuple(args.http or cluster_http()),
                            api_server=args.api_server, kubeconfig=args.kubeconfig,
                            cluster_domain=args.cluster_domain, nameservers=nameservers(args.nameserver, listen),
                            forward_to=tuple(Server(*found) for found in forward_to if found),
                            rate_limit=args.rate_limit)
    return run_component(watch.run(options))


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("dns", help="knet's cluster DNS server (watching the API, or --objects from YAML files)",
                       description="Answer the cluster zones (Kubernetes DNS schema 1.1.0) and forward the rest. "
                                   "With --objects, from the Services, EndpointSlices, Pods and DNSConfig in those "
                                   "files, no API server; otherwise watch the API server at KNET_API_SERVER with "
                                   "the pod's service account, or the one in --kubeconfig.")
    p.add_argument("--objects", action="append", help="YAML file of Services, EndpointSlices, ... (offline mode)")
    p.add_argument("--listen", help="ADDR:PORT for UDP and TCP (default 0.0.0.0:$KNET_DNS_PORT, else "
                                    f"0.0.0.0:53; {OFFLINE_LISTEN} with --objects)")
    p.add_argument("--http", action="append", default=[],
                   help="ADDR:PORT for /health, /ready and /metrics, repeatable (default 0.0.0.0 on each of "
                        f"$KNET_HEALTH_PORT, $KNET_READY_PORT, $KNET_METRICS_PORT, else {CLUSTER_HTTP}; "
                        "none with --objects)")
    add_api_options(p)
    p.add_argument("--cluster-domain", default=DEFAULT_DOMAIN,
                   help="the cluster zone when no DNSConfig says otherwise (default %(default)s)")
    p.add_argument("--nameserver", action="append", default=[], metavar="IP",
                   help="address(es) answered for ns.dns.<zone> (default: the --listen address, else $POD_IP)")
    p.add_argument("--node-local", metavar="ADDR",
                   help="node-local cache: hold ADDR (e.g. 169.254.20.10) on the loopback interface of this network "
                        "namespace and listen on ADDR:53 (see operators/dns/nodelocal.py)")
    p.add_argument("--forward-to", action="append", default=[], metavar="IP[:PORT]",
                   help="with --node-local: the cluster DNS, where every name outside the cluster zones goes")
    p.add_argument("--rate-limit", type=float, default=float(os.environ.get("KNET_DNS_RATE_LIMIT") or 0),
                   metavar="N", help="at most N UDP responses per second to one source address, the rest dropped "
                   "(forged sources cannot aim our answers at a victim); 0, the default: no limit "
                   "(env KNET_DNS_RATE_LIMIT)")
    p.set_defaults(func=cmd_dns)
