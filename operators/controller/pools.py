"""LoadBalancerIPPool allocation: pools and Services in, one address per Service family out. Pure.

Every sync recomputes the whole allocation from what the API shows, so the controller keeps no
allocation state of its own and a restarted (or newly elected) controller finds every address where
it was: addresses already in a Service's `status.loadBalancer.ingress` are kept first (oldest Service
first), then the Services still missing a family get the lowest free address of the first pool that
may serve them. An address is never held by two Services: a second claim of the same address loses
it (the older Service keeps it) and gets another.

Pools are ordered by creation time (then name). A pool whose ranges are invalid, overlap each other,
or overlap an earlier valid pool is not used, and says why in its Ready condition; the others work.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from operators.kube.parse import Problem, Reader, parse_ip
from operators.kube.parse import field as get
from operators.kube.selectors import EVERYTHING, Labels, Selector, parse_selector

LB_CLASS = "knet.io/loadbalancer"  # Services with this loadBalancerClass, or with none, are ours
POOL_ANNOTATION = "knet.io/loadbalancer-pool"  # a Service may name the one pool it draws from
MAX_COUNT = 2**63 - 1  # status counts are int64


@dataclass(frozen=True)
class Range:
    """Inclusive range of addresses of one family, as integers."""

    family: int
    first: int
    last: int

    @property
    def size(self) -> int:
        return self.last - self.first + 1

    def __contains__(self, ip: int) -> bool:
        return self.first <= ip <= self.last

    def overlaps(self, other: Range) -> bool:
        return self.family == other.family and self.first <= other.last and other.first <= self.last

    def buggy(self) -> int:
        """How many addresses in the range end in .0 or .255 (IPv4 only)."""
        if self.family != 4:
            return 0
        return sum((self.last - r) // 256 - (self.first - 1 - r) // 256 for r in (0, 255))

    def __str__(self) -> str:
        first, last = (str(ipaddress.ip_address(i) if self.family == 4 else ipaddress.IPv6Address(i))
                       for i in (self.first, self.last))
        return first if first == last else f"{first}-{last}"


@dataclass(frozen=True)
class Pool:
    name: str
    ranges: tuple[Range, ...]
    avoid_buggy: bool
    service_selector: Selector
    namespace_selector: Selector

    def usable(self, family: int, ip: int) -> bool:
        return (any(ip in r for r in self.ranges if r.family == family)
                and not (self.avoid_buggy and family == 4 and ip % 256 in (0, 255)))

    def size(self) -> int:
        return sum(r.size - (r.buggy() if self.avoid_buggy else 0) for r in self.ranges)


@dataclass(frozen=True)
class PoolProblem:
    reason: str  # InvalidSpec | Overlap
    message: str


def _range(raw: object, i: int) -> tuple[Range | None, str]:
    cidr, start, end = get(raw, "cidr"), get(raw, "start"), get(raw, "end")
    if isinstance(cidr, str) and start is None and end is None:
        try:
            net = ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            return None, f"ranges[{i}]: {cidr!r} is not a CIDR"
        return Range(net.version, int(net.network_address), int(net.broadcast_address)), ""
    if cidr is None and start is not None and end is not None:
        a, b = parse_ip(start), parse_ip(end)
        if a is None or b is None:
            return None, f"ranges[{i}]: {start!r}-{end!r} are not both unicast addresses"
        if a.version != b.version:
            return None, f"ranges[{i}]: {a} and {b} are of different families"
        if int(a) > int(b):
            return None, f"ranges[{i}]: start {a} is after end {b}"
        return Range(a.version, int(a), int(b)), ""
    return None, f"ranges[{i}]: give either cidr, or start and end"


def _selector(raw: object, r: Reader, what: str) -> Selector | None:
    return EVERYTHING if raw is None else parse_selector(raw, r, what)


def parse_pool(obj: Mapping[str, Any]) -> tuple[Pool | None, list[Problem]]:
    """A pool, or None and what is wrong with its spec."""
    r = Reader.of("LoadBalancerIPPool", obj, namespaced=False)
    spec = r.mapping_at(obj, "spec")
    ranges: list[Range] = []
    raw_ranges = r.array_at(spec, "ranges")
    if not raw_ranges:
        r.problem("no ranges")
    for i, raw in enumerate(raw_ranges):
        rng, problem = _range(raw, i)
        if rng is None:
            r.problem(problem)
        elif clash := next((o for o in ranges if o.overlaps(rng)), None):
            r.problem(f"ranges[{i}] {rng} overlaps {clash} of the same pool")
        else:
            ranges.append(rng)
    services = _selector(get(spec, "serviceSelector"), r, "serviceSelector")
    namespaces = _selector(get(spec, "namespaceSelector"), r, "namespaceSelector")
    if r.problems or services is None or namespaces is None:
        return None, r.problems
    return Pool(_age(obj)[1], tuple(ranges),
                get(spec, "avoidBuggyIPs") is True, services, namespaces), []


def _age(obj: Mapping[str, Any]) -> tuple[str, str]:
    md = get(obj, "metadata") or {}
    return str(get(md, "creationTimestamp", "") or ""), str(get(md, "name", ""))


def valid_pools(objs: Iterable[Mapping[str, Any]]) -> tuple[list[Pool], dict[str, PoolProblem]]:
    """The pools to allocate from (in order) and, by name, why the others are not used."""
    valid: list[Pool] = []
    problems: dict[str, PoolProblem] = {}
    for obj in sorted(objs, key=_age):
        name = _age(obj)[1]
        pool, found = parse_pool(obj)
        if pool is None:
            problems[name] = PoolProblem("InvalidSpec", "; ".join(p.message for p in found))
            continue
        clash = next(((o, a, b) for o in valid for a in pool.ranges for b in o.ranges if a.overlaps(b)), None)
        if clash:
            other, mine, theirs = clash
            problems[name] = PoolProblem("Overlap", f"range {mine} overlaps {theirs} of pool {other.name}, "
                                                    "which is older; this pool is not used")
            continue
        valid.append(pool)
    return valid, problems


# --- Services ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LBService:
    """What allocation needs of a Service."""

    namespace: str
    name: str
    created: str
    ours: bool  # type LoadBalancer and a loadBalancerClass we serve
    load_balancer: bool  # type LoadBalancer (of any class)
    families: tuple[int, ...]  # from spec.ipFamilies, in order
    requested: str  # spec.loadBalancerIP, normalised ("" none)
    pool: str  # the pool named by POOL_ANNOTATION ("" any)
    labels: Labels
    current: tuple[str, ...]  # status.loadBalancer.ingress[].ip

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


def parse_lb_service(obj: Mapping[str, Any]) -> LBService:
    md = get(obj, "metadata") or {}
    spec = get(obj, "spec") or {}
    families = tuple(6 if f == "IPv6" else 4 for f in get(spec, "ipFamilies") or ["IPv4"] if f in ("IPv4", "IPv6"))
    lb_class = get(spec, "loadBalancerClass")
    requested = parse_ip(get(spec, "loadBalancerIP"))
    ingress = get(get(get(obj, "status"), "loadBalancer"), "ingress") or []
    current = tuple(str(ip) for i in ingress if isinstance(i, Mapping) and (ip := parse_ip(get(i, "ip"))))
    return LBService(
        namespace=str(get(md, "namespace", "default")), name=str(get(md, "name", "")),
        created=str(get(md, "creationTimestamp", "") or ""),
        ours=get(spec, "type") == "LoadBalancer" and lb_class in (None, LB_CLASS),
        load_balancer=get(spec, "type") == "LoadBalancer",
        families=families or (4,), requested=str(requested) if requested else "",
        pool=str((get(md, "annotations") or {}).get(POOL_ANNOTATION, "")),
        labels=Labels({k: v for k, v in (get(md, "labels") or {}).items() if isinstance(v, str)}),
        current=current)


# --- allocation ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PoolUsage:
    allocated: int
    available: int


@dataclass
class Allocation:
    addresses: dict[str, tuple[str, ...]] = field(default_factory=dict)  # Service key -> its addresses
    unserved: dict[str, list[str]] = field(default_factory=dict)  # Service key -> why a family got none
    usage: dict[str, PoolUsage] = field(default_factory=dict)  # valid pool name -> counts
    pool_problems: dict[str, PoolProblem] = field(default_factory=dict)


def _ip(family: int, value: int) -> str:
    return str(ipaddress.IPv4Address(value) if family == 4 else ipaddress.IPv6Address(value))


def _first_free(pool: Pool, family: int, used: Mapping[tuple[int, int], str]) -> int | None:
    """Lowest usable free address of the family (steps at most len(used) + 2 per 256 past the start)."""
    for rng in pool.ranges:
        if rng.family != family:
            continue
        ip = rng.first
        while ip <= rng.last:
            if (family, ip) not in used and pool.usable(family, ip):
                return ip
            ip += 1
    return None


def allocate(pools: list[Pool], pool_problems: dict[str, PoolProblem], services: Iterable[LBService],
             namespace_labels: Mapping[str, Mapping[str, str]]) -> Allocation:
    """Who gets which address. A Service that is no longer of type LoadBalancer but still shows an
    address of a pool is listed with none (released); other classes' Services are not listed at all."""
    services = list(services)
    order = sorted((s for s in services if s.ours), key=lambda s: (s.created, s.namespace, s.name))

    def eligible(svc: LBService) -> list[Pool]:
        candidates = [p for p in pools if p.name == svc.pool] if svc.pool else pools
        ns_labels = namespace_labels.get(svc.namespace, {})
        return [p for p in candidates if p.service_selector.matches(svc.labels)
                and p.namespace_selector.matches(ns_labels)]

    used: dict[tuple[int, int], str] = {}  # (family, address) -> pool name
    held: dict[str, dict[int, int]] = {s.key: {} for s in order}  # key -> family -> address
    pools_of = {s.key: eligible(s) for s in order}
    for svc in order:  # keep what the Services hold, if still allowed and not taken by an older Service
        for text in svc.current:
            ip = ipaddress.ip_address(text)
            family, value = ip.version, int(ip)
            if family not in svc.families or family in held[svc.key] or (family, value) in used:
                continue
            if svc.requested and ipaddress.ip_address(svc.requested).version == family and text != svc.requested:
                continue
            pool = next((p for p in pools_of[svc.key] if p.usable(family, value)), None)
            if pool:
                used[family, value] = pool.name
                held[svc.key][family] = value
    result = Allocation(pool_problems=dict(pool_problems))
    for svc in order:  # then give each missing family an address
        for family in svc.families:
            if family in held[svc.key]:
                continue
            why = _assign(svc, family, pools_of[svc.key], used, held[svc.key])
            if why:
                result.unserved.setdefault(svc.key, []).append(why)
        result.addresses[svc.key] = tuple(_ip(f, held[svc.key][f]) for f in svc.families if f in held[svc.key])
    for svc in services:
        if not svc.load_balancer and any(p.usable(ip.version, int(ip)) for p in pools
                                         for ip in map(ipaddress.ip_address, svc.current)):
            result.addresses[svc.key] = ()
    for pool in pools:
        allocated = sum(1 for name in used.values() if name == pool.name)
        result.usage[pool.name] = PoolUsage(allocated, min(pool.size() - allocated, MAX_COUNT))
    return result


def _assign(svc: LBService, family: int, pools: list[Pool], used: dict[tuple[int, int], str],
            held: dict[int, int]) -> str:
    """Give `svc` an address of `family` (recorded in used and held); else say why not."""
    fam = f"IPv{family}"
    if svc.requested and ipaddress.ip_address(svc.requested).version == family:
        value = int(ipaddress.ip_address(svc.requested))
        pool = next((p for p in pools if p.usable(family, value)), None)
        if pool is None:
            return f"loadBalancerIP {svc.requested} is not in a pool that serves this Service"
        if (family, value) in used:
            return f"loadBalancerIP {svc.requested} is already in use"
        used[family, value] = pool.name
        held[family] = value
        return ""
    with_family = [p for p in pools if any(r.family == family for r in p.ranges)]
    if not with_family:
        named = f" named {svc.pool}" if svc.pool else ""
        return f"no {fam} address: no valid pool{named} with {fam} ranges serves this Service"
    for pool in with_family:
        value = _first_free(pool, family, used)
        if value is not None:
            used[family, value] = pool.name
            held[family] = value
            return ""
    return f"no free {fam} address: pool {', '.join(p.name for p in with_family)} exhausted"
