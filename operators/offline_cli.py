"""`knet render ...` and `knet explain ...`: the pure cores, offline on YAML files (`knet dns --objects` too)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .cli_errors import Command, one_line_errors
from .kube.objects import load_objects


def _print(text: str, problems: list[str]) -> int:
    sys.stdout.write(text)
    for p in problems:
        print(f"warning: {p}", file=sys.stderr)
    return 0


def _clear_errors(command: Command) -> Command:
    """Bad input files give one line on stderr and exit status 2, never a traceback."""
    return one_line_errors(command, (ValueError, OSError), 2)


def cmd_render_proxy(args: argparse.Namespace) -> int:
    from .proxy import offline

    return _print(*offline.render(load_objects(args.filename), args.node, mode=args.mode))


def cmd_render_netpol(args: argparse.Namespace) -> int:
    from .netpol import offline

    return _print(*offline.render(load_objects(args.filename), args.node))


def _ports(args: argparse.Namespace) -> dict[str, int]:
    return {"http_port": args.http_port, "https_port": args.https_port, "status_port": args.status_port}


def _nginx_out(model: Any, problems: list[str], args: argparse.Namespace, status: list[str]) -> int:
    """Print nginx.conf, or with --out write the directory `nginx -p DIR -c nginx.conf` runs."""
    from .ingress import offline
    from .ingress.render import render_config

    for line in status:
        print(f"status: {line}", file=sys.stderr)
    if not args.out:
        return _print(render_config(model, offline.runtime_of(None, _ports(args))), problems)
    conf = offline.write_directory(model, offline.runtime_of(None, _ports(args), directory=True), args.out)
    return _print(f"wrote {conf}; run: nginx -p {conf.parent.resolve()}/ -c nginx.conf -e stderr\n", problems)


def cmd_render_ingress(args: argparse.Namespace) -> int:
    from .ingress import offline

    model, problems = offline.model_from_objects(load_objects(args.filename))
    return _nginx_out(model, [str(p) for p in problems], args, [])


def cmd_render_gateway(args: argparse.Namespace) -> int:
    from .gateway import offline
    from .gateway.addresses import parse_range
    from .ingress.render import Runtime

    ports = (args.http_port or 80, args.https_port or 443)
    taken = (args.status_port or Runtime().status_port,)  # nginx's own loopback status server
    own = parse_range(args.gateway_ports) if args.gateway_ports else None
    model, problems, status = offline.model_from_objects(load_objects(args.filename), ingress_ports=ports,
                                                         taken_ports=taken, own_ports=own)
    return _nginx_out(model, [str(p) for p in problems], args, offline.status_text(status))


def _nginx_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--filename", action="append", required=True, help="YAML file ('-' for stdin)")
    p.add_argument("--out", metavar="DIR", help="write a directory that `nginx -p DIR -c nginx.conf` runs as it is "
                                                 "(relative paths, certificates, endpoints in the file, no Lua)")
    p.add_argument("--http-port", type=int, help="the Ingress HTTP port (default 80)")
    p.add_argument("--https-port", type=int, help="the Ingress HTTPS port (default 443)")
    p.add_argument("--status-port", type=int, help="nginx's loopback status port (default 10254)")


def cmd_render_corefile(args: argparse.Namespace) -> int:
    from .dns import offline

    return _print(*offline.render_corefile(load_objects(args.filename)))


def cmd_render_cni(args: argparse.Namespace) -> int:
    from .cni import offline

    return _print(*offline.render(load_objects(args.filename), args.node, args.mtu))


def cmd_explain_netpol(args: argparse.Namespace) -> int:
    from .netpol.explain import explain
    from .netpol.offline import format_verdict

    port, _, proto = args.port.partition("/")
    verdict = explain(load_objects(args.filename), args.src, args.dst, int(port), (proto or "TCP").upper())
    sys.stdout.write(format_verdict(verdict))
    return 0 if verdict.allowed else 1


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    render = sub.add_parser("render", help="print what knet would program, from objects in YAML files")
    rsub = render.add_subparsers(dest="render_command", required=True)
    p = rsub.add_parser("proxy", help="a node's Service rules (nft -f or iptables-restore input)")
    p.add_argument("-f", "--filename", action="append", required=True, help="YAML file ('-' for stdin)")
    p.add_argument("--node", required=True)
    p.add_argument("--mode", choices=("nftables", "iptables"), default="nftables")
    p.set_defaults(func=_clear_errors(cmd_render_proxy))
    p = rsub.add_parser("netpol", help="a node's NetworkPolicy ruleset (nft -f input)")
    p.add_argument("-f", "--filename", action="append", required=True)
    p.add_argument("--node", required=True)
    p.set_defaults(func=_clear_errors(cmd_render_netpol))

    p = rsub.add_parser("cni", help="a node's CNI mode: conflist, routes to the other nodes' pods, masquerade "
                                    "(nft -f input), from Node objects (and a ClusterNetworkConfig's clusterCIDRs)")
    p.add_argument("-f", "--filename", action="append", required=True)
    p.add_argument("--node", required=True)
    p.add_argument("--mtu", type=int, help="the pods' MTU written in the conflist (default: none)")
    p.set_defaults(func=_clear_errors(cmd_render_cni))

    p = rsub.add_parser("ingress", help="the nginx.conf knet's Ingress controller would run")
    _nginx_options(p)
    p.set_defaults(func=_clear_errors(cmd_render_ingress))
    p = rsub.add_parser("gateway", help="the nginx.conf for the Gateways, HTTPRoutes (and Ingresses) in the files, "
                                        "and the status knet would write (on stderr)")
    _nginx_options(p)
    p.add_argument("--gateway-ports", metavar="FIRST-LAST",
                   help="give each Gateway an address of its own, reaching nginx on ports of this range (as the "
                        "chart's ingress does); default: every Gateway on its listener ports")
    p.set_defaults(func=_clear_errors(cmd_render_gateway))
    p = rsub.add_parser("corefile", help="the CoreDNS Corefile rendered from a DNSConfig")
    p.add_argument("-f", "--filename", action="append", required=True)
    p.set_defaults(func=_clear_errors(cmd_render_corefile))

    explain = sub.add_parser("explain", help="explain a decision")
    esub = explain.add_subparsers(dest="explain_command", required=True)
    p = esub.add_parser("netpol", help="is traffic from one pod to another allowed, and by which rules")
    p.add_argument("-f", "--filename", action="append", required=True)
    p.add_argument("--from", dest="src", required=True, help="NAMESPACE/POD or an IP address")
    p.add_argument("--to", dest="dst", required=True, help="NAMESPACE/POD or an IP address")
    p.add_argument("--port", default="80/TCP", help="PORT/PROTOCOL (default 80/TCP)")
    p.set_defaults(func=_clear_errors(cmd_explain_netpol))
