"""`knet ingress`: the nginx Ingress controller (IngressClass controller `knet.io/ingress-nginx`)."""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import socket
from dataclasses import replace
from pathlib import Path

import yaml

from operators.gateway.addresses import parse_range
from operators.ingress.render import Runtime
from operators.runtime.cli import add_common_options, fail, periods, run_component, setup_logging

LUA_MODULE = "ngx_http_lua_module.so"


def _has_ipv6() -> bool:
    """Whether this network namespace can listen on IPv6 (nginx refuses the whole config otherwise)."""
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def runtime_for(args: argparse.Namespace) -> Runtime:
    prefix = args.prefix.rstrip("/")
    rt = Runtime(prefix=prefix, certificate_dir=f"{prefix}/certs", default_certificate=f"{prefix}/certs/default.pem",
                 pid_file=f"{prefix}/nginx.pid", temp_dir=f"{prefix}/tmp", control_socket=f"{prefix}/control.sock",
                 http_port=args.http_port, https_port=args.https_port, status_port=args.status_port,
                 access_log=args.access_log, ipv6=_has_ipv6(), modules_dir=args.modules_dir,
                 dynamic_endpoints=Path(args.modules_dir, LUA_MODULE).exists(),
                 gateway_ports=parse_range(args.gateway_ports) if args.gateway_ports else None)
    rt.check()
    return rt


def cmd_ingress(args: argparse.Namespace) -> int:
    from operators.ingress import operator
    from operators.ingress.model import IngressConfig
    from operators.runtime.servers import parse_addr

    if args.gateway_ports and not args.service:
        return fail("--gateway-ports needs --service: each Gateway's Service leads to that Service's endpoints")
    try:
        data = yaml.safe_load(Path(args.config).read_text()) if args.config else {}
        others = (parse_addr(args.metrics_addr)[1], parse_addr(args.health_addr)[1])
        runtime = replace(runtime_for(args), other_ports=others)
    except (OSError, yaml.YAMLError, ValueError) as e:
        return fail(str(e))
    nginx = shutil.which(args.nginx) or args.nginx
    if not Path(nginx).exists():
        return fail(f"nginx not found: {args.nginx}")
    config, problems = IngressConfig.from_dict({**(data if isinstance(data, dict) else {}),
                                                 "controller": args.controller})
    setup_logging(args.verbose)
    for problem in problems:
        logging.warning("config: %s", problem)
    if not runtime.dynamic_endpoints:
        logging.warning("no %s in %s: endpoint changes will reload nginx", LUA_MODULE, args.modules_dir)
    options = operator.Options(
        api_server=args.api_server, kubeconfig=args.kubeconfig, metrics_addr=args.metrics_addr,
        health_addr=args.health_addr, runtime=runtime, config=config,
        publish=tuple(a for a in (args.publish_address or "").split(",") if a), service=args.service or "",
        host=args.pod_name or socket.gethostname(), periods=periods(args),
        nginx=nginx)
    return run_component(operator.run(options))


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    env = os.environ.get
    p = sub.add_parser("ingress", help="the nginx Ingress controller",
                       description="Watch IngressClasses, Ingresses, Services, EndpointSlices and TLS Secrets; run "
                                   "nginx with the rendered config, reloading only when the config changes "
                                   "(endpoints are pushed without a reload). Talks to the API server at "
                                   "KNET_API_SERVER with the pod's service account, or with --kubeconfig.")
    add_common_options(p)
    p.add_argument("--controller", default=env("KNET_INGRESS_CLASS_CONTROLLER") or "knet.io/ingress-nginx",
                   help="serve the IngressClasses with this spec.controller (default %(default)s)")
    p.add_argument("--config", help="YAML file with controller settings (IngressConfig keys: defaultBackend, "
                                    "sslRedirect, proxyBodySize, watchWithoutClass, ...)")
    p.add_argument("--http-port", type=int, default=int(env("KNET_HTTP_PORT") or 80), help="default %(default)s")
    p.add_argument("--https-port", type=int, default=int(env("KNET_HTTPS_PORT") or 443), help="default %(default)s")
    p.add_argument("--status-port", type=int, default=10254, help="nginx's loopback /healthz (default %(default)s)")
    p.add_argument("--publish-address", default=env("KNET_PUBLISH_ADDRESS") or env("HOST_IP"),
                   help="comma-separated addresses for Ingress status (default: $KNET_PUBLISH_ADDRESS or $HOST_IP)")
    p.add_argument("--service", default=env("KNET_INGRESS_SERVICE"),
                   help="NAMESPACE/NAME of the controller's Service: its LoadBalancer addresses go into Ingress "
                        "status when it has some (default: $KNET_INGRESS_SERVICE)")
    p.add_argument("--gateway-ports", metavar="FIRST-LAST", default=env("KNET_GATEWAY_PORTS"),
                   help="give each Gateway a LoadBalancer Service of its own, leading to nginx ports of this range "
                        "(default: $KNET_GATEWAY_PORTS; unset: every Gateway on the --service address)")
    p.add_argument("--prefix", default="/var/lib/knet/ingress", help="nginx's directory (default %(default)s)")
    p.add_argument("--access-log", default="/dev/stdout", help="nginx's access log, or off (default %(default)s)")
    p.add_argument("--modules-dir", default="/usr/lib/nginx/modules", help="default %(default)s")
    p.add_argument("--nginx", default="nginx", help="the nginx binary (default %(default)s)")
    p.set_defaults(func=cmd_ingress)
