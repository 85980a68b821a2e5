"""The `DNSConfig` custom resource (knet.io/v1alpha1, cluster-scoped) as a frozen, validated model.

One object, conventionally named `default`, configures both DNS backends: knet's own server
(`operators.dns.server`) and the CoreDNS Corefile (`operators.dns.corefile`). Parsing never raises:
a bad field is reported as a `Problem` and replaced by its default (a bad list entry is dropped),
so a typo cannot take cluster DNS down. Unknown fields are reported too.

`spec` fields (all optional; defaults in brackets):

    clusterDomain: string            cluster zone [the ClusterNetworkConfig's domain, else cluster.local]
    additionalZones: [string]        more zones answered from the same Services and Pods [[]]
    reverseZones: [string]           PTR zones: names under in-addr.arpa / ip6.arpa, or CIDRs
                                     such as 10.96.0.0/12 [[in-addr.arpa, ip6.arpa]]
    reverseFallthrough: bool         PTR misses in reverseZones go upstream instead of NXDOMAIN [true]
    ttl: int                         TTL of cluster answers, 0-3600 [5]
    podRecords: string               a-b-c-d.<ns>.pod.<zone> records: disabled | insecure | verified
                                     [insecure]
    upstream:                        where names outside the cluster zones go
      servers: [string]              IP, IP:port or [IPv6]:port; empty: the DNS pod's resolv.conf [[]]
      policy: string                 random | round_robin | sequential [random]
      maxConcurrent: int             queries in flight upstream, 1-100000 [1000]
      timeoutSeconds: number         per attempt, 0.1-30 (knet's server only) [2]
    stubDomains:                     per-domain upstreams, more specific than `upstream` [[]]
      - domain: string
        servers: [string]            as upstream.servers, at least one
    cache:                           cache of upstream answers
      enabled: bool                  [true]
      size: int                      entries per kind (success, denial), 1-1000000 [9984]
      successTTL: int                max seconds a positive answer is kept, 1-86400 [30]
      denialTTL: int                 max seconds NXDOMAIN/NODATA is kept, 1-86400 [30]
    acl:                             first matching rule wins; no match allows [[]]
      - action: string               allow | deny (deny answers REFUSED)
        sources: [string]            client CIDRs, at least one
        zones: [string]              names the rule covers ["."]
        types: [string]              query types, e.g. A, AAAA, ANY [all]
    hosts:                           static A/AAAA (and PTR) answers, checked before everything else [[]]
      - ip: string
        hostnames: [string]
    hostsTTL: int                    TTL of hosts answers, 0-86400 [3600]
    rewrites:                        query-name rewrites; the first match applies, and answers carry
      - match: string                exact | suffix | regex          the name the client asked for [[]]
        from: string                 exact: a name; suffix: a domain (below it, not itself);
                                     regex: an RE2-compatible pattern, searched in the lowercase
                                     name with its trailing dot
        to: string                   a name; regex may use {1}..{9} groups
    queryLog: bool                   log every query [false]
    lameduckSeconds: int             keep answering this long after shutdown starts, 0-300 [5]
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dnslib import QTYPE

from operators.dns.names import normalize_name, parse_server, reverse_zones_for, server_text
from operators.kube.parse import Problem, Reader, cidr_text

GROUP = "knet.io"
VERSION = "v1alpha1"
KIND = "DNSConfig"
DEFAULT_DOMAIN = "cluster.local"
POD_MODES = ("disabled", "insecure", "verified")
POLICIES = ("random", "round_robin", "sequential")
ACL_ACTIONS = ("allow", "deny")
MATCHES = ("exact", "suffix", "regex")

_SPEC_FIELDS = {
    "clusterDomain", "additionalZones", "reverseZones", "reverseFallthrough", "ttl", "podRecords",
    "upstream", "stubDomains", "cache", "acl", "hosts", "hostsTTL", "rewrites", "queryLog", "lameduckSeconds",
}
# What a regex may contain: RE2 and Python agree on these, and none of it is Corefile syntax.
_REGEX_CHARS = re.compile(r"[a-z0-9._\-\\^$*+?()|\[\]{},]+")
_QUANTIFIER = re.compile(r"\{\d{1,3}(,\d{0,3})?\}")
_REPEAT = re.compile(r"[*+]|\{(\d+)(,)?(\d*)\}")
MAX_REPEATS = 2
_REPLACEMENT = re.compile(r"([a-z0-9_-]|\{[1-9]\}|\.)+")


@dataclass(frozen=True)
class Server:
    """An upstream resolver address."""

    host: str
    port: int = 53

    def __str__(self) -> str:
        return server_text(self.host, self.port)


@dataclass(frozen=True)
class Upstream:
    servers: tuple[Server, ...] = ()  # empty: the system resolvers (resolv.conf)
    policy: str = "random"
    max_concurrent: int = 1000
    timeout: float = 2.0


@dataclass(frozen=True)
class StubDomain:
    domain: str
    servers: tuple[Server, ...]


@dataclass(frozen=True)
class Cache:
    enabled: bool = True
    size: int = 9984
    success_ttl: int = 30
    denial_ttl: int = 30


@dataclass(frozen=True)
class AclRule:
    action: str  # allow | deny
    sources: tuple[str, ...]  # normalised CIDRs
    zones: tuple[str, ...] = ("",)  # canonical names; "" is the root
    types: tuple[str, ...] = ()  # empty: every type


@dataclass(frozen=True)
class HostEntry:
    ip: str
    hostnames: tuple[str, ...]


@dataclass(frozen=True)
class Rewrite:
    match: str  # exact | suffix | regex
    source: str  # `from` in the spec
    target: str  # `to` in the spec


@dataclass(frozen=True)
class DNSConfig:
    name: str = "default"
    zones: tuple[str, ...] = (DEFAULT_DOMAIN,)  # the cluster domain first
    reverse_zones: tuple[str, ...] = ("in-addr.arpa", "ip6.arpa")
    reverse_fallthrough: bool = True
    ttl: int = 5
    pod_records: str = "insecure"
    upstream: Upstream = field(default_factory=Upstream)
    stub_domains: tuple[StubDomain, ...] = ()
    cache: Cache = field(default_factory=Cache)
    acl: tuple[AclRule, ...] = ()
    hosts: tuple[HostEntry, ...] = ()
    hosts_ttl: int = 3600
    rewrites: tuple[Rewrite, ...] = ()
    query_log: bool = False
    lameduck_seconds: int = 5

    @property
    def cluster_domain(self) -> str:
        return self.zones[0]


def _server(value: object) -> Server | None:
    parsed = parse_server(value)
    return Server(*parsed) if parsed else None


def _qtype(value: object) -> str | None:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9]{1,10}", value):
        return None
    name = value.upper()
    return name if name in QTYPE.reverse else None


def _ip(value: object) -> str | None:
    try:
        ip = ipaddress.ip_address(value) if isinstance(value, str) else None
    except ValueError:
        return None
    if ip is None or ip.is_unspecified or ip.is_multicast or getattr(ip, "scope_id", None):
        return None
    return str(ip)


def _zones(r: Reader, spec: dict[str, Any], cluster_domain: str) -> tuple[str, ...]:
    domain = normalize_name(spec.get("clusterDomain", cluster_domain))
    if domain is None:
        r.problem(f"clusterDomain {spec.get('clusterDomain')!r} is not a valid domain; "
                  f"using {cluster_domain}")
        domain = normalize_name(cluster_domain) or DEFAULT_DOMAIN
    extra = r.each(r.array(spec.get("additionalZones"), "additionalZones"), normalize_name, "additionalZones")
    return (domain, *(z for z in extra if z != domain))


def _reverse(r: Reader, spec: dict[str, Any]) -> tuple[str, ...]:
    raw = spec.get("reverseZones")
    if raw is None:
        return DNSConfig.reverse_zones
    zones: list[str] = []
    for value in r.array(raw, "reverseZones"):
        found = reverse_zones_for(value) if isinstance(value, str) else None
        if found is None:
            r.problem(f"reverseZones: {value!r} is neither a zone under in-addr.arpa/ip6.arpa nor a CIDR "
                      "(of at most 256 zones); ignored")
        zones.extend(z for z in found or () if z not in zones)
    return tuple(zones)


def _upstream(r: Reader, raw: object) -> Upstream:
    spec = r.mapping(raw, "upstream")
    _unknown(r, spec, {"servers", "policy", "maxConcurrent", "timeoutSeconds"}, "upstream")
    return Upstream(
        servers=r.each(r.array(spec.get("servers"), "upstream.servers"), _server, "upstream.servers"),
        policy=r.choice(spec.get("policy"), POLICIES, "random", "upstream.policy"),
        max_concurrent=r.number(spec.get("maxConcurrent"), 1000, 1, 100000, "upstream.maxConcurrent"),
        timeout=r.number(spec.get("timeoutSeconds"), 2.0, 0.1, 30, "upstream.timeoutSeconds", float),
    )


def _stubs(r: Reader, raw: object, zones: tuple[str, ...]) -> tuple[StubDomain, ...]:
    stubs: dict[str, StubDomain] = {}
    for i, item in enumerate(r.array(raw, "stubDomains")):
        entry = r.mapping(item, f"stubDomains[{i}]")
        domain = normalize_name(entry.get("domain"))
        servers = r.each(r.array(entry.get("servers"), f"stubDomains[{i}].servers"), _server,
                         f"stubDomains[{i}].servers")
        if domain is None or domain in zones or domain in stubs:
            r.problem(f"stubDomains[{i}]: domain {entry.get('domain')!r} is invalid, a cluster zone or a "
                      "duplicate; ignored")
        elif not servers:
            r.problem(f"stubDomains[{i}] ({domain}) has no valid servers; ignored")
        else:
            stubs[domain] = StubDomain(domain, servers)
    return tuple(stubs.values())


def _cache(r: Reader, raw: object) -> Cache:
    spec = r.mapping(raw, "cache")
    _unknown(r, spec, {"enabled", "size", "successTTL", "denialTTL"}, "cache")
    return Cache(
        enabled=r.boolean(spec.get("enabled"), True, "cache.enabled"),
        size=r.number(spec.get("size"), 9984, 1, 1_000_000, "cache.size"),
        success_ttl=r.number(spec.get("successTTL"), 30, 1, 86400, "cache.successTTL"),
        denial_ttl=r.number(spec.get("denialTTL"), 30, 1, 86400, "cache.denialTTL"),
    )


def _acl(r: Reader, raw: object) -> tuple[AclRule, ...]:
    rules: list[AclRule] = []
    for i, item in enumerate(r.array(raw, "acl")):
        what = f"acl[{i}]"
        entry = r.mapping(item, what)
        _unknown(r, entry, {"action", "sources", "zones", "types"}, what)
        action = entry.get("action")
        sources = r.each(r.array(entry.get("sources"), f"{what}.sources"), cidr_text, f"{what}.sources")
        zones = r.each(r.array(entry.get("zones", ["."]), f"{what}.zones"),
                       lambda z: normalize_name(z, allow_root=True), f"{what}.zones")
        types = r.each(r.array(entry.get("types"), f"{what}.types"), _qtype, f"{what}.types")
        if action not in ACL_ACTIONS or not sources or not zones:
            r.problem(f"{what}: needs action (allow or deny), sources and zones; rule ignored")
            continue
        rules.append(AclRule(action, sources, zones, types))
    return tuple(rules)


def _hosts(r: Reader, raw: object) -> tuple[HostEntry, ...]:
    entries: list[HostEntry] = []
    for i, item in enumerate(r.array(raw, "hosts")):
        entry = r.mapping(item, f"hosts[{i}]")
        ip = _ip(entry.get("ip"))
        names = r.each(r.array(entry.get("hostnames"), f"hosts[{i}].hostnames"), normalize_name,
                       f"hosts[{i}].hostnames")
        if ip is None or not names:
            r.problem(f"hosts[{i}]: needs a valid ip and at least one valid hostname; entry ignored")
            continue
        entries.append(HostEntry(ip, names))
    return tuple(entries)


def _backtracking_problem(pattern: str) -> str | None:
    """Why `pattern` could backtrack for seconds on one name in Python's re (RE2, CoreDNS's, never
    backtracks; knet's server runs the rewrite for each query on its event loop): a repeated group that
    holds a repetition or an alternative (`(a+)+`, `(a|aa)*`), or more than MAX_REPEATS repetitions in
    all (`.*.*.*x` is cubic in the name's length). None if neither. `pattern` holds only _REGEX_CHARS."""
    open_groups: list[bool] = []  # for each open group: whether it holds a repetition or an alternative
    closed_risky, repeats, i = False, 0, 0
    while i < len(pattern):
        char, just_closed, closed_risky = pattern[i], closed_risky, False
        if char == "\\":
            i += 2
            continue
        if char == "[":
            i = pattern.find("]", i + 2) + 1 or len(pattern)  # a class: its first character may be ]
            continue
        repeat = _REPEAT.match(pattern, i)
        varies = repeat is not None and _varies(repeat)
        if varies and just_closed:
            return "a repeated group may not hold a repetition or an alternative (catastrophic backtracking)"
        repeats += varies
        i = repeat.end() if repeat else i + 1
        if char == "(":
            open_groups.append(False)
        elif char == ")" and open_groups:
            closed_risky = open_groups.pop()
        if open_groups and (char == "|" or varies or closed_risky):
            open_groups[-1] = True
    if repeats > MAX_REPEATS:
        return f"pattern may hold at most {MAX_REPEATS} repetitions (*, +, {{n,m}})"
    return None


def _varies(repeat: re.Match[str]) -> bool:
    """Whether a quantifier lets its item repeat a varying number of times (not `?`, not `{n}`)."""
    low, comma, high = repeat.group(1, 2, 3)
    return low is None or (comma is not None and (not high or int(high) > int(low)))


def regex_problem(pattern: str, replacement: str) -> str | None:
    """Why a regex rewrite is unsafe or not portable between RE2 (CoreDNS) and Python; None if fine."""
    if not _REGEX_CHARS.fullmatch(pattern) or set("{}") & set(_QUANTIFIER.sub("", pattern)):
        return "pattern may use only lowercase letters, digits and . _ - \\ ^ $ * + ? ( ) | [ ] , {n,m}"
    if "(?" in pattern or re.search(r"\\[1-9]", pattern):
        return "pattern may not use (?...) groups or backreferences"
    if why := _backtracking_problem(pattern):
        return why
    try:
        compiled = re.compile(pattern)
    except re.error as e:
        return f"pattern does not compile: {e}"
    if not _REPLACEMENT.fullmatch(replacement):
        return "replacement may use only lowercase letters, digits, '.', '-', '_' and {1}..{9}"
    used = {int(g) for g in re.findall(r"\{(\d)\}", replacement)}
    if used and max(used) > compiled.groups:
        return f"replacement uses group {max(used)} but the pattern has {compiled.groups}"
    return None


def _rewrites(r: Reader, raw: object) -> tuple[Rewrite, ...]:
    rules: list[Rewrite] = []
    for i, item in enumerate(r.array(raw, "rewrites")):
        entry = r.mapping(item, f"rewrites[{i}]")
        match, source, target = entry.get("match", "exact"), entry.get("from"), entry.get("to")
        if match not in MATCHES or not isinstance(source, str) or not isinstance(target, str):
            r.problem(f"rewrites[{i}]: needs match ({', '.join(MATCHES)}), from and to strings; ignored")
            continue
        if match == "regex":
            why = regex_problem(source, target.lower())
            if why:
                r.problem(f"rewrites[{i}]: {why}; ignored")
                continue
            rules.append(Rewrite(match, source, target.lower().removesuffix(".")))
            continue
        src, dst = normalize_name(source), normalize_name(target)
        if src is None or dst is None:
            r.problem(f"rewrites[{i}]: from {source!r} and to {target!r} must be valid domain names; ignored")
            continue
        rules.append(Rewrite(match, src, dst))
    return tuple(rules)


def _unknown(r: Reader, spec: Mapping[str, Any], known: set[str], where: str) -> None:
    for key in sorted(set(spec) - known, key=str):
        r.problem(f"{where}: unknown field {key!r} ignored")


def parse_dns_config(obj: Mapping[str, Any] | None, cluster_domain: str = DEFAULT_DOMAIN,
                     ) -> tuple[DNSConfig, list[Problem]]:
    """The DNSConfig model of a whole object (metadata + spec; None: all defaults) and its problems."""
    md = obj.get("metadata") if isinstance(obj, Mapping) else None
    name = md.get("name") if isinstance(md, Mapping) and isinstance(md.get("name"), str) else "default"
    r = Reader(KIND, name)
    spec = r.mapping(obj.get("spec") if isinstance(obj, Mapping) else None, "spec")
    _unknown(r, spec, _SPEC_FIELDS, "spec")
    zones = _zones(r, spec, cluster_domain)
    config = DNSConfig(
        name=name,
        zones=zones,
        reverse_zones=_reverse(r, spec),
        reverse_fallthrough=r.boolean(spec.get("reverseFallthrough"), True, "reverseFallthrough"),
        ttl=r.number(spec.get("ttl"), 5, 0, 3600, "ttl"),
        pod_records=r.choice(spec.get("podRecords"), POD_MODES, "insecure", "podRecords"),
        upstream=_upstream(r, spec.get("upstream")),
        stub_domains=_stubs(r, spec.get("stubDomains"), zones),
        cache=_cache(r, spec.get("cache")),
        acl=_acl(r, spec.get("acl")),
        hosts=_hosts(r, spec.get("hosts")),
        hosts_ttl=r.number(spec.get("hostsTTL"), 3600, 0, 86400, "hostsTTL"),
        rewrites=_rewrites(r, spec.get("rewrites")),
        query_log=r.boolean(spec.get("queryLog"), False, "queryLog"),
        lameduck_seconds=r.number(spec.get("lameduckSeconds"), 5, 0, 300, "lameduckSeconds"),
    )
    return config, r.problems
