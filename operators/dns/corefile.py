"""DNSConfig -> CoreDNS Corefile: the same behaviour as knet's own server, for clusters that run CoreDNS.

Deterministic (same config, same bytes) and injection-proof: every string printed comes from the
validated model (names in canonical LDH form, IPs and CIDRs re-printed by `ipaddress`, regexes and
replacements limited to characters that are not Corefile syntax), and `render` checks that no
token it prints contains whitespace, quotes, '#', braces other than `{n}`, or an env reference.

Layout: one `.:PORT` block holds the cluster zones (kubernetes plugin), hosts, rewrites, acl and
the default forward, as kubeadm's Corefile does; each stub domain gets its own block with its own
forward, which CoreDNS picks by the longest matching zone. acl rules and hosts entries are printed
into every block whose names they can match, so both backends decide the same way.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from operators.dns.config import AclRule, DNSConfig, HostEntry, Server, StubDomain
from operators.dns.names import in_zone

INDENT = "    "
_PLAIN = r"[A-Za-z0-9._:/\[\]\-\\^$*+?()|,]*"
_TOKEN = re.compile(rf"{_PLAIN}(\{{\d{{1,3}}(,\d{{0,3}})?\}}{_PLAIN})*")  # braces only as {n} / {n,m}


@dataclass(frozen=True)
class ClusterSettings:
    """What the Corefile needs beyond the DNSConfig: the ports of the CoreDNS Deployment."""

    dns_port: int = 53
    health_port: int = 8080
    ready_port: int = 8181
    metrics_port: int = 9153


def _fqdn(name: str) -> str:
    return f"{name}." if name else "."


def _block(head: str, lines: list[str], depth: int = 1) -> list[str]:
    pad = INDENT * depth
    return [f"{pad}{head} {{", *(f"{pad}{INDENT}{line}" for line in lines), f"{pad}}}"]


def _acl(rules: tuple[AclRule, ...], relevant: Callable[[str], bool]) -> list[str]:
    """acl directives for the rules whose zones can hold names that a block answers."""
    out: list[str] = []
    for rule in rules:
        zones = [z for z in rule.zones if relevant(z)]
        if not zones:
            continue
        policy = "allow" if rule.action == "allow" else "block"
        types = f" type {' '.join(rule.types)}" if rule.types else ""
        head = f"acl {' '.join(_fqdn(z) for z in zones)}"
        out += _block(head, [f"{policy}{types} net {' '.join(rule.sources)}"])
    return out


def _hosts(entries: tuple[HostEntry, ...], ttl: int, owns: Callable[[str], bool]) -> list[str]:
    lines = []
    for entry in entries:
        names = [n for n in entry.hostnames if owns(n)]
        if names:
            lines.append(f"{entry.ip} {' '.join(_fqdn(n) for n in names)}")
    return _block("hosts", [*lines, f"ttl {ttl}", "fallthrough"]) if lines else []


def _forward(servers: tuple[Server, ...], config: DNSConfig) -> list[str]:
    to = " ".join(str(s) for s in servers) or "/etc/resolv.conf"
    options = [f"max_concurrent {config.upstream.max_concurrent}", f"policy {config.upstream.policy}"]
    return _block(f"forward . {to}", options)


def _cache(config: DNSConfig, cluster_zones: tuple[str, ...] = ()) -> list[str]:
    """Answers from upstream are cached; the cluster's own zones are not, as in kubeadm's Corefile: the
    kubernetes plugin answers them from its informers' memory anyway, and a cached answer would outlive a
    change (an ExternalName retargeted, a name asked for before its Service existed) by up to its TTL."""
    cache = config.cache
    if not cache.enabled:
        return []
    disabled = [f"disable {kind} {' '.join(cluster_zones)}" for kind in ("success", "denial") if cluster_zones]
    return _block("cache", [f"success {cache.size} {cache.success_ttl}",
                            f"denial {cache.size} {cache.denial_ttl}", *disabled])


def _rewrites(config: DNSConfig) -> list[str]:
    out = []
    for r in config.rewrites:
        if r.match == "exact":  # exact rules rewrite the answer back by themselves
            out.append(f"{INDENT}rewrite name exact {_fqdn(r.source)} {_fqdn(r.target)}")
        elif r.match == "suffix":
            out.append(f"{INDENT}rewrite name suffix .{_fqdn(r.source)} .{_fqdn(r.target)} answer auto")
        else:
            out.append(f"{INDENT}rewrite name regex {r.source} {_fqdn(r.target)} answer auto")
    return out


def _health(config: DNSConfig, cluster: ClusterSettings) -> list[str]:
    head = f"health :{cluster.health_port}"
    if not config.lameduck_seconds:
        return [INDENT + head]
    return _block(head, [f"lameduck {config.lameduck_seconds}s"])


def _kubernetes(config: DNSConfig) -> list[str]:
    zones = " ".join((*config.zones, *config.reverse_zones))
    options = [f"pods {config.pod_records}"]
    if config.reverse_fallthrough and config.reverse_zones:
        options.append(f"fallthrough {' '.join(config.reverse_zones)}")
    options.append(f"ttl {config.ttl}")
    return _block(f"kubernetes {zones}", options)


def render(config: DNSConfig, cluster: ClusterSettings | None = None) -> str:
    """The Corefile text for `config`."""
    cluster = cluster or ClusterSettings()
    stubs = sorted(config.stub_domains, key=lambda s: s.domain)
    log = [f"{INDENT}log"] if config.query_log else []
    prometheus = f"{INDENT}prometheus :{cluster.metrics_port}"

    def main_owns(name: str) -> bool:
        return not any(in_zone(name, s.domain) for s in stubs)

    lines = [
        f".:{cluster.dns_port} {{",
        f"{INDENT}errors",
        *_health(config, cluster),
        f"{INDENT}ready :{cluster.ready_port}",
        *log,
        *_acl(config.acl, main_owns),
        *_rewrites(config),
        *_hosts(config.hosts, config.hosts_ttl, main_owns),
        *_kubernetes(config),
        prometheus,
        *_forward(config.upstream.servers, config),
        *_cache(config, config.zones),
        f"{INDENT}loop",
        f"{INDENT}reload",
        f"{INDENT}loadbalance",
        "}",
    ]
    for stub in stubs:
        inner = [s for s in stubs if s.domain != stub.domain and in_zone(s.domain, stub.domain)]

        def owns(name: str, domain: str = stub.domain, inner: list[StubDomain] = inner) -> bool:
            return in_zone(name, domain) and not any(in_zone(name, s.domain) for s in inner)

        lines += [
            f"{stub.domain}:{cluster.dns_port} {{",
            f"{INDENT}errors",
            *log,
            *_acl(config.acl, lambda z, d=stub.domain: in_zone(z, d) or in_zone(d, z)),
            *_hosts(config.hosts, config.hosts_ttl, owns),
            prometheus,
            *_forward(stub.servers, config),
            *_cache(config),
            f"{INDENT}loop",
            f"{INDENT}loadbalance",
            "}",
        ]
    _check(lines)
    return "\n".join(lines) + "\n"


def _check(lines: list[str]) -> None:
    """Refuse to emit a token that is not plain Corefile text (a bug upstream of here, never user input)."""
    for line in lines:
        for token in line.split():
            if token not in ("{", "}") and not _TOKEN.fullmatch(token):
                raise ValueError(f"unsafe Corefile token {token!r}")
