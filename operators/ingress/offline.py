"""`knet render ingress`: the nginx.conf the controller would run, computed offline from YAML objects.

Runs exactly the controller's code (parse -> model -> render). Reads IngressClasses and Ingresses
(networking.k8s.io/v1), Services (v1), EndpointSlices (discovery.k8s.io) and Secrets (v1). The
config holds the controller settings (`IngressConfig.from_dict`) and, under `runtime`, the paths and
ports nginx would use (`Runtime.from_dict`).

With `--out DIR`, `write_directory` makes a directory that `nginx -p DIR -c nginx.conf` runs as it is:
every path in the config is relative to DIR, the endpoints are written into the upstreams (no Lua), the
certificates of the Secrets in the files are there, and a default certificate is generated.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from operators.ingress.certs import self_signed
from operators.ingress.files import write_private
from operators.ingress.model import IngressConfig, IngressModel, build_model
from operators.ingress.render import Runtime, render_config
from operators.kube import ingresses as views
from operators.kube import services as api
from operators.kube.objects import Obj, of_kind, parse_all
from operators.kube.services import EndpointSlice, Problem, Service

# Every path relative to the directory nginx is started in (`nginx -p DIR`); no Lua: endpoints in the file.
DIRECTORY_RUNTIME = Runtime(prefix=".", certificate_dir="certs", default_certificate="certs/default.pem",
                            pid_file="nginx.pid", temp_dir="tmp", error_log="error.log", access_log="access.log",
                            dynamic_endpoints=False, control_socket="control.sock")


def ingress_objects(objects: list[Obj], problems: list[Problem],
                    ) -> tuple[list[views.IngressClass], list[views.Ingress], list[Service], list[EndpointSlice],
                               list[views.TLSSecret]]:
    """The views the Ingress model reads, parsed from the objects; their problems appended."""
    return (parse_all(of_kind(objects, "IngressClass", "networking.k8s.io/"), views.parse_ingress_class, problems),
            parse_all(of_kind(objects, "Ingress", "networking.k8s.io/"), views.parse_ingress, problems),
            parse_all(of_kind(objects, "Service", "v1"), api.parse_service, problems),
            parse_all(of_kind(objects, "EndpointSlice", "discovery.k8s.io/"), api.parse_endpoint_slice, problems),
            parse_all(of_kind(objects, "Secret", "v1"), views.parse_tls_secret, problems))


def model_from_objects(objects: list[Obj], config: Mapping[str, Any] | None = None,
                       ) -> tuple[IngressModel, list[Problem]]:
    """Parse the objects and build the model; problems in object order, then the model's."""
    cfg, problems = IngressConfig.from_dict(config)
    model, found = build_model(*ingress_objects(objects, problems), cfg)
    return model, problems + found


def runtime_of(config: Mapping[str, Any] | None, ports: Mapping[str, int] | None = None,
               directory: bool = False) -> Runtime:
    """The runtime of the config's `runtime` (or, for `--out`, the directory's), with the ports given."""
    base = DIRECTORY_RUNTIME if directory else Runtime.from_dict(api.field(config or {}, "runtime", {}))
    return replace(base, **{k: v for k, v in (ports or {}).items() if v is not None})


def render(objects: list[dict], config: dict | None = None,
           ports: Mapping[str, int] | None = None) -> tuple[str, list[str]]:
    """The nginx.conf text for the objects, and the problems found (each a would-be Event)."""
    model, problems = model_from_objects(objects, config)
    return render_config(model, runtime_of(config, ports)), [str(p) for p in problems]


def write_directory(model: IngressModel, runtime: Runtime, out: str | Path) -> Path:
    """Write nginx.conf, its certificates, a default certificate and the temp directory into `out`."""
    root = Path(out)
    text = render_config(model, runtime)
    for d in (root, root / runtime.temp_dir, root / runtime.certificate_dir):
        d.mkdir(parents=True, exist_ok=True)
    default = root / runtime.default_certificate
    if not default.exists():
        cert, key = self_signed(["knet.local"], days=3650)
        write_private(default, cert + key)
    for name, data in model.certificates:
        write_private(root / runtime.certificate_dir / name, data)
    (root / "nginx.conf").write_text(text)
    return root / "nginx.conf"
