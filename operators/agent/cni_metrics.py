"""The CNI side's Prometheus metrics, in the agent's registry, under `knet_cni_`."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

ERROR_KINDS = ("conflist", "route", "nft", "table-missing", "event", "sync")


class CniMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = r = registry
        self.last_sync = Gauge("knet_cni_sync_last_timestamp_seconds",
                               "When the CNI configuration, routes and masquerade table were last all in place "
                               "(Unix time)", registry=r)
        self.routes = Gauge("knet_cni_peer_routes", "Routes to other nodes' podCIDRs that this node holds",
                            registry=r)
        self.route_changes = Counter("knet_cni_route_changes", "Peer routes added or removed, by operation",
                                     ["operation"], registry=r)
        self.conflist_writes = Counter("knet_cni_conflist_writes", "Times the CNI configuration list was written "
                                       "(it differed from the file, or there was none)", registry=r)
        self.nodes_with_problems = Gauge("knet_cni_nodes_with_problems", "Nodes whose pods this node cannot "
                                         "route to (or this node, without podCIDRs); their Events say why",
                                         registry=r)
        self.errors = Counter("knet_cni_errors", "Failures, by kind: writing the conflist, a route change, the nft "
                              "transaction, the table removed by someone else, Event posting, sync loop",
                              ["kind"], registry=r)
        for kind in ERROR_KINDS:
            self.errors.labels(kind)
        for operation in ("add", "remove"):
            self.route_changes.labels(operation)
