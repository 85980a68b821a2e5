"""The benchmark's cluster, generated: API objects for knet dns, the same records as zone files for CoreDNS.

`Cluster(services, pods_per_service)` is deterministic: Service i lives in namespace `ns-(i % 100)`,
has cluster IP 10.96.1.0 + i, one named port (`http`, 80 -> 8080/TCP) and one EndpointSlice with
`pods_per_service` ready endpoints, each a running Pod at 10.128.0.1 + i * pods_per_service + j.
knet dns reads the objects (`objects()`, streamed one at a time, as a watch delivers them); CoreDNS's
`file` plugin reads `zone_files()`, which hold every name knet answers positively for those objects
(Service A and SRV, endpoint and pod A records, PTR of cluster and pod IPs), so both servers answer
the benchmark's questions from the same data.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass

from tests.unit.dns.dns_builders import endpoint, endpoint_slice, namespace, pod, service

NAMESPACES = 100
SERVICE_BASE = int(ipaddress.IPv4Address("10.96.1.0"))
POD_BASE = int(ipaddress.IPv4Address("10.128.0.1"))
TTL = 5


@dataclass(frozen=True)
class Cluster:
    services: int
    pods_per_service: int
    zone: str = "cluster.local"

    def ns(self, i: int) -> str:
        return f"ns-{i % NAMESPACES}"

    def svc_name(self, i: int) -> str:
        """The Service's FQDN, without the trailing dot."""
        return f"svc-{i}.{self.ns(i)}.svc.{self.zone}"

    def service_ip(self, i: int) -> str:
        return str(ipaddress.IPv4Address(SERVICE_BASE + i))

    def pod_ip(self, i: int, j: int) -> str:
        return str(ipaddress.IPv4Address(POD_BASE + i * self.pods_per_service + j))

    def objects(self) -> Iterator[dict]:
        """Namespaces, then per Service: the Service, its Pods and its EndpointSlice."""
        for n in range(min(NAMESPACES, self.services)):
            yield namespace(f"ns-{n}")
        for i in range(self.services):
            ns, name = self.ns(i), f"svc-{i}"
            yield service(name, ns, (self.service_ip(i),),
                          [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}])
            ips = [self.pod_ip(i, j) for j in range(self.pods_per_service)]
            for j, ip in enumerate(ips):
                yield pod(f"{name}-{j}", [ip], ns)
            yield endpoint_slice(name, [endpoint(ip, pod=f"{name}-{j}") for j, ip in enumerate(ips)], ns,
                                 name=f"{name}-abcde")

    def zone_files(self) -> dict[str, str]:
        """Zone name -> zone file text (RFC 1035 master format) for CoreDNS's `file` plugin."""
        z = self.zone
        head = (f"$ORIGIN {{origin}}.\n$TTL {TTL}\n@ IN SOA ns.dns.{z}. hostmaster.{z}. 1 7200 1800 86400 {TTL}\n"
                f"@ IN NS ns.dns.{z}.\n")
        forward = [head.format(origin=z), f"ns.dns.{z}. IN A 127.0.0.1\n"]
        reverse = [head.format(origin="10.in-addr.arpa")]
        for i in range(self.services):
            svc, ip = self.svc_name(i), self.service_ip(i)
            forward.append(f"{svc}. IN A {ip}\n_http._tcp.{svc}. IN SRV 0 100 80 {svc}.\n")
            reverse.append(f"{_ptr(ip)} IN PTR {svc}.\n")
            for j in range(self.pods_per_service):
                pip = self.pod_ip(i, j)
                dashed = pip.replace(".", "-")
                forward.append(f"{dashed}.{svc}. IN A {pip}\n{dashed}.{self.ns(i)}.pod.{z}. IN A {pip}\n")
                reverse.append(f"{_ptr(pip)} IN PTR {dashed}.{svc}.\n")
        return {z: "".join(forward), "10.in-addr.arpa": "".join(reverse)}

    def cluster_questions(self, count: int) -> list[str]:
        """dnsperf lines: per sampled Service its A, its SRV, one pod's A and the PTR of one pod's IP."""
        step = max(1, self.services // max(1, count // 4))
        lines = []
        for i in range(0, self.services, step):
            svc, pip = self.svc_name(i), self.pod_ip(i, 0)
            lines += [f"{svc} A", f"_http._tcp.{svc} SRV", f"{_ptr(pip)[:-1]} PTR",
                      f"{pip.replace('.', '-')}.{self.ns(i)}.pod.{self.zone} A"]
        return lines[:count]


def _ptr(ip: str) -> str:
    return ".".join(reversed(ip.split("."))) + ".in-addr.arpa."
