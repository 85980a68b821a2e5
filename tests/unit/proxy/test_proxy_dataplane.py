"""Real connections through the rendered rules, in a throwaway network namespace.

A veth pair holds the "pod" addresses; a server listens on the endpoint, and host-originated
connections (the nat output path) probe DNAT, reject, drop, node ports, hairpin, the LB source-range
firewall and IPv6, for both the nftables and the iptables rendering.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from proxy_kernel import write

from operators.proxy import iptables, nftables
from operators.proxy.offline import model_from_objects


def _service(name: str, ips: list[str], **spec) -> dict:
    lb = spec.pop("lb", [])
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
            "spec": {"clusterIPs": ips, "ports": [{"name": "http", "port": 80, "targetPort": 8080}], **spec},
            "status": {"loadBalancer": {"ingress": [{"ip": ip} for ip in lb]}}}


def _slice(service: str, family: int, address: str) -> dict:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"{service}-{family}", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": service}},
            "addressType": f"IPv{family}", "ports": [{"name": "http", "port": 8080}],
            "endpoints": [{"addresses": [address], "nodeName": "node-a"}]}


OBJECTS = [
    _service("web", ["10.96.0.10", "fd00:10:96::10"], type="NodePort",
             ports=[{"name": "http", "port": 80, "targetPort": 8080, "nodePort": 30080}]),
    _service("empty", ["10.96.0.11"]),
    _service("open", ["10.96.0.12"], type="LoadBalancer", lb=["172.18.255.1"]),
    _service("closed", ["10.96.0.13"], type="LoadBalancer", lb=["172.18.255.2"],
             loadBalancerSourceRanges=["203.0.113.0/24"]),
    *(_slice(name, 4, "10.244.1.5") for name in ("web", "open", "closed")),
    _slice("web", 6, "fd00:10:244:1::5"),
]

PROBE = r"""
import json, socket, subprocess, sys, threading
for cmd in ("ip link set lo up", "ip link add pods type veth peer name peer", "ip link set pods up",
            "ip link set peer up", "ip addr add 10.244.1.5/24 dev pods", "ip addr add 10.244.1.9/24 dev pods",
            "ip -6 addr add fd00:10:244:1::5/64 dev pods nodad",
            "ip -6 addr add fd00:10:244:1::9/64 dev pods nodad",
            "ip route add 10.96.0.0/16 dev pods", "ip route add 172.18.255.0/24 dev pods",
            "ip -6 route add fd00:10:96::/112 dev pods"):
    subprocess.run(cmd.split(), check=True)
for cmd in json.loads(sys.argv[1]):
    subprocess.run(cmd, check=True)

def serve(family, address):
    srv = socket.socket(family)
    srv.bind((address, 8080))
    srv.listen()
    def loop():
        while True:
            conn, _ = srv.accept()
            conn.sendall(b"hello")
            conn.close()
    threading.Thread(target=loop, daemon=True).start()

serve(socket.AF_INET, "10.244.1.5")
serve(socket.AF_INET6, "fd00:10:244:1::5")

def probe(ip, port, src="10.244.1.9"):
    s = socket.socket(socket.AF_INET6 if ":" in ip else socket.AF_INET)
    s.settimeout(0.3)
    s.bind((src, 0))
    try:
        s.connect((ip, port))
        return s.recv(10).decode()
    except ConnectionRefusedError:
        return "refused"
    except TimeoutError:
        return "timeout"
    finally:
        s.close()

print(json.dumps({
    "cluster": probe("10.96.0.10", 80), "cluster-v6": probe("fd00:10:96::10", 80, "fd00:10:244:1::9"),
    "hairpin": probe("10.96.0.10", 80, "10.244.1.5"), "nodeport": probe("10.244.1.9", 30080),
    "no-endpoints": probe("10.96.0.11", 80), "unknown-port": probe("10.96.0.10", 81),
    "unallocated": probe("10.96.5.5", 80), "lb-open": probe("172.18.255.1", 80),
    "lb-source-range": probe("172.18.255.2", 80),
}))
"""


@pytest.mark.parametrize("mode", ["nftables", "iptables"])
def test_connections(mode: str, netns, tmp_path: Path) -> None:
    model, problems = model_from_objects(OBJECTS, "node-a")
    assert problems == []
    if mode == "nftables":
        setup = [["nft", "-f", write(tmp_path, "rules", nftables.render_full(model))]]
    else:
        setup = [[f"ip{v}tables-restore", "--noflush", write(tmp_path, f"v{f}", iptables.render(model, f))]
                 for f, v in ((4, ""), (6, "6"))]
        setup += [[f"ip{v}tables", "-t", t, "-A", c, *a] for t, c, a in iptables.JUMPS for v in ("", "6")]
    result = netns('"$PYTHON" -c "$PROBE" "$SETUP"', PYTHON=sys.executable, PROBE=PROBE,
                   SETUP=json.dumps(setup))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "cluster": "hello", "cluster-v6": "hello", "hairpin": "hello", "nodeport": "hello",
        "no-endpoints": "refused", "unknown-port": "refused", "unallocated": "timeout",
        "lb-open": "hello", "lb-source-range": "timeout",
    }
