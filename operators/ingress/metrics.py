"""The Ingress controller's Prometheus metrics, in their own registry (tests and several controllers do not collide).

Names follow ingress-nginx's where one exists (`..._config_last_reload_successful`, `..._config_hash`), under
`knet_ingress_`. Every label has a small fixed set of values.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

RENDER_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
RESULTS = ("success", "failure")
CONNECTION_STATES = ("active", "reading", "writing", "waiting")
ERROR_KINDS = ("endpoints", "status", "event", "sync", "nginx-exit", "gateway-service")


class Metrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.reloads = Counter("knet_ingress_reloads", "nginx configuration reloads, by result (a failure is a "
                               "config that nginx -t refused: the running config stays)", ["result"], registry=r)
        self.last_reload_ok = Gauge("knet_ingress_config_last_reload_successful",
                                    "Whether the last configuration change was applied (1) or refused (0)", registry=r)
        self.last_reload = Gauge("knet_ingress_config_last_reload_successful_timestamp_seconds",
                                 "When nginx last loaded a new configuration (Unix time)", registry=r)
        self.config_hash = Gauge("knet_ingress_config_hash", "The running nginx.conf's hash (its first 52 bits)",
                                 registry=r)
        self.render_duration = Histogram("knet_ingress_render_duration_seconds",
                                         "Time to build the model and render nginx.conf", buckets=RENDER_BUCKETS,
                                         registry=r)
        self.endpoint_updates = Counter("knet_ingress_endpoint_updates", "Endpoint sets pushed to nginx without "
                                        "a reload", registry=r)
        self.nginx_starts = Counter("knet_ingress_nginx_starts", "nginx master processes started (restarts "
                                    "after a crash included)", registry=r)
        self.nginx_connections = Gauge("knet_ingress_nginx_connections", "nginx's client connections by state "
                                       "(stub_status)", ["state"], registry=r)
        self.nginx_requests = Gauge("knet_ingress_nginx_requests", "Client requests nginx served since its master "
                                    "started (stub_status; restarts reset it)", registry=r)
        self.ingresses = Gauge("knet_ingress_ingresses", "Ingresses served by this controller", registry=r)
        self.problems = Counter("knet_ingress_object_problems", "New problems found in objects (each also an "
                                "Event)", registry=r)
        self.errors = Counter("knet_ingress_errors", "Failures, by kind", ["kind"], registry=r)
        for result in RESULTS:
            self.reloads.labels(result)
        for state in CONNECTION_STATES:
            self.nginx_connections.labels(state)
        for kind in ERROR_KINDS:
            self.errors.labels(kind)

    def nginx_status(self, stub: dict[str, int]) -> None:
        for state in CONNECTION_STATES:
            self.nginx_connections.labels(state).set(stub.get(state, 0))
        self.nginx_requests.set(stub.get("requests", 0))
