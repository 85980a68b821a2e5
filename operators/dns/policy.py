"""ACL, hosts entries and name rewrites of one DNSConfig, compiled once for the query path.

Semantics match what `operators.dns.corefile` renders for CoreDNS's acl, hosts and rewrite plugins:
- acl: the first rule whose zones hold the name, whose types hold the query type and whose sources
  hold the client decides; no matching rule allows. Deny answers REFUSED (acl's `block`).
- hosts: A/AAAA for the listed names (NODATA for other types of those names) and PTR for the
  listed addresses, checked before the cluster zones and the upstreams.
- rewrites: the first matching rule rewrites the query name (outside stub domains); exact compares
  whole names, suffix replaces a domain below which the name lies (not the domain itself), regex
  replaces the whole name when the pattern is found in it (lowercase, with its trailing dot, like
  CoreDNS).
"""

from __future__ import annotations

import ipaddress
import re

from dnslib import AAAA, PTR, QTYPE, RR, A

from operators.dns.config import DNSConfig
from operators.dns.names import in_zone, normalize_name, reverse_name
from operators.dns.records import label

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def client_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The client's address, IPv4-mapped IPv6 unwrapped (dual-stack sockets report those)."""
    try:
        ip = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return None
    mapped = getattr(ip, "ipv4_mapped", None)
    return mapped or ip


def _expand(template: str, found: re.Match[str]) -> str:
    """`{n}` in a regex rewrite's target -> the n-th group of the match (CoreDNS's syntax)."""
    return re.sub(r"\{(\d)\}", lambda m: found.group(int(m[1])) or "", template)


class Policy:
    """The per-query decisions that come from the DNSConfig rather than from the cluster."""

    def __init__(self, config: DNSConfig) -> None:
        self._acl = [(rule.action == "allow", [ipaddress.ip_network(s) for s in rule.sources],
                      rule.zones, frozenset(rule.types)) for rule in config.acl]
        self._hosts: dict[str, list[str]] = {}
        self._host_ptr: dict[str, list[str]] = {}
        for entry in config.hosts:
            for name in entry.hostnames:
                self._hosts.setdefault(name, []).append(entry.ip)
                self._host_ptr.setdefault(reverse_name(entry.ip), []).append(name)
        self._hosts_ttl = config.hosts_ttl
        self._stubs = tuple(s.domain for s in config.stub_domains)
        self._rewrites = [(r.match, re.compile(r.source) if r.match == "regex" else r.source, r.target)
                          for r in config.rewrites]

    def allowed(self, client: str, name: str, qtype: str) -> bool:
        """Whether the ACL lets `client` ask `name` (canonical form) of type `qtype` (e.g. "A")."""
        if not self._acl:
            return True
        ip = client_address(client)
        for allow, networks, zones, types in self._acl:
            if types and qtype not in types:
                continue
            if not any(in_zone(name, z) for z in zones):
                continue
            if ip is not None and any(ip in net for net in networks if net.version == ip.version):
                return allow
        return True

    def rewrite(self, name: str) -> str:
        """The name to resolve instead of `name` (canonical form); `name` itself when no rule applies.

        Names in stub domains are not rewritten: CoreDNS answers them from the stub's server block,
        which has no rewrite rules.
        """
        if any(in_zone(name, stub) for stub in self._stubs):
            return name
        for match, source, target in self._rewrites:
            if match == "exact" and name == source:
                return target
            if match == "suffix" and name.endswith("." + source):
                return name[: -len(source)] + target
            if match == "regex":
                found = source.search(name + ".")
                if found:
                    return normalize_name(_expand(target, found)) or name
        return name

    def hosts(self, owner: str, name: str, qtype: int) -> list[RR] | None:
        """Records from hosts entries; [] for a listed name without that type; None if not listed."""
        if name in self._hosts:
            ips, ttl = self._hosts[name], self._hosts_ttl
            if qtype == QTYPE.A:
                return [RR(label(owner), QTYPE.A, rdata=A(ip), ttl=ttl) for ip in ips if ":" not in ip]
            if qtype == QTYPE.AAAA:
                return [RR(label(owner), QTYPE.AAAA, rdata=AAAA(ip), ttl=ttl) for ip in ips if ":" in ip]
            return []
        if name in self._host_ptr:
            names = self._host_ptr[name]
            return [RR(label(owner), QTYPE.PTR, rdata=PTR(n + "."), ttl=self._hosts_ttl) for n in names] \
                if qtype == QTYPE.PTR else []
        return None
