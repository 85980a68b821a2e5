"""The differential DNS corpus: objects covering the spec's cases, the questions asked of both servers,
and how answers are compared (rcode + answer set, TTL and order ignored).

Kept apart from the test so that the list of questions, and the documented differences from CoreDNS,
read as one table.
"""

from __future__ import annotations

import ipaddress

from dnslib import QTYPE, RCODE, DNSRecord

AGNHOST = "registry.k8s.io/e2e-test-images/agnhost:2.53"
NS = "dnsdiff"
ZONE = "cluster.local"


def manifest() -> str:
    """Pods (two ready web pods, one never ready) and every kind of Service the spec names."""
    ready = "readinessProbe: {httpGet: {port: 8080}, periodSeconds: 1}"
    never = "readinessProbe: {httpGet: {port: 9999}, periodSeconds: 1}"
    pods = [("web-0", "web", ready, "hostname: h0\n  subdomain: hl\n  "), ("web-1", "web", ready, ""),
            ("slow", "slow", never, "")]
    docs = [f"""apiVersion: v1
kind: Pod
metadata: {{name: {name}, namespace: {NS}, labels: {{app: {app}}}}}
spec:
  {extra}containers:
  - {{name: c, image: {AGNHOST}, args: [netexec, --http-port=8080], {probe}}}""" for name, app, probe, extra in pods]
    services = {
        "web": "selector: {app: web}\n  ports: [{name: http, port: 80, targetPort: 8080}, "
               "{name: dns, port: 53, protocol: UDP, targetPort: 8080}]",
        "plain": "selector: {app: web}\n  ports: [{port: 8080}]",
        "lonely": "ports: [{name: http, port: 80}]",
        "hl": "clusterIP: None\n  selector: {app: web}\n  ports: [{name: http, port: 8080}]",
        "hl-plain": "clusterIP: None\n  selector: {app: web}\n  ports: [{port: 8080}]",
        "hl-slow": "clusterIP: None\n  selector: {app: slow}\n  ports: [{name: http, port: 8080}]",
        "hl-publish": "clusterIP: None\n  publishNotReadyAddresses: true\n  selector: {app: slow}\n"
                      "  ports: [{name: http, port: 8080}]",
        "ext": f"type: ExternalName\n  externalName: web.{NS}.svc.{ZONE}",
        "ext-out": "type: ExternalName\n  externalName: www.outside.example",
    }
    docs += [f"apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: {NS}}}\nspec:\n  {spec}"
             for name, spec in services.items()]
    return "\n---\n".join(docs) + "\n"


def resolver_pod(name: str, ns: str, node: str, nameserver: str) -> str:
    """A pause pod on `node` that resolves through `nameserver` with a pod's search list and ndots:5."""
    return f"""
apiVersion: v1
kind: Pod
metadata: {{name: {name}, namespace: {ns}}}
spec:
  nodeName: {node}
  automountServiceAccountToken: false
  dnsPolicy: None
  dnsConfig:
    nameservers: ["{nameserver}"]
    searches: [{ns}.svc.{ZONE}, svc.{ZONE}, {ZONE}]
    options: [{{name: ndots, value: "5"}}]
  containers: [{{name: c, image: {AGNHOST}, args: [pause]}}]
"""


def dashed(ip: str) -> str:
    return ip.replace(".", "-") if "." in ip else ip.replace(":", "-")


def questions(web_ips: list[str], slow_ip: str, cluster_ips: dict[str, str]) -> list[tuple[str, str]]:
    """(name, type) pairs: every record type, ClusterIP and headless, named and unnamed ports,
    ExternalName, pods, reverse names, misses, wrong case, NXDOMAIN versus NODATA."""
    svc = f"{NS}.svc.{ZONE}"
    q: list[tuple[str, str]] = []
    for name in ("web", "plain", "lonely", "hl", "hl-plain", "hl-slow", "hl-publish", "ext", "ext-out", "missing"):
        q += [(f"{name}.{svc}", t) for t in ("A", "AAAA", "SRV", "TXT", "CNAME", "MX")]
    q += [(f"_http._tcp.web.{svc}", t) for t in ("SRV", "A")]
    q += [(f"_dns._udp.web.{svc}", "SRV"), (f"_http._udp.web.{svc}", "SRV"), (f"_nope._tcp.web.{svc}", "SRV"),
          (f"_tcp.web.{svc}", "SRV"), (f"_http._tcp.hl.{svc}", "SRV"), (f"_http._tcp.hl-slow.{svc}", "SRV"),
          (f"_http._tcp.hl-publish.{svc}", "SRV"), (f"_http._tcp.plain.{svc}", "SRV"),
          (f"_http._tcp.lonely.{svc}", "SRV")]
    q += [("WEB.DnsDiff.SVC.Cluster.Local", "A"), (f"H0.Hl.{svc}".upper(), "A"), (f"Ext.{svc}", "A")]
    q += [(f"h0.hl.{svc}", t) for t in ("A", "AAAA", "SRV")]
    q += [(f"{dashed(ip)}.hl.{svc}", "A") for ip in web_ips]
    q += [(f"{dashed(slow_ip)}.hl-publish.{svc}", "A"), (f"{dashed(slow_ip)}.hl-slow.{svc}", "A"),
          (f"nobody.hl.{svc}", "A"), (f"a.b.web.{svc}", "A"), (f"h0.web.{svc}", "A")]
    q += [(f"{dashed(ip)}.{NS}.pod.{ZONE}", t) for ip in (web_ips[0], "1.2.3.4") for t in ("A", "AAAA")]
    q += [(f"1-2-3-4.no-such-ns.pod.{ZONE}", "A"), (f"not-an-ip.{NS}.pod.{ZONE}", "A"),
          (f"kubernetes.default.svc.{ZONE}", "A"), (f"web.no-such-ns.svc.{ZONE}", "A"), (svc, "A"),
          (f"svc.{ZONE}", "A"), (f"pod.{ZONE}", "A"), (ZONE, "SOA"), (f"dns-version.{ZONE}", "TXT"),
          (f"dns-version.{ZONE}", "A"), (f"nothing.{ZONE}", "A"), (ZONE, "NS")]
    # not `ns.dns.<zone>`: CoreDNS answers every address of the network namespace it runs in, which on a
    # devcluster node includes the gateway address of whichever pods run there (knet answers its own)
    for ip in [*cluster_ips.values(), *web_ips, "10.96.255.254", "fd00:10:96::1"]:
        q.append((ipaddress.ip_address(ip).reverse_pointer, "PTR"))
    return q


def normalize(reply: DNSRecord) -> tuple[str, frozenset[str], tuple[str, ...]]:
    """The rcode, the answer set without TTLs (nor the SOA serial, each server's own), and the authority
    section's record types (the SOA of NXDOMAIN and NODATA answers)."""
    answers = set()
    for rr in reply.rr:
        rdata = str(rr.rdata).lower()
        if rr.rtype == QTYPE.SOA:
            rdata = " ".join(rdata.split()[:2])
        answers.add(f"{str(rr.rname).lower()} {QTYPE.get(rr.rtype)} {rdata}")
    return RCODE.get(reply.header.rcode), frozenset(answers), tuple(sorted(QTYPE.get(rr.rtype) for rr in reply.auth))


CNAME_EVERY_TYPE = ("RFC 1034 3.6.2: a CNAME owner has no other data, so knet answers the CNAME (plus what an "
                    "in-cluster target has) for every type; CoreDNS answers NOERROR with an empty answer for types "
                    "other than A/AAAA/CNAME, and for AAAA when the in-cluster target has no AAAA")
PORT_NAME_A = ("the spec defines only SRV records at _port._proto names: knet answers NODATA to other types, "
               "CoreDNS returns the Service's A records")
EMPTY_NON_TERMINAL = ("RFC 8020: _tcp.<svc> is an empty non-terminal (_http._tcp.<svc> exists below it), so "
                      "NOERROR/NODATA; CoreDNS's NXDOMAIN would let a resolver prune _http._tcp.<svc> too")
VERSION_A = "dns-version.<zone> exists (it has a TXT record), so other types are NODATA; CoreDNS says NXDOMAIN"
SVC = f"{NS}.svc.{ZONE}"

# (name, type) -> why knet's answer differs from CoreDNS 1.15's, on purpose. Kept in step with
# operators/dns/README.md.
EXPECTED: dict[tuple[str, str], str] = {
    **{(f"ext.{SVC}", t): CNAME_EVERY_TYPE for t in ("AAAA", "SRV", "TXT", "MX")},
    **{(f"ext-out.{SVC}", t): CNAME_EVERY_TYPE for t in ("SRV", "TXT", "MX")},
    (f"_http._tcp.web.{SVC}", "A"): PORT_NAME_A,
    (f"_tcp.web.{SVC}", "SRV"): EMPTY_NON_TERMINAL,
    (f"dns-version.{ZONE}", "A"): VERSION_A,
}
