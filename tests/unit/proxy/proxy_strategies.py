"""Hypothesis strategies: small clusters of Services and EndpointSlices as API dicts.

Values come from small pools so that generated objects collide (same addresses, node ports,
names) and exercise the model's collision handling as well as the renderers.
"""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import strategies as st

NAMES = ("a", "b", "web", "dns-1")
NAMESPACES = ("default", "ns1")
NODES = ("node-a", "node-b")
PORT_NAMES = ("http", "dns", "p3")
CLUSTER_V4 = tuple(f"10.96.0.{i}" for i in range(1, 8))
CLUSTER_V6 = tuple(f"fd00:10:96::{i}" for i in range(1, 8))
EXTERNAL = ("198.51.100.1", "198.51.100.2", "2001:db8::1", "2001:db8::2", "10.96.0.2", "172.18.0.2", "192.0.2.1")
# The proxy config of generated clusters: allows most of EXTERNAL (a ClusterIP and a node address among them).
CONFIG = {"externalIPRanges": ["198.51.100.0/24", "2001:db8::/32", "10.96.0.0/16", "172.18.0.0/16"]}
CREATED = (None, "2026-01-01T00:00:00Z", "2026-01-01T00:00:01Z")
ENDPOINT_V4 = tuple(f"10.244.{n}.{i}" for n in (1, 2) for i in range(1, 4))
ENDPOINT_V6 = tuple(f"fd00:10:244:{n}::{i}" for n in (1, 2) for i in range(1, 4))
LB_IPS = ("172.18.255.1", "172.18.255.2", "fc00::1")
RANGES = ("192.168.0.0/16", "203.0.113.0/24", "2001:db8::/32", "172.18.0.0/16")

protocols = st.sampled_from(("TCP", "UDP", "SCTP"))


@st.composite
def service_ports(draw: st.DrawFn) -> list[dict[str, Any]]:
    names = draw(st.lists(st.sampled_from(PORT_NAMES), min_size=1, max_size=3, unique=True))
    return [{
        "name": name,
        "protocol": draw(protocols),
        "port": draw(st.sampled_from((53, 80, 443, 8080))),
        "targetPort": draw(st.one_of(st.sampled_from((53, 8080)), st.sampled_from(("web", "metrics")))),
        "nodePort": draw(st.sampled_from((30000, 30001, 30002, 30003))),
    } for name in names]


@st.composite
def services(draw: st.DrawFn, name: str, namespace: str) -> dict[str, Any]:
    families = draw(st.sampled_from(((4,), (6,), (4, 6), (6, 4))))
    cluster_ips = [draw(st.sampled_from(CLUSTER_V4 if f == 4 else CLUSTER_V6)) for f in families]
    spec: dict[str, Any] = {
        "type": draw(st.sampled_from(("ClusterIP", "NodePort", "LoadBalancer"))),
        "clusterIP": cluster_ips[0],
        "clusterIPs": cluster_ips,
        "ipFamilies": [f"IPv{f}" for f in families],
        "ports": draw(service_ports()),
        "externalIPs": draw(st.lists(st.sampled_from(EXTERNAL), max_size=2, unique=True)),
        "sessionAffinity": draw(st.sampled_from(("None", "ClientIP"))),
        "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": draw(st.integers(1, 86400))}},
        "externalTrafficPolicy": draw(st.sampled_from(("Cluster", "Local"))),
        "internalTrafficPolicy": draw(st.sampled_from(("Cluster", "Local"))),
        "healthCheckNodePort": draw(st.sampled_from((0, 32000, 32001))),
    }
    if draw(st.booleans()):
        spec["loadBalancerSourceRanges"] = draw(st.lists(st.sampled_from(RANGES), max_size=3, unique=True))
    labels = {"service.kubernetes.io/service-proxy-name": "other"} if draw(st.integers(0, 9)) == 0 else {}
    lb_ips = draw(st.lists(st.sampled_from(LB_IPS), max_size=2, unique=True))
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "labels": labels,
                     "creationTimestamp": draw(st.sampled_from(CREATED)), "uid": draw(st.sampled_from("123"))},
        "spec": spec,
        "status": {"loadBalancer": {"ingress": [{"ip": ip} for ip in lb_ips]}},
    }


@st.composite
def endpoint_slices(draw: st.DrawFn, service: str, namespace: str, index: int) -> dict[str, Any]:
    family = draw(st.sampled_from((4, 6)))
    addresses = st.sampled_from(ENDPOINT_V4 if family == 4 else ENDPOINT_V6)
    endpoints = [{
        "addresses": [draw(addresses)],
        "conditions": {"ready": draw(st.booleans()), "serving": draw(st.booleans()),
                       "terminating": draw(st.booleans())},
        "nodeName": draw(st.sampled_from(NODES)),
    } for _ in range(draw(st.integers(0, 4)))]
    ports = [{"name": n, "protocol": draw(protocols), "port": draw(st.sampled_from((53, 8080, 9090)))}
             for n in draw(st.lists(st.sampled_from(PORT_NAMES), min_size=1, max_size=3, unique=True))]
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": f"{service}-{index}", "namespace": namespace,
                     "labels": {"kubernetes.io/service-name": service}},
        "addressType": f"IPv{family}",
        "ports": ports,
        "endpoints": endpoints,
    }


@st.composite
def clusters(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Services with their slices, plus the Node objects."""
    keys = draw(st.lists(st.tuples(st.sampled_from(NAMESPACES), st.sampled_from(NAMES)),
                         min_size=1, max_size=4, unique=True))
    objects: list[dict[str, Any]] = []
    for ns, name in keys:
        objects.append(draw(services(name, ns)))
        objects += [draw(endpoint_slices(name, ns, i)) for i in range(draw(st.integers(0, 2)))]
    objects.append({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-a"},
                    "spec": {"podCIDRs": ["10.244.1.0/24"]},
                    "status": {"addresses": [{"type": "InternalIP", "address": "172.18.0.2"}]}})
    return objects


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8) | st.sampled_from(
        ("TCP", "None", "ClientIP", "Local", "10.0.0.1", "fd00::1", "IPv4", "IPv6", "LoadBalancer", "http")),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(
        st.sampled_from(("name", "namespace", "metadata", "spec", "status", "ports", "port", "protocol",
                         "clusterIPs", "clusterIP", "endpoints", "addresses", "conditions", "addressType",
                         "labels", "externalIPs", "loadBalancer", "ingress", "ip", "nodePort",
                         "targetPort", "sessionAffinityConfig", "clientIP", "timeoutSeconds", "type")),
        children, max_size=5),
    max_leaves=20,
)


NODE_A = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-a", "uid": "uid-node-a"},
          "spec": {"podCIDRs": ["10.244.1.0/24"]},
          "status": {"addresses": [{"type": "InternalIP", "address": "172.18.0.2"}]}}
SERVICE_NAME = "kubernetes.io/service-name"


@st.composite
def histories(draw: st.DrawFn) -> list[list[dict[str, Any]]]:
    """Successive states of one cluster, each a list of objects that keep their uid from state to state:
    Services come, change and go; EndpointSlices come, change and go, and move from one Service to
    another (their service-name label changes, endpoints kept, as when a selector-less Service's slice
    is relabelled); the Node's address changes now and then. Most steps change slices alone, as most
    syncs do."""
    keys = [(ns, name) for ns in NAMESPACES for name in NAMES]

    def service_body(ns: str, name: str) -> dict[str, Any]:
        body = draw(services(name, ns))
        body["metadata"]["uid"] = f"svc-{ns}-{name}"
        return body

    def slice_body(ns: str, k: int) -> dict[str, Any]:
        body = draw(endpoint_slices(draw(st.sampled_from(NAMES)), ns, k))
        body["metadata"].update(uid=f"slice-{ns}-{k}", name=f"slice-{k}")
        return body

    state: dict[str, dict[str, Any]] = {}
    for ns, name in draw(st.lists(st.sampled_from(keys), min_size=1, max_size=4, unique=True)):
        state[f"svc-{ns}-{name}"] = service_body(ns, name)
    for ns, k in draw(st.lists(st.tuples(st.sampled_from(NAMESPACES), st.integers(0, 3)), max_size=5, unique=True)):
        state[f"slice-{ns}-{k}"] = slice_body(ns, k)
    node = NODE_A
    history = [[*state.values(), node]]
    for _ in range(draw(st.integers(1, 6))):
        state = dict(state)
        if draw(st.integers(0, 3)) == 0:
            for ns, name in draw(st.lists(st.sampled_from(keys), min_size=1, max_size=2, unique=True)):
                uid = f"svc-{ns}-{name}"
                if uid in state and draw(st.booleans()):
                    del state[uid]
                else:
                    state[uid] = service_body(ns, name)
        for ns, k in draw(st.lists(st.tuples(st.sampled_from(NAMESPACES), st.integers(0, 3)), min_size=1,
                                   max_size=3, unique=True)):
            uid = f"slice-{ns}-{k}"
            what = draw(st.sampled_from(("move", "move", "change", "delete"))) if uid in state else "change"
            if what == "delete":
                del state[uid]
            elif what == "move":
                body = copy.deepcopy(state[uid])
                body["metadata"]["labels"][SERVICE_NAME] = draw(st.sampled_from(NAMES))
                state[uid] = body
            else:
                state[uid] = slice_body(ns, k)
        if draw(st.integers(0, 5)) == 0:
            node = copy.deepcopy(NODE_A)
            node["status"]["addresses"][0]["address"] = draw(st.sampled_from(("172.18.0.2", "172.18.0.3")))
        history.append([*state.values(), node])
    return history
