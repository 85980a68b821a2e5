"""nginx instances for the ingress benchmark, in a network namespace of the benchmark's own: a backend
(one worker, answering each request with the port it came in on), knet's rendered config, and a minimal
hand-written proxy config for the same route.

Three more configs tell where the difference between those two goes: knet's config with the endpoints
written into its upstreams (what `knet render ingress` writes without the Lua module: no balancer code
runs per request), knet's config with a balancer that only sets the one backend as the peer (the Lua
framework's cost per request without knet's Lua), and the minimal config plus exactly the forwarding
headers knet's config sets.

Traefik (`bench/traefik.py`) serves the same route in the same namespace, the upstream anchor.

Everything listens on the namespace's loopback, so the figures compare the proxy configs on the same
machine, through the same backend, with the same client (wrk, also run in the namespace)."""

from __future__ import annotations

import http.client
import os
import re
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from bench import traefik
from operators.devcluster import netns
from operators.ingress import files
from operators.ingress.model import IngressModel
from operators.ingress.render import Runtime, render_config, render_endpoints

NS = "knet-bench-ing"
HOST = "bench.test"
BACKEND = "10.254.0.1"  # on the namespace's lo, outside 127/8 (knet refuses loopback endpoint addresses)
BACKEND_PORTS = tuple(range(9001, 9011))
KNET_PORT, MINIMAL_PORT, KNET_STATIC_PORT, FORWARDING_PORT, KNET_CONSTANT_PORT = 8001, 8002, 8003, 8004, 8005
TRAEFIK_PORT = 8006


def in_ns(*argv: str, cpu: int | None = None) -> list[str]:
    """argv run in the benchmark's namespace, pinned to one CPU when `cpu` is given (nginx on 0, the
    load client on 1, so that the two proxies are measured under the same placement)."""
    pin = ["taskset", "-c", str(cpu)] if cpu is not None else []
    return [*pin, "nsenter", f"--net=/run/netns/{NS}", "--", *argv]


def backend_conf(prefix: Path) -> str:
    listens = "".join(f"        listen {BACKEND}:{p};\n" for p in BACKEND_PORTS)
    return f"""worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    server {{
{listens}        location / {{ return 200 "$server_port"; }}
    }}
}}
"""


def minimal_conf(prefix: Path, port: int = MINIMAL_PORT, forwarding: str = "") -> str:
    """What one would write by hand for one route: a keep-alive upstream and a proxy_pass; `forwarding`
    (from `forwarding_headers`) adds the headers that tell the backend about the client."""
    return f"""worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    upstream backend {{
        server {BACKEND}:{BACKEND_PORTS[0]};
        keepalive 32;
    }}
    server {{
        listen 127.0.0.1:{port};
        server_name {HOST};
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
{forwarding}        }}
    }}
}}
"""


def forwarding_headers(knet_conf: str) -> str:
    """The X- headers knet's config sets for its one route, and the value its request ID comes from
    (a map in knet's config), as lines for `minimal_conf`: the same request reaches the backend."""
    lines = re.findall(r"^ *proxy_set_header X-[^\n]*;$", knet_conf, re.M)
    request_id = re.search(r'^ *"" (\$pid-\S+);$', knet_conf, re.M)
    if len(lines) != 7 or not request_id:  # the route's seven; more would mean a new header or route
        raise ValueError("knet's config changed: update forwarding_headers")
    text = "".join(f"            {line.strip()}\n" for line in lines)
    return text.replace("$knet_request_id", request_id.group(1))


def knet_runtime(prefix: Path, dynamic: bool = True, port: int = KNET_PORT) -> Runtime:
    """The controller's runtime (dynamic endpoints, the Lua balancer) with one worker and no access log,
    HTTP on `port` (HTTPS and status ports derived from it, so that several run side by side); with
    `dynamic` false, the endpoints are written into the config."""
    p = str(prefix)
    return Runtime(prefix=p, certificate_dir=f"{p}/certs", default_certificate=f"{p}/certs/default.pem",
                   pid_file=f"{p}/nginx.pid", temp_dir=f"{p}/tmp", error_log=f"{p}/error.log", access_log="off",
                   http_port=port, https_port=port + 440, status_port=port + 253, ipv6=False,
                   worker_processes=1, dynamic_endpoints=dynamic, control_socket=f"{p}/control.sock")


def constant_balancer(conf: str) -> str:
    """knet's config for the bench's one route with its balancer call replaced by one that only sets the
    backend as the peer: the Lua framework's cost per request, without knet's Lua."""
    text, n = re.subn(r'balancer_by_lua_block \{ knet\.balance\("[^"]+"\) \}',
                      f'balancer_by_lua_block {{ require("ngx.balancer").set_current_peer("{BACKEND}", '
                      f'{BACKEND_PORTS[0]}) }}', conf)
    if n != 1:  # the route's one upstream
        raise ValueError("knet's config changed: update constant_balancer")
    return text


def backend_objects(ports: tuple[int, ...]) -> list[dict]:
    """The Service `bench/web` whose endpoints are the backend's `ports` (one EndpointSlice each)."""
    return [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "bench"},
         "spec": {"clusterIP": "10.96.0.10", "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}},
        *({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
           "metadata": {"name": f"web-{p}", "namespace": "bench", "labels": {"kubernetes.io/service-name": "web"}},
           "addressType": "IPv4", "ports": [{"name": "http", "port": p}],
           "endpoints": [{"addresses": [BACKEND], "conditions": {"ready": True}}]} for p in ports),
    ]


def bench_objects(ports: tuple[int, ...]) -> list[dict]:
    """One Ingress routing bench.test to a Service whose endpoints are the backend's `ports`."""
    return [
        {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass", "metadata": {"name": "knet"},
         "spec": {"controller": "knet.io/ingress-nginx"}},
        *backend_objects(ports),
        {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
         "metadata": {"name": "web", "namespace": "bench", "creationTimestamp": "2026-01-01T00:00:00Z"},
         "spec": {"ingressClassName": "knet", "rules": [{"host": HOST, "http": {"paths": [
             {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}},
    ]


def get(port: int, path: str = "/", addr: str = "127.0.0.1") -> tuple[int, str]:
    """One request to bench.test from inside the namespace (curl); (0, "") when none came back."""
    proc = subprocess.run(in_ns("curl", "-s", "--max-time", "3", "-H", f"Host: {HOST}", "-o", "-", "-w",
                                "\n%{http_code}", f"http://{addr}:{port}{path}"),
                          capture_output=True, text=True, check=False)
    body, _, code = proc.stdout.rpartition("\n")
    return (int(code), body) if code.isdigit() else (0, "")


def push_endpoints(control_socket: str, body: str) -> str:
    """POST the endpoints to knet's nginx over its control socket (a file: reachable from any namespace)."""
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(control_socket)
    conn = http.client.HTTPConnection("localhost", timeout=5)
    conn.sock = sock
    conn.request("POST", "/endpoints", body=body.encode())
    response = conn.getresponse()
    text = response.read().decode()
    if response.status != 200:
        raise RuntimeError(f"endpoint push refused: {response.status} {text}")
    return text


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far (per request, it does not depend on other load)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def preemptions(pid: int) -> int:
    """How often a process's threads were switched out while they still had work (the backend sharing their
    CPU woke up)."""
    return sum(int(re.search(r"^nonvoluntary_ctxt_switches:\s+(\d+)$", status.read_text(), re.M)[1])
               for status in Path(f"/proc/{pid}/task").glob("*/status"))


class Namespace:
    """The benchmark's namespace and the nginx masters started in it (all stopped and removed on close)."""

    def __init__(self) -> None:
        netns.delete(NS)
        netns.add(NS)
        netns.ip(NS, "addr", "add", f"{BACKEND}/32", "dev", "lo")
        self.procs: list[subprocess.Popen[bytes]] = []
        self.backend = 0  # the backend's worker pid, once started

    def start(self, argv: list[str], ready: Callable[[], bool], log: Path) -> int:
        """Start `argv` in the namespace on CPU 0 (beside the backend), wait until `ready`; its pid."""
        self.procs.append(subprocess.Popen(in_ns(*argv, cpu=0), stderr=subprocess.DEVNULL))
        deadline = time.monotonic() + 10
        while not ready():
            if time.monotonic() > deadline or self.procs[-1].poll() is not None:
                raise RuntimeError(f"{argv[0]} did not start: {log.read_text() if log.exists() else '(no log)'}")
            time.sleep(0.1)
        return self.procs[-1].pid  # taskset and nsenter exec the command: the same process

    def nginx(self, prefix: Path, conf: str, check_port: int, check_addr: str = "127.0.0.1") -> int:
        """Start an nginx master on `conf`, wait until `check_port` answers; the pid of its (one) worker."""
        (prefix / "tmp").mkdir(parents=True, exist_ok=True)
        (prefix / "nginx.conf").write_text(conf)
        master = self.start(["nginx", "-c", str(prefix / "nginx.conf"), "-p", f"{prefix}/"],
                            lambda: get(check_port, "/healthz", check_addr)[0] != 0, prefix / "error.log")
        return int(Path(f"/proc/{master}/task/{master}/children").read_text().split()[0])

    def traefik(self, prefix: Path, binary: Path, port: int) -> int:
        """Traefik serving the bench's route on `port` (its file provider), once it answers; its pid (Go: one
        process whose threads all count)."""
        conf = traefik.write_config(prefix, port, HOST, [f"http://{BACKEND}:{BACKEND_PORTS[0]}"])
        return self.start([str(binary), f"--configFile={conf}"], lambda: get(port) == (200, str(BACKEND_PORTS[0])),
                          prefix / "traefik.log")

    def knet(self, prefix: Path, model: IngressModel, dynamic: bool = True, port: int = KNET_PORT,
             edit: Callable[[str], str] | None = None) -> tuple[int, str]:
        """knet's rendered config for `model` (changed by `edit`), started, with the model's endpoints
        pushed (or written into the config); its worker's pid and the config."""
        rt = knet_runtime(prefix, dynamic, port)
        files.prepare(rt)
        files.write_certificates(model, rt)
        conf = render_config(model, rt)
        if edit is not None:
            conf = edit(conf)
        worker = self.nginx(prefix, conf, rt.http_port)
        if dynamic:
            push_endpoints(rt.control_socket, render_endpoints(model))
        return worker, conf

    def close(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            proc.wait(timeout=10)
        netns.delete(NS)

