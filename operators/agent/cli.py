"""`knet agent`: the per-node agent (the Service proxy in nftables or iptables mode, NetworkPolicy, CNI mode)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import yaml

from operators.agent.conntrack_timeouts import CLOSE_WAIT, ESTABLISHED
from operators.cni import conflist
from operators.runtime.cli import add_api_options, fail, run_component, setup_logging, without_kubernetes_client
from operators.runtime.schedule import Periods


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def cmd_agent(args: argparse.Namespace) -> int:
    without_kubernetes_client()
    from operators.agent import operator
    from operators.agent.uninstall import DaemonSetWatch
    from operators.proxy.model import ProxyConfig
    from operators.runtime.servers import parse_addr

    cni_conflist = args.cni_conflist if args.cni else None
    if args.cleanup:  # uninstall.py: remove the rules and exit, as kube-proxy --cleanup
        from operators.agent import uninstall
        return uninstall.cleanup(cni_conflist)
    if not args.node_name:
        return fail("no node name: set NODE_NAME (downward API spec.nodeName) or pass --node-name")
    periods = Periods(args.min_sync_period, args.max_sync_period, args.full_sync_period)
    try:
        data = yaml.safe_load(Path(args.config).read_text()) if args.config else None
        parse_addr(args.metrics_addr)
        parse_addr(args.health_addr)
    except (OSError, yaml.YAMLError, ValueError) as e:
        return fail(str(e))
    if periods.problems():
        return fail(periods.problems()[0])
    if not (args.proxy or args.network_policy or args.cni):
        return fail("--no-proxy, --no-network-policy and no --cni leave the agent nothing to do")
    mtu = args.cni_mtu.strip() or "0"
    if not mtu.isdigit() or not (int(mtu) == 0 or 576 <= int(mtu) <= 65535):
        return fail(f"--cni-mtu {args.cni_mtu!r} is not an MTU (576-65535, or 0: the node's link's)")
    config, problems = ProxyConfig.from_dict(data if isinstance(data, dict) else None)
    setup_logging(args.verbose)
    options = operator.Options(
        node=args.node_name, api_server=args.api_server, kubeconfig=args.kubeconfig,
        metrics_addr=args.metrics_addr, health_addr=args.health_addr, periods=periods, config=config,
        config_problems=tuple(problems), proxy=args.proxy, network_policy=args.network_policy,
        conntrack_timeouts={ESTABLISHED: args.conntrack_tcp_timeout_established,
                            CLOSE_WAIT: args.conntrack_tcp_timeout_close_wait},
        config_file=data if isinstance(data, dict) else None, cni=args.cni, cni_conflist=args.cni_conflist,
        cni_mtu=int(mtu) or None, daemonset=DaemonSetWatch(args.daemonset) if args.daemonset else None)
    status = run_component(operator.run(options))
    if status == 0 and options.daemonset is not None:  # uninstall.py: remove the rules only when uninstalled
        from operators.agent import uninstall
        from operators.runtime.login import credentials
        uninstall.after_stop(credentials(args.api_server, args.kubeconfig), args.daemonset,
                             options.daemonset.state, cni_conflist)
    return status


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("agent", help="the per-node agent: programs Service rules (nftables) from the API",
                       description="Watch Services, EndpointSlices and this Node; keep `table inet knet-proxy` "
                                   "and its shards in sync. Talks to the API server at KNET_API_SERVER with the pod's "
                                   "service account, or with --kubeconfig.")
    p.add_argument("--node-name", default=os.environ.get("NODE_NAME"), help="this node (default: $NODE_NAME)")
    add_api_options(p)
    p.add_argument("--config", help="YAML file with proxy settings (ClusterNetworkConfig proxy keys: "
                                    "clusterCIDRs, serviceCIDRs, masqueradeAll, nodePortAddresses, ...)")
    # Metrics name namespaces, policies and Services: on the node's loopback unless opened (kube-proxy's
    # --metrics-bind-address default); health answers load balancers' checks, so on every address.
    bind = os.environ.get("KNET_METRICS_BIND_ADDRESS") or "127.0.0.1"
    metrics_addr = f"{bind}:{os.environ.get('KNET_METRICS_PORT') or 10249}"
    p.add_argument("--metrics-addr", default=metrics_addr, help="Prometheus /metrics (default %(default)s: "
                   "$KNET_METRICS_BIND_ADDRESS, else the loopback, and $KNET_METRICS_PORT, else 10249)")
    p.add_argument("--health-addr", default=f"0.0.0.0:{os.environ.get('KNET_HEALTH_PORT') or 10256}",
                   help="/healthz, /livez, /readyz (default %(default)s: port $KNET_HEALTH_PORT, else 10256)")
    defaults = Periods()
    p.add_argument("--min-sync-period", type=float, default=defaults.min, help="seconds between syncs at least "
                   "(changes within it are programmed together; default %(default)s)")
    p.add_argument("--max-sync-period", type=float, default=defaults.max, help="seconds between syncs at most, "
                   "also how soon a removed table is restored (default %(default)s)")
    p.add_argument("--full-sync-period", type=float, default=defaults.full, help="seconds between full resyncs "
                   "(default %(default)s)")
    p.add_argument("--proxy", action=argparse.BooleanOptionalAction, default=True,
                   help="program Services in `table inet knet-proxy` (default on); --no-proxy where kube-proxy runs, "
                        "as in the conformance baseline (the agent then wires pods or enforces NetworkPolicy alone)")
    # operators/agent/conntrack_timeouts.py
    p.add_argument("--conntrack-tcp-timeout-established", type=int,
                   default=int(os.environ.get("KNET_CONNTRACK_TCP_ESTABLISHED") or 0),
                   help="seconds: the node's nf_conntrack_tcp_timeout_established, as kube-proxy's "
                        "tcpEstablishedTimeout (the chart: 86400); 0 leaves it (default: "
                        "$KNET_CONNTRACK_TCP_ESTABLISHED, else 0)")
    p.add_argument("--conntrack-tcp-timeout-close-wait", type=int,
                   default=int(os.environ.get("KNET_CONNTRACK_TCP_CLOSE_WAIT") or 0),
                   help="seconds: the node's nf_conntrack_tcp_timeout_close_wait, as kube-proxy's "
                        "tcpCloseWaitTimeout (the chart: 3600); 0 leaves it (default: $KNET_CONNTRACK_TCP_CLOSE_WAIT, "
                        "else 0)")
    p.add_argument("--network-policy", action=argparse.BooleanOptionalAction, default=True,
                   help="enforce NetworkPolicy in `table inet knet-netpol` (default on)")
    # operators/agent/cni.py
    p.add_argument("--cni", action=argparse.BooleanOptionalAction, default=_env_flag("KNET_CNI"),
                   help="CNI mode, kindnet's job where no other CNI plugin runs (kind with disableDefaultCNI): "
                        "write the node's CNI configuration, route the other nodes' podCIDRs, masquerade pod "
                        "traffic leaving the pod ranges (default: $KNET_CNI, else off)")
    p.add_argument("--cni-conflist", default=os.environ.get("KNET_CNI_CONFLIST") or conflist.DEFAULT_PATH,
                   help="where CNI mode writes the conflist (default: $KNET_CNI_CONFLIST, else %(default)s)")
    p.add_argument("--cni-mtu", default=os.environ.get("KNET_CNI_MTU", "0"),
                   help="MTU of the pods' interfaces in CNI mode; 0: that of the link holding the node's InternalIP, "
                        "as kindnet (default: $KNET_CNI_MTU, else 0)")
    # operators/agent/uninstall.py
    p.add_argument("--cleanup", action="store_true", help="remove the agent's rules from this node and exit "
                   "(as kube-proxy --cleanup)")
    p.add_argument("--daemonset", default=os.environ.get("KNET_AGENT_DAEMONSET"), help="NAMESPACE/NAME of the "
                   "agent's DaemonSet: on stopping, remove the rules if it is gone (knet uninstalled) "
                   "(default: $KNET_AGENT_DAEMONSET); with --cni, CNI mode's files, routes and table too")
    p.set_defaults(func=cmd_agent)
