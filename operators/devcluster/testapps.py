"""Applications the devcluster can run, shared by `make demo` and the end-to-end tests."""

from __future__ import annotations

from typing import Any

import yaml

AGNHOST = "registry.k8s.io/e2e-test-images/agnhost:2.53"
Obj = dict[str, Any]


def netexec(
    namespace: str,
    name: str = "web",
    replicas: int = 2,
    *,
    readiness: Obj | None = None,
    init_command: str | None = None,
    service: bool = True,
) -> str:
    """YAML of a Deployment of agnhost netexec pods spread over the nodes (HTTP on 8080, port name
    `http`; UDP on 8081) and, unless `service` is false, a ClusterIP Service `name` on port 80."""
    labels = {"app": name}
    container: Obj = {
        "name": "netexec",
        "image": AGNHOST,
        "args": ["netexec", "--http-port=8080", "--udp-port=8081"],
        "ports": [{"name": "http", "containerPort": 8080}, {"name": "udp", "containerPort": 8081, "protocol": "UDP"}],
    }
    if readiness:
        container["readinessProbe"] = readiness
    pod: Obj = {
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": "kubernetes.io/hostname",
                "whenUnsatisfiable": "DoNotSchedule",
                "labelSelector": {"matchLabels": labels},
            }
        ],
        "containers": [container],
    }
    if init_command:
        pod["initContainers"] = [{"name": "init", "image": AGNHOST, "command": ["sh", "-c", init_command]}]
    objs: list[Obj] = [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels}, "spec": pod},
            },
        }
    ]
    if service:
        objs.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {"selector": labels, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
            }
        )
    return yaml.safe_dump_all(objs, sort_keys=False)
