"""The fields DNS needs, carried by the shared Service, EndpointSlice and Pod views."""

from __future__ import annotations

from operators.kube.parse import Problem
from operators.kube.pods import parse_pod
from operators.kube.services import parse_endpoint_slice, parse_service


def test_service_carries_its_external_name() -> None:
    svc, problems = parse_service({"metadata": {"name": "ext"},
                                   "spec": {"type": "ExternalName", "externalName": "www.Example.com."}})
    assert svc is not None and svc.external_name and svc.external_host == "www.Example.com." and not problems
    plain, _ = parse_service({"metadata": {"name": "web"}, "spec": {"clusterIP": "10.96.0.1",
                                                                    "externalName": "ignored.example"}})
    assert plain is not None and plain.external_host == ""


def test_endpoint_carries_hostname_and_target_pod() -> None:
    view, problems = parse_endpoint_slice({
        "metadata": {"name": "db-1", "labels": {"kubernetes.io/service-name": "db"}},
        "addressType": "IPv4",
        "endpoints": [
            {"addresses": ["10.0.0.1"], "hostname": "db-0", "targetRef": {"kind": "Pod", "name": "db-0"}},
            {"addresses": ["10.0.0.2"], "hostname": "DB 1", "targetRef": {"kind": "Node", "name": "n1"}},
            {"addresses": ["10.0.0.3"], "targetRef": {"kind": "Pod", "name": "db-2"}},  # no hostname
        ],
    })
    assert view is not None
    assert [(e.hostname, e.target_pod) for e in view.endpoints] == [("db-0", "db-0"), ("", ""), ("", "db-2")]
    assert [str(p) for p in problems] == [
        "EndpointSlice default/db-1: endpoint hostname 'DB 1' is not a DNS label; ignored"]


def test_pod_carries_hostname_and_subdomain() -> None:
    pod, problems = parse_pod({"metadata": {"name": "db-0", "namespace": "prod"},
                              "spec": {"hostname": "db-0", "subdomain": "db"}})
    assert (pod.hostname, pod.subdomain) == ("db-0", "db") and not problems
    bad, problems = parse_pod({"metadata": {"name": "x"}, "spec": {"hostname": "X_0", "subdomain": "db"}})
    assert (bad.hostname, bad.subdomain) == ("", "db")
    assert problems == [Problem("Pod", "default", "x", "hostname 'X_0' is not a DNS label; ignored")]
