"""Cluster DNS without an API server: objects from YAML files, for `knet dns` and `knet render corefile`.

Runs the same code the controller and the DNS Deployment run (parse -> store -> server, and
DNSConfig -> Corefile), so what it answers or prints is what the cluster would. Read: DNSConfig
(knet.io, the one named `default`, else the first), ClusterNetworkConfig's `spec.clusterDomain`,
Namespaces, Services, EndpointSlices (discovery.k8s.io) and Pods.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from operators.dns.config import DEFAULT_DOMAIN, GROUP, KIND, DNSConfig, Server, parse_dns_config
from operators.dns.corefile import ClusterSettings, render
from operators.dns.records import RecordStore
from operators.dns.server import DNSServer
from operators.kube.objects import Obj, of_kind
from operators.kube.services import Problem

log = logging.getLogger("knet.dns")


def config_from_objects(objects: list[Obj]) -> tuple[DNSConfig, list[Problem]]:
    """The DNSConfig among the objects (defaults when there is none) and its problems."""
    network = of_kind(objects, "ClusterNetworkConfig", GROUP + "/")
    spec = network[0].get("spec") if network else None
    domain = spec.get("clusterDomain") if isinstance(spec, dict) else None
    candidates = of_kind(objects, KIND, GROUP + "/")
    chosen = next((o for o in candidates if (o.get("metadata") or {}).get("name") == "default"),
                  candidates[0] if candidates else None)
    config, problems = parse_dns_config(chosen, domain if isinstance(domain, str) else DEFAULT_DOMAIN)
    for other in candidates:
        if other is not chosen:
            name = str((other.get("metadata") or {}).get("name"))
            problems.append(Problem(KIND, "", name, f"ignored: only one DNSConfig is used ({config.name})"))
    return config, problems


def store_from_objects(objects: list[Obj], config: DNSConfig | None = None,
                       ) -> tuple[RecordStore, list[Problem]]:
    """A synced record store holding the objects' Namespaces, Services, EndpointSlices and Pods."""
    store = RecordStore(config)
    problems: list[Problem] = []
    for kind, prefix in (("Namespace", "v1"), ("Service", "v1"), ("EndpointSlice", "discovery.k8s.io/"),
                         ("Pod", "v1")):
        for obj in of_kind(objects, kind, prefix):
            problems += store.apply(obj)
    store.mark_synced()
    return store, problems


async def serve(objects: list[Obj], listen: str, *, http: Sequence[str] = (),
                resolvers: Sequence[Server] | None = None) -> None:
    """Answer DNS at `listen` (ADDR:PORT, UDP and TCP) from the objects until cancelled."""
    config, problems = config_from_objects(objects)
    store, found = store_from_objects(objects, config)
    del objects  # the store holds what it needs: the parsed objects may go
    for problem in problems + found:
        log.warning("%s", problem)
    await serve_store(store, listen, http=http, resolvers=resolvers)


async def serve_store(store: RecordStore, listen: str, *, http: Sequence[str] = (),
                      resolvers: Sequence[Server] | None = None) -> None:
    """Answer DNS at `listen` from a filled store (and its config) until cancelled."""
    config = store.config
    server = DNSServer(store, config, resolvers=resolvers)
    host, port = await server.start(listen)
    log.info("serving %s on %s:%d (udp, tcp)", ", ".join(config.zones), host, port)
    for addr in http:
        log.info("health, readiness and metrics on %s:%d", *await server.start_http(addr))
    try:
        await asyncio.Event().wait()
    finally:
        await server.stop(lameduck=0)


def render_corefile(objects: list[Obj], cluster: ClusterSettings | None = None) -> tuple[str, list[str]]:
    """The Corefile for the objects' DNSConfig, and the problems found in it."""
    config, problems = config_from_objects(objects)
    return render(config, cluster), [str(p) for p in problems]
