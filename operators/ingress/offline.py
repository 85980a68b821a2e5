"""`knet render ingress`: the nginx.conf the controller would run, computed offline from YAML objects.

Runs exactly the controller's code (parse -> model -> render). Reads IngressClasses and Ingresses
(networking.k8s.io/v1), Services (v1), EndpointSlices (discovery.k8s.io) and Secrets (v1). The
config holds the controller settings (`IngressConfig.from_dict`) and, under `runtime`, the paths and
ports nginx would use (`Runtime.from_dict`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from operators.ingress.model import IngressConfig, IngressModel, build_model
from operators.ingress.render import Runtime, render_config
from operators.kube import ingresses as views
from operators.kube import services as api
from operators.kube.objects import Obj, of_kind, parse_all
from operators.kube.services import Problem


def model_from_objects(objects: list[Obj], config: Mapping[str, Any] | None = None,
                       ) -> tuple[IngressModel, list[Problem]]:
    """Parse the objects and build the model; problems in object order, then the model's."""
    cfg, problems = IngressConfig.from_dict(config)
    classes = parse_all(of_kind(objects, "IngressClass", "networking.k8s.io/"), views.parse_ingress_class, problems)
    ingresses = parse_all(of_kind(objects, "Ingress", "networking.k8s.io/"), views.parse_ingress, problems)
    services = parse_all(of_kind(objects, "Service", "v1"), api.parse_service, problems)
    slices = parse_all(of_kind(objects, "EndpointSlice", "discovery.k8s.io/"), api.parse_endpoint_slice, problems)
    secrets = parse_all(of_kind(objects, "Secret", "v1"), views.parse_tls_secret, problems)
    model, found = build_model(classes, ingresses, services, slices, secrets, cfg)
    return model, problems + found


def render(objects: list[dict], config: dict | None = None) -> tuple[str, list[str]]:
    """The nginx.conf text for the objects, and the problems found (each a would-be Event)."""
    model, problems = model_from_objects(objects, config)
    runtime = Runtime.from_dict(api.field(config or {}, "runtime", {}))
    return render_config(model, runtime), [str(p) for p in problems]
