"""The cluster record store: Kubernetes DNS-Based Service Discovery (schema 1.1.0), answered from memory.

Pure and incremental: the shell feeds it one object at a time (`apply`, or the typed upsert/delete
methods) and the server asks it `lookup(name, type)`. Nothing is precomputed per record name:
a query is split into its schema parts (`<ep>.<svc>.<ns>.svc.<zone>`, `_<port>._<proto>...`,
`<a-b-c-d>.<ns>.pod.<zone>`, reverse names) and answered by dict lookups keyed by lowercased names,
so a lookup costs O(1) plus the size of its answer, and a change costs O(size of one Service's
endpoints). Memory grows with objects, never with queries.

Behaviour follows CoreDNS's kubernetes plugin where the spec is silent, except where noted:
- ClusterIP Services: A/AAAA of the cluster IPs. Headless Services: A/AAAA of every ready endpoint,
  NXDOMAIN when none is ready (spec 2.4.1). ExternalName: a CNAME, chased inside our zones; targets
  outside are left to the server (`Answer.external`).
- Endpoint names (`<hostname>.<svc>...`) for every Service with endpoints, as CoreDNS does; the
  hostname is the endpoint's `hostname`, else the Pod's `spec.hostname` when its `spec.subdomain`
  names the Service, else the dashed address (`10-244-1-5`, `fd00--5`).
- SRV: `_<port>._<proto>.<svc>...` for named ports; SRV at the Service name lists every port, at an
  endpoint name that endpoint's ports (CoreDNS). Targets get A/AAAA records in the additional section.
- PTR (IPv4 and IPv6): a cluster IP names its Service; otherwise every endpoint with that address.
  Targets use the first cluster zone. Misses may fall through to upstream (`Answer.fallthrough`).
- Pods: `a-b-c-d.<ns>.pod.<zone>` in modes disabled (NXDOMAIN), insecure (any address, in an existing
  namespace) and verified (a live Pod in that namespace has the address).
- `dns-version.<zone>` TXT "1.1.0"; SOA and NS at the apex, `ns.dns.<zone>` for the nameservers.
- No wildcards: `*` and `any` are plain labels, as in CoreDNS since 1.9 (it removed wildcard queries).
- Differences from CoreDNS: a name that exists answers NODATA for every other type (CoreDNS answers
  NODATA to any TXT query, and records of the Service to A queries on `_port._proto` names);
  `_proto.<svc>...` is an empty non-terminal (NODATA) when the Service has a named port of that
  protocol; a CNAME owner answers its CNAME for every type, SRV included.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from dnslib import AAAA, CNAME, NS, PTR, QTYPE, RCODE, RR, SOA, SRV, TXT, A, DNSLabel

from operators.dns import views
from operators.dns.config import DNSConfig
from operators.dns.names import dashed, ip_from_dashed, ip_from_reverse
from operators.kube.services import Problem

SCHEMA_VERSION = "1.1.0"
VERSION_TTL = 28800
MAX_CHASE = 8  # CNAME hops followed inside our zones (ExternalName -> ExternalName ...)
Key = tuple[str, str]  # (namespace, name)


@dataclass
class Answer:
    """What the store says about one question; the server turns it into a message."""

    rcode: int
    zone: str
    answer: list[RR] = field(default_factory=list)
    authority: list[RR] = field(default_factory=list)
    additional: list[RR] = field(default_factory=list)
    external: str = ""  # a CNAME target outside our zones, for the server to resolve upstream
    fallthrough: bool = False  # an NXDOMAIN in a reverse zone that may be asked upstream instead


class _Backends:
    """The ready endpoints of one Service, from all its slices."""

    __slots__ = ("by_host", "entries")

    def __init__(self, entries: list[tuple[str, str, tuple[views.Port, ...]]]) -> None:
        self.entries = tuple(entries)  # (hostname, ip, ports), deduplicated, in slice order
        self.by_host: dict[str, tuple[str, ...]] = {}
        for host, ip, _ in entries:
            self.by_host[host] = (*self.by_host.get(host, ()), ip)

    def ips(self) -> list[str]:
        return list(dict.fromkeys(ip for _, ip, _ in self.entries))


def label(name: str) -> DNSLabel:
    """A DNSLabel for a presentation name the store built or the server vetted (LDH-ish labels)."""
    name = name.removesuffix(".")
    return DNSLabel(tuple(name.encode().split(b"."))) if name else DNSLabel(())


def _rr(owner: str, rtype: int, rdata: object, ttl: int) -> RR:
    return RR(label(owner), rtype, rdata=rdata, ttl=ttl)


def _addresses(owner: str, ips: Iterable[str], qtype: int, ttl: int) -> list[RR]:
    if qtype == QTYPE.A:
        return [_rr(owner, QTYPE.A, A(ip), ttl) for ip in ips if ":" not in ip]
    if qtype == QTYPE.AAAA:
        return [_rr(owner, QTYPE.AAAA, AAAA(ip), ttl) for ip in ips if ":" in ip]
    return []


class RecordStore:
    """Services, EndpointSlices, Pods and Namespaces, indexed for answering DNS questions."""

    def __init__(self, config: DNSConfig | None = None, *, nameservers: Iterable[str] = (),
                 clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self.serial = int(clock())
        self.synced = False  # set by the shell after its first full listing (readiness)
        self.nameservers = tuple(nameservers)  # addresses of ns.dns.<zone>: the DNS Service's IPs
        self._services: dict[Key, views.DNSService] = {}
        self._slices: dict[Key, views.DNSSlice] = {}
        self._slices_of: dict[Key, set[str]] = {}  # Service key -> its slice names
        self._backends: dict[Key, _Backends] = {}
        self._svc_ptr: dict[str, Key] = {}  # cluster IP -> Service
        self._ep_ptr: dict[str, tuple[str, ...]] = {}  # endpoint IP -> "<host>.<svc>.<ns>" names
        self._pods: dict[Key, views.DNSPod] = {}
        self._pod_ips: dict[tuple[str, str], int] = {}  # (ip, namespace) -> live pods with it
        self._ns_refs: dict[str, int] = {}  # namespace -> Services and Pods in it
        self._namespaces: set[str] = set()  # from Namespace objects
        self.configure(config or DNSConfig())

    # --- configuration and bookkeeping --------------------------------------------------------

    def configure(self, config: DNSConfig) -> None:
        """Adopt zones, TTL and pod mode; records need no rebuild (they are kept zone-free)."""
        self.config = config
        self._zones = {z: True for z in config.zones} | {z: False for z in config.reverse_zones}
        self._touch()

    def mark_synced(self) -> None:
        self.synced = True

    def _touch(self) -> None:
        self.serial = max(self.serial + 1, int(self._clock()))

    def stats(self) -> dict[str, int]:
        """Object and record counts, for metrics."""
        return {
            "services": len(self._services),
            "endpoint_slices": len(self._slices),
            "endpoints": sum(len(b.entries) for b in self._backends.values()),
            "pods": len(self._pods),
        }

    def _ref(self, namespace: str, delta: int) -> None:
        count = self._ns_refs.get(namespace, 0) + delta
        if count > 0:
            self._ns_refs[namespace] = count
        else:
            self._ns_refs.pop(namespace, None)

    def keys(self, kind: str) -> set[Key]:
        """(namespace, name) of the stored objects of one kind ("" for Namespaces), to prune after a relist."""
        if kind == "Namespace":
            return {("", name) for name in self._namespaces}
        return set({"Service": self._services, "EndpointSlice": self._slices, "Pod": self._pods}[kind])

    def namespace_exists(self, namespace: str) -> bool:
        return namespace in self._namespaces or namespace in self._ns_refs

    # --- updates ------------------------------------------------------------------------------

    def apply(self, obj: Mapping[str, object], deleted: bool = False) -> list[Problem]:
        """Add, replace or (deleted=True) remove one API object; other kinds are ignored."""
        kind = obj.get("kind")
        md = obj.get("metadata") if isinstance(obj.get("metadata"), Mapping) else {}
        namespace, name = str(md.get("namespace") or "default"), str(md.get("name") or "")
        if kind == "Namespace":
            (self.delete_namespace if deleted else self.upsert_namespace)(name)
            return []
        removers = {"Service": self.delete_service, "EndpointSlice": self.delete_slice,
                    "Pod": self.delete_pod}
        if kind not in removers:
            return []
        if deleted:
            removers[kind](namespace, name)
            return []
        if kind == "Service":
            svc, problems = views.parse_service(obj)
            self.upsert_service(svc) if svc else self.delete_service(namespace, name)
        elif kind == "EndpointSlice":
            sl, problems = views.parse_slice(obj)
            self.upsert_slice(sl) if sl else self.delete_slice(namespace, name)
        else:
            pod, problems = views.parse_pod(dict(obj))
            self.upsert_pod(pod) if pod else self.delete_pod(namespace, name)
        return problems

    def upsert_namespace(self, name: str) -> None:
        if name not in self._namespaces:
            self._namespaces.add(name)
            self._touch()

    def delete_namespace(self, name: str) -> None:
        if name in self._namespaces:
            self._namespaces.discard(name)
            self._touch()

    def upsert_service(self, svc: views.DNSService) -> None:
        key = (svc.namespace, svc.name)
        old = self._services.get(key)
        if old == svc:
            return
        if old is None:
            self._ref(svc.namespace, 1)
        else:
            self._unindex_service(key, old)
        self._services[key] = svc
        for ip in svc.cluster_ips:
            self._svc_ptr[ip] = key
        self._touch()

    def delete_service(self, namespace: str, name: str) -> None:
        old = self._services.pop((namespace, name), None)
        if old is not None:
            self._unindex_service((namespace, name), old)
            self._ref(namespace, -1)
            self._touch()

    def _unindex_service(self, key: Key, svc: views.DNSService) -> None:
        for ip in svc.cluster_ips:
            if self._svc_ptr.get(ip) == key:
                del self._svc_ptr[ip]

    def upsert_slice(self, sl: views.DNSSlice) -> None:
        key = (sl.namespace, sl.name)
        old = self._slices.get(key)
        if old == sl:
            return
        self._slices[key] = sl
        if old is not None and old.service != sl.service:
            self._detach(sl.namespace, old.service, sl.name)
        self._slices_of.setdefault((sl.namespace, sl.service), set()).add(sl.name)
        self._aggregate((sl.namespace, sl.service))
        self._touch()

    def delete_slice(self, namespace: str, name: str) -> None:
        old = self._slices.pop((namespace, name), None)
        if old is not None:
            self._detach(namespace, old.service, name)
            self._touch()

    def _detach(self, namespace: str, service: str, slice_name: str) -> None:
        names = self._slices_of.get((namespace, service), set())
        names.discard(slice_name)
        if not names:
            self._slices_of.pop((namespace, service), None)
        self._aggregate((namespace, service))

    def upsert_pod(self, pod: views.DNSPod) -> None:
        key = (pod.namespace, pod.name)
        old = self._pods.get(key)
        if old == pod:
            return
        if old is None:
            self._ref(pod.namespace, 1)
        else:
            self._unindex_pod(old)
        self._pods[key] = pod
        for ip in pod.ips:
            self._pod_ips[(ip, pod.namespace)] = self._pod_ips.get((ip, pod.namespace), 0) + 1
        self._pod_naming_changed(old, pod)
        self._touch()

    def delete_pod(self, namespace: str, name: str) -> None:
        old = self._pods.pop((namespace, name), None)
        if old is not None:
            self._unindex_pod(old)
            self._ref(namespace, -1)
            self._pod_naming_changed(old, None)
            self._touch()

    def _unindex_pod(self, pod: views.DNSPod) -> None:
        for ip in pod.ips:
            count = self._pod_ips.get((ip, pod.namespace), 0) - 1
            if count > 0:
                self._pod_ips[(ip, pod.namespace)] = count
            else:
                self._pod_ips.pop((ip, pod.namespace), None)

    def _pod_naming_changed(self, old: views.DNSPod | None, new: views.DNSPod | None) -> None:
        """Re-derive endpoint names of the Services a pod's hostname/subdomain (used to) point at."""
        before = (old.hostname, old.subdomain) if old else ("", "")
        after = (new.hostname, new.subdomain) if new else ("", "")
        if before != after:
            pod = new or old
            for subdomain in {before[1], after[1]} - {""}:
                if (pod.namespace, subdomain) in self._slices_of:
                    self._aggregate((pod.namespace, subdomain))

    def _aggregate(self, key: Key) -> None:
        """Rebuild one Service's ready endpoints and their reverse entries from its slices."""
        old = self._backends.pop(key, None)
        if old is not None:
            self._index_ptr(key, old, add=False)
        namespace, service = key
        entries: list[tuple[str, str, tuple[views.Port, ...]]] = []
        seen: set[tuple[str, str]] = set()
        for slice_name in sorted(self._slices_of.get(key, ())):
            sl = self._slices[(namespace, slice_name)]
            for ep in sl.endpoints:
                if not ep.ready:
                    continue
                host = ep.hostname or self._pod_hostname(namespace, service, ep.pod)
                for ip in ep.addresses:
                    name = host or dashed(ip)
                    if (name, ip) not in seen:
                        seen.add((name, ip))
                        entries.append((name, ip, sl.ports))
        if entries:
            backends = _Backends(entries)
            self._backends[key] = backends
            self._index_ptr(key, backends, add=True)

    def _pod_hostname(self, namespace: str, service: str, pod_name: str) -> str:
        pod = self._pods.get((namespace, pod_name)) if pod_name else None
        return pod.hostname if pod is not None and pod.subdomain == service else ""

    def _index_ptr(self, key: Key, backends: _Backends, add: bool) -> None:
        namespace, service = key
        for host, ip, _ in backends.entries:
            name = f"{host}.{service}.{namespace}"
            names = self._ep_ptr.get(ip, ())
            if add:
                self._ep_ptr[ip] = (*names, name)
            elif len(names) > 1:
                self._ep_ptr[ip] = tuple(n for n in names if n != name)
            else:
                self._ep_ptr.pop(ip, None)

    # --- questions ----------------------------------------------------------------------------

    def zone_of(self, name: str) -> str | None:
        """The most specific zone of ours that holds `name` (canonical form), or None."""
        candidate = name
        while True:
            if candidate in self._zones:
                return candidate
            dot = candidate.find(".")
            if dot < 0:
                return None
            candidate = candidate[dot + 1 :]

    def lookup(self, qname: str, qtype: int) -> Answer | None:
        """The answer for `qname` (any case, trailing dot optional); None when it is not in our zones."""
        name = qname.lower().removesuffix(".")
        zone = self.zone_of(name)
        if zone is None:
            return None
        owner = qname if qname.endswith(".") else qname + "."
        return self._lookup(owner, name, zone, qtype, 0)

    def _lookup(self, owner: str, name: str, zone: str, qtype: int, depth: int) -> Answer:
        rel = name[: len(name) - len(zone)].removesuffix(".")
        labels = rel.split(".") if rel else []
        if not labels:
            return self._apex(owner, zone, qtype)
        if not self._zones[zone]:
            return self._reverse(owner, name, zone, qtype)
        if labels == ["dns-version"]:
            txt = [_rr(owner, QTYPE.TXT, TXT(SCHEMA_VERSION), VERSION_TTL)] if qtype == QTYPE.TXT else []
            return self._found(zone, txt)
        if labels in (["dns"], ["ns", "dns"]):
            ips = self.nameservers if len(labels) == 2 else ()
            return self._found(zone, _addresses(owner, ips, qtype, self.config.ttl))
        kind = labels[-1]
        if kind not in ("svc", "pod"):
            return self._missing(zone)
        if len(labels) == 1:
            return self._found(zone, [])
        namespace = labels[-2]
        if len(labels) == 2:
            return self._found(zone, []) if self.namespace_exists(namespace) else self._missing(zone)
        if kind == "pod":
            return self._pod(owner, labels, namespace, zone, qtype)
        return self._service(owner, labels, namespace, zone, qtype, depth)

    def _found(self, zone: str, answer: list[RR], additional: list[RR] | None = None) -> Answer:
        """NOERROR: records, or NODATA (no records, the SOA in the authority section)."""
        if answer:
            return Answer(RCODE.NOERROR, zone, answer, [], additional or [])
        return Answer(RCODE.NOERROR, zone, [], [self._soa(zone)])

    def _missing(self, zone: str) -> Answer:
        return Answer(RCODE.NXDOMAIN, zone, [], [self._soa(zone)])

    def _soa(self, zone: str) -> RR:
        ttl = self.config.ttl
        rdata = SOA(f"ns.dns.{zone}.", f"hostmaster.{zone}.", (self.serial, 7200, 1800, 86400, ttl))
        return _rr(zone, QTYPE.SOA, rdata, min(ttl, 300))

    def _apex(self, owner: str, zone: str, qtype: int) -> Answer:
        if qtype == QTYPE.SOA:
            soa = self._soa(zone)
            soa.rname = label(owner)
            return self._found(zone, [soa])
        if qtype == QTYPE.NS:
            target = f"ns.dns.{zone}."
            ttl = self.config.ttl
            extra = [*_addresses(target, self.nameservers, QTYPE.A, ttl),
                     *_addresses(target, self.nameservers, QTYPE.AAAA, ttl)]
            return self._found(zone, [_rr(owner, QTYPE.NS, NS(target), ttl)], extra)
        return self._found(zone, [])

    def _pod(self, owner: str, labels: list[str], namespace: str, zone: str, qtype: int) -> Answer:
        mode = self.config.pod_records
        ip = ip_from_dashed(labels[0]) if len(labels) == 3 and mode != "disabled" else None
        if ip is None:
            return self._missing(zone)
        exists = (ip, namespace) in self._pod_ips if mode == "verified" else self.namespace_exists(namespace)
        if not exists:
            return self._missing(zone)
        return self._found(zone, _addresses(owner, [ip], qtype, self.config.ttl))

    def _service(self, owner: str, labels: list[str], namespace: str, zone: str, qtype: int,
                 depth: int) -> Answer:
        svc = self._services.get((namespace, labels[-3]))
        if svc is None:
            return self._missing(zone)
        rest = labels[:-3]
        if svc.external_name:
            if rest:
                return self._missing(zone)
            return self._cname(owner, zone, svc.external_name, qtype, depth)
        backends = self._backends.get((namespace, svc.name))
        ttl = self.config.ttl
        base = f"{svc.name}.{namespace}.svc.{zone}."
        if not rest:
            if svc.headless and backends is None:
                return self._missing(zone)  # spec 2.4.1: no ready endpoints
            if qtype == QTYPE.SRV:
                return self._srv(owner, zone, base, svc, backends, None, None)
            ips = svc.cluster_ips if not svc.headless else backends.ips() if backends else []
            return self._found(zone, _addresses(owner, ips, qtype, ttl))
        first = rest[0]
        if len(rest) == 1 and first.startswith("_"):  # `_proto` below the Service: an empty non-terminal
            entries = backends.entries if backends else ()
            ports = svc.ports if not svc.headless else [p for entry in entries for p in entry[2]]
            named = any(p.name and p.protocol == first[1:] for p in ports)
            return self._found(zone, []) if named else self._missing(zone)
        if len(rest) == 1:
            ips = backends.by_host.get(first) if backends else None
            if not ips:
                return self._missing(zone)
            if qtype == QTYPE.SRV:
                return self._srv(owner, zone, base, svc, backends, None, None, host=first)
            return self._found(zone, _addresses(owner, ips, qtype, ttl))
        if len(rest) == 2 and first.startswith("_") and rest[1].startswith("_"):
            found = self._srv(owner, zone, base, svc, backends, first[1:], rest[1][1:])
            if not found.answer:
                return self._missing(zone)
            return found if qtype == QTYPE.SRV else self._found(zone, [])
        return self._missing(zone)

    def _srv(self, owner: str, zone: str, base: str, svc: views.DNSService, backends: _Backends | None,
             port_name: str | None, protocol: str | None, host: str | None = None) -> Answer:
        """SRV records for the ports that match (None: any), with their targets' addresses."""

        def wanted(p: views.Port) -> bool:
            named = port_name is None or (p.name != "" and p.name == port_name)
            return named and (protocol is None or p.protocol == protocol)

        rows: dict[tuple[str, int], list[str]] = {}  # (target, port) -> target addresses
        if svc.headless or host is not None:
            for name, ip, ports in backends.entries if backends else ():
                if host is None or name == host:
                    for p in filter(wanted, ports):
                        rows.setdefault((f"{name}.{base}", p.port), []).append(ip)
        else:
            for p in filter(wanted, svc.ports):
                rows[(base, p.port)] = list(svc.cluster_ips)
        ttl = self.config.ttl
        weight = max(1, 100 // len(rows)) if rows else 0
        answer = [_rr(owner, QTYPE.SRV, SRV(0, weight, port, target), ttl) for target, port in rows]
        extra: dict[str, list[str]] = {}
        for (target, _), ips in rows.items():
            extra.setdefault(target, [])
            extra[target].extend(ip for ip in ips if ip not in extra[target])
        additional = [rr for target, ips in extra.items()
                      for t in (QTYPE.A, QTYPE.AAAA) for rr in _addresses(target, ips, t, ttl)]
        return self._found(zone, answer, additional)

    def _cname(self, owner: str, zone: str, target: str, qtype: int, depth: int) -> Answer:
        """An ExternalName: the CNAME, then the target's records when the target is ours."""
        cname = _rr(owner, QTYPE.CNAME, CNAME(target + "."), self.config.ttl)
        target_zone = self.zone_of(target)
        if qtype == QTYPE.CNAME:
            return Answer(RCODE.NOERROR, zone, [cname])
        if target_zone is None:
            return Answer(RCODE.NOERROR, zone, [cname], external=target)
        if depth >= MAX_CHASE:
            return Answer(RCODE.SERVFAIL, zone, [cname])
        chased = self._lookup(target + ".", target, target_zone, qtype, depth + 1)
        chased.answer.insert(0, cname)
        return chased

    def _reverse(self, owner: str, name: str, zone: str, qtype: int) -> Answer:
        ip = ip_from_reverse(name)
        targets = self.ptr_targets(ip) if ip else []
        if not targets:
            missing = self._missing(zone)
            missing.fallthrough = self.config.reverse_fallthrough
            return missing
        ptrs = [_rr(owner, QTYPE.PTR, PTR(t), self.config.ttl) for t in targets] if qtype == QTYPE.PTR else []
        return self._found(zone, ptrs)

    def ptr_targets(self, ip: str) -> list[str]:
        """Names an address points back to: its Service for a cluster IP, else its endpoints."""
        primary = self.config.cluster_domain
        svc = self._svc_ptr.get(ip)
        if svc is not None:
            return [f"{svc[1]}.{svc[0]}.svc.{primary}."]
        return [f"{name}.svc.{primary}." for name in self._ep_ptr.get(ip, ())]
