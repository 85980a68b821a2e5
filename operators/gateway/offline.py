"""`knet render gateway`: what knet's nginx would serve for the Gateways, HTTPRoutes and Ingresses in YAML
files, computed offline by the controller's own code (parse -> model -> render), with the status the
controller would write (`status_text`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from operators.gateway import views
from operators.gateway.conditions import Condition
from operators.gateway.model import GatewayObjects, Status, build_model
from operators.ingress.model import IngressConfig, IngressModel
from operators.ingress.offline import ingress_objects
from operators.kube.objects import Obj, of_kind, parse_all
from operators.kube.services import Problem

_API = "gateway.networking.k8s.io/"


def gateway_objects(objects: list[Obj], problems: list[Problem]) -> GatewayObjects:
    return GatewayObjects(
        tuple(parse_all(of_kind(objects, "GatewayClass", _API), views.parse_gateway_class, problems)),
        tuple(parse_all(of_kind(objects, "Gateway", _API), views.parse_gateway, problems)),
        tuple(parse_all(of_kind(objects, "HTTPRoute", _API), views.parse_http_route, problems)),
        tuple(parse_all(of_kind(objects, "ReferenceGrant", _API), views.parse_reference_grant, problems)),
        tuple(parse_all(of_kind(objects, "Namespace", "v1"), views.parse_namespace, problems)))


def model_from_objects(objects: list[Obj], config: Mapping[str, Any] | None = None,
                       ingress_ports: tuple[int, int] = (80, 443), taken_ports: tuple[int, ...] = (),
                       own_ports: tuple[int, int] | None = None) -> tuple[IngressModel, list[Problem], Status]:
    cfg, problems = IngressConfig.from_dict(config)
    gw = gateway_objects(objects, problems)
    model, found, status = build_model(gw, *ingress_objects(objects, problems), cfg, ingress_ports, taken_ports,
                                       own_ports)
    return model, problems + found, status


def _line(what: str, conds: tuple[Condition, ...]) -> str:
    return f"{what}: " + ", ".join(f"{c.type}={'True' if c.status else 'False'}({c.reason})" for c in conds)


def status_text(status: Status) -> list[str]:
    """One line per object (and listener, and route parent) with its conditions, for stderr and tests."""
    lines = [_line(f"GatewayClass {name}", conds) for name, conds in status.classes]
    attached = dict(status.attached)
    for g in status.gateways:
        lines.append(_line(f"Gateway {g.gateway.meta.key}", g.conditions))
        lines += [_line(f"Gateway {g.gateway.meta.key} listener {ls.listener.name} "
                        f"(attachedRoutes {attached.get(ls.key, 0)})", ls.conditions) for ls in g.listeners]
    lines += [f"Gateway {key} port {port}: nginx port {nginx_port}" for (key, port), nginx_port in status.ports or ()]
    for key, parents in status.routes:
        lines += [_line(f"HTTPRoute {key} parent {p.parent.namespace}/{p.parent.name}"
                        + (f" section {p.parent.section}" if p.parent.section else ""), p.conditions)
                  for p in parents]
    return lines
