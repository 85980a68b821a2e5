"""Objects for the ingress tenancy tests: Ingresses of several namespaces beside one good, older Ingress."""

from __future__ import annotations

import base64

from cryptography.hazmat.primitives.asymmetric import ec, rsa

from operators.ingress.certs import self_signed
from operators.ingress.model import IngressModel

ANN = "nginx.ingress.kubernetes.io/"
LONG_HOST = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])  # 253 characters, the API's longest


def ingress(name: str, host: str, path: str = "/", path_type: str = "Prefix", ns: str = "app",
            annotations: dict[str, str] | None = None, created: str = "2026-01-01T00:00:00Z", uid: str = "",
            tls: str = "") -> dict:
    spec: dict = {"ingressClassName": "knet", "rules": [{"host": host, "http": {"paths": [
        {"path": path, "pathType": path_type, "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}
    if tls:
        spec["tls"] = [{"hosts": [host], "secretName": tls}]
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "spec": spec,
            "metadata": {"name": name, "namespace": ns, "annotations": annotations or {},
                         "creationTimestamp": created, "uid": uid or f"uid-{ns}-{name}"}}


def world(*ingresses: dict) -> list[dict]:
    """The class, a Service `web` with one endpoint in every namespace used, a good Ingress, and `ingresses`."""
    out: list[dict] = [{"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass", "metadata": {"name": "knet"},
                        "spec": {"controller": "knet.io/ingress-nginx"}}]
    all_ingresses = [ingress("good", "good.example.com", created="2025-01-01T00:00:00Z"), *ingresses]
    for ns in sorted({i["metadata"]["namespace"] for i in all_ingresses}):
        out += [{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": ns},
                 "spec": {"clusterIP": "10.96.0.10", "ports": [{"name": "http", "port": 80}]}},
                {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
                 "metadata": {"name": "web-1", "namespace": ns, "labels": {"kubernetes.io/service-name": "web"}},
                 "ports": [{"name": "http", "port": 80}], "endpoints": [{"addresses": ["10.0.0.5"]}]}]
    return out + all_ingresses


def routes(model: IngressModel, host: str) -> dict[str, str]:
    """path -> the Ingress (namespace/name) that serves it on `host`."""
    server = next(s for s in model.servers if s.host == host)
    return {loc.path: loc.ingress for loc in server.locations}


def tls_secret(name: str, host: str, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> dict:
    cert, key_pem = self_signed([host], key=key)
    return {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {"name": name, "namespace": "app"},
            "data": {"tls.crt": base64.b64encode(cert).decode(), "tls.key": base64.b64encode(key_pem).decode()}}
