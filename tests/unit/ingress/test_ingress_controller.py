"""The controller's sync decisions with a stand-in nginx: reload only when nginx.conf changes, push endpoints
otherwise, keep the running config when `nginx -t` refuses a new one, post each problem once, write status
with the whole object."""

from __future__ import annotations

import asyncio
import base64
import shutil
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from operators.gateway.services import Change
from operators.gateway.status import StatusPatch
from operators.ingress import controller as ctl
from operators.ingress import model as model_module
from operators.ingress.certs import self_signed
from operators.ingress.controller import IngressController
from operators.ingress.gateway_services import GatewayServiceWriter
from operators.ingress.gateway_status import GatewayStatusWriter
from operators.ingress.metrics import Metrics
from operators.ingress.model import IngressConfig
from operators.ingress.nginx import Nginx
from operators.ingress.operator import hand_over
from operators.ingress.render import Runtime
from operators.ingress.status import StatusWriter, lb_addresses, status_body
from operators.kube import services as api
from operators.kube.client import ApiError
from operators.runtime.schedule import Periods
from operators.runtime.store import ObjectRef

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
LUA = Path("/usr/lib/nginx/modules/ngx_http_lua_module.so")
pytestmark = pytest.mark.skipif(not Path(NGINX).exists() or not LUA.exists(), reason="needs nginx with its Lua module")


class FakeNginx(Nginx):
    """Records what the controller asks of nginx instead of running it."""

    def __init__(self, runtime: Runtime) -> None:
        super().__init__(runtime, NGINX)
        self.calls: list[str] = []
        self.pushed: list[str] = []
        self.up = False

    @property
    def running(self) -> bool:
        return self.up

    async def start(self, timeout: float = 15) -> None:
        self.up = True
        self.calls.append("start")

    def reload(self) -> None:
        self.calls.append("reload")

    async def healthy(self) -> bool:
        return self.up

    async def push_endpoints(self, body: str, attempts: int = 20) -> str:
        self.pushed.append(body)
        return "ok"


class FakeEvents:
    def __init__(self) -> None:
        self.posted: list[tuple[str, str, str]] = []

    async def post(self, ref: ObjectRef, reason: str, message: str) -> bool:
        self.posted.append((ref.name, reason, message))
        return True


class FakeStatus(StatusWriter):
    def __init__(self, metrics: Metrics) -> None:
        super().__init__(None, metrics, ("172.30.9.11",))

    async def update(self, ours: Any, ingress_lb: Any, service_lb: Any) -> None:
        self.last = tuple(ours)


class FakeGatewayStatus(GatewayStatusWriter):
    def __init__(self, world: World) -> None:
        super().__init__(None, world.metrics)
        self.world = world

    async def write(self, patches: Iterable[StatusPatch]) -> None:
        self.world.patches += patches


def _ingress(name: str, host: str, annotations: dict[str, str] | None = None) -> dict:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"namespace": "a", "name": name, "uid": f"u-{name}", "annotations": annotations or {},
                         "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"ingressClassName": "knet", "rules": [{"host": host, "http": {"paths": [
                {"path": "/", "pathType": "Prefix",
                 "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}}


def _slice(*ips: str) -> dict:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
            "metadata": {"namespace": "a", "name": "web-1", "labels": {api.SERVICE_NAME_LABEL: "web"}},
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": [ip], "conditions": {"ready": True}} for ip in ips]}


SERVICE = {"apiVersion": "v1", "kind": "Service", "metadata": {"namespace": "a", "name": "web"},
           "spec": {"clusterIP": "10.96.0.5", "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}
CLASS = {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass", "metadata": {"name": "knet"},
         "spec": {"controller": "knet.io/ingress-nginx"}}


class World:
    def __init__(self, tmp: Path) -> None:
        p = str(tmp)
        self.rt = Runtime(prefix=p, certificate_dir=f"{p}/certs", default_certificate=f"{p}/certs/default.pem",
                          pid_file=f"{p}/nginx.pid", temp_dir=f"{p}/tmp", error_log=f"{p}/error.log",
                          access_log="off", http_port=18080, https_port=18443, status_port=18254, ipv6=False,
                          dynamic_endpoints=True, control_socket=f"{p}/control.sock")
        ctl.prepare_prefix(self.rt)
        self.metrics = Metrics()
        self.nginx = FakeNginx(self.rt)
        self.events = FakeEvents()
        self.controller = IngressController(IngressConfig(), self.rt, self.nginx, self.metrics,
                                            self.events, FakeStatus(self.metrics), Periods(0, 1),  # type: ignore[arg-type]
                                            FakeGatewayStatus(self))
        self.ingresses = [_ingress("one", "one.test")]
        self.slices = [_slice("10.244.1.2")]
        self.secrets: list[dict] = []
        self.gateway_api: list[dict] = []  # GatewayClasses, Gateways, HTTPRoutes
        self.patches: list[StatusPatch] = []

    def sync(self) -> None:
        """The objects handed to the operator's informers (as their listing would), then one sync."""
        hand_over(self.controller, [CLASS, *self.ingresses, SERVICE, *self.slices, *self.secrets,
                                    *self.gateway_api])
        asyncio.run(self.controller.sync())

    def reloads(self, result: str = "success") -> float:
        return self.metrics.reloads.labels(result)._value.get()


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def test_first_sync_starts_nginx_and_pushes_endpoints(world: World) -> None:
    world.sync()
    assert world.nginx.calls == ["start"]
    assert world.nginx.pushed == ["a_web_80 10.244.1.2 8080\n"]
    assert world.controller.synced and (Path(world.rt.prefix) / "nginx.conf").exists()


def test_endpoint_change_is_a_push_not_a_reload(world: World) -> None:
    world.sync()
    world.slices = [_slice("10.244.1.2", "10.244.2.3")]
    world.sync()
    world.sync()  # nothing changed: nothing to do
    assert world.nginx.calls == ["start"]
    assert len(world.nginx.pushed) == 2 and "10.244.2.3 8080" in world.nginx.pushed[1]
    assert world.reloads() == 0


def test_ingress_change_is_one_reload_then_endpoints(world: World) -> None:
    world.sync()
    world.ingresses.append(_ingress("two", "two.test"))
    world.sync()
    world.sync()
    assert world.nginx.calls == ["start", "reload"]
    assert world.reloads() == 1 and len(world.nginx.pushed) == 2
    assert "two.test" in (Path(world.rt.prefix) / "nginx.conf").read_text()


def _refuse(needle: str, message: str = "nginx: [emerg] refused") -> object:
    """A stand-in `nginx -t` that refuses every config holding `needle` (a model gap nginx finds)."""
    real = ctl.files.check_config
    return lambda text, *a: message if needle in text else real(text, *a)


def _conf(world: World) -> str:
    return (Path(world.rt.prefix) / "nginx.conf").read_text()


def test_refused_ingress_is_left_out_and_the_others_applied(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    world.sync()
    monkeypatch.setattr(ctl.files, "check_config", _refuse("bad.test"))
    world.ingresses += [_ingress("bad", "bad.test"), _ingress("two", "two.test")]
    world.sync()
    assert "two.test" in _conf(world) and "bad.test" not in _conf(world)
    assert [(n, r) for n, r, _ in world.events.posted] == [("bad", "ConfigRejected")]


def test_later_changes_apply_while_a_culprit_is_left_out(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ctl.files, "check_config", _refuse("bad.test"))
    world.ingresses.append(_ingress("bad", "bad.test"))
    world.sync()
    world.ingresses.append(_ingress("three", "three.test"))
    world.sync()
    assert "three.test" in _conf(world) and world.nginx.calls == ["start", "reload"]
    assert len(world.events.posted) == 1  # the culprit is not tried (nor reported) again while unchanged


def test_culprit_is_tried_again_when_it_changes(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ctl.files, "check_config", _refuse("bad.test"))
    world.ingresses.append(_ingress("bad", "bad.test"))
    world.sync()
    world.ingresses[-1]["spec"]["rules"][0]["host"] = "fixed.test"
    world.sync()
    assert "fixed.test" in _conf(world)


def test_a_config_nginx_refuses_even_without_ingresses_blames_no_one(world: World,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    world.sync()
    before = _conf(world)
    monkeypatch.setattr(ctl.files, "check_config", lambda *a: "nginx: [emerg] something is wrong")
    world.ingresses.append(_ingress("two", "two.test"))
    world.sync()
    world.sync()  # the same refused text is not tried again
    assert _conf(world) == before and world.nginx.calls == ["start"] and not world.events.posted
    assert world.reloads("failure") == 1 and world.reloads() == 0


def test_rejection_event_names_no_other_tenants_certificate(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    other = f"{world.rt.certificate_dir}/other-tenant_secret-tls_0123456789ab.pem"
    monkeypatch.setattr(ctl.files, "check_config", _refuse("bad.test", f'SSL_CTX_use_certificate("{other}") failed'))
    world.ingresses.append(_ingress("bad", "bad.test"))
    world.sync()
    assert "other-tenant" not in world.events.posted[0][2]


def _rsa_secret(name: str, host: str, bits: int) -> dict:
    cert, key = self_signed([host], key=rsa.generate_private_key(65537, bits))
    data = {"tls.crt": base64.b64encode(cert).decode(), "tls.key": base64.b64encode(key).decode()}
    return {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {"namespace": "a", "name": name}, "data": data}


def test_what_the_model_misses_real_nginx_refuses_for_that_ingress_alone(world: World,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(model_module, "weakness", lambda pem: "")  # a gap in the model: nginx -t is the net
    world.secrets = [_rsa_secret("weak", "weak.test", 1024)]
    world.ingresses += [_ingress("weak", "weak.test"), _ingress("two", "two.test")]
    world.ingresses[-2]["spec"]["tls"] = [{"hosts": ["weak.test"], "secretName": "weak"}]
    world.sync()
    assert "two.test" in _conf(world) and "weak.test" not in _conf(world)
    assert [(n, r) for n, r, m in world.events.posted if "ee key too small" in m] == [("weak", "ConfigRejected")]
    world.secrets = [_rsa_secret("weak", "weak.test", 2048)]  # a new Secret: the Ingress is tried again
    world.sync()
    assert "weak.test" in _conf(world)


def test_restart_serves_the_last_good_config_and_endpoints(world: World) -> None:
    world.sync()
    again = World(Path(world.rt.prefix))
    asyncio.run(again.controller.resume())
    assert again.nginx.calls == ["start"] and again.controller.applied.text == _conf(world)
    assert again.nginx.pushed == ["a_web_80 10.244.1.2 8080\n"]


def test_restart_with_a_refused_ingress_starts_without_it(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ctl.files, "check_config", _refuse("bad.test"))
    world.ingresses.append(_ingress("bad", "bad.test"))
    world.sync()
    assert world.controller.synced and "one.test" in _conf(world)


def test_problems_are_posted_once(world: World) -> None:
    world.ingresses.append(_ingress("nosvc", "x.test"))
    world.ingresses[-1]["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] = "missing"
    world.sync()
    world.sync()
    posted = [(n, r) for n, r, _ in world.events.posted]
    assert posted == [("nosvc", "IngressProblem")]


def test_status_body_keeps_the_object() -> None:
    seen = _ingress("one", "one.test", {"nginx.ingress.kubernetes.io/ssl-redirect": "false"})
    seen["metadata"]["managedFields"] = [{"manager": "kubectl"}]
    seen["metadata"]["resourceVersion"] = "42"
    body = status_body(seen, ["172.30.9.11", "lb.example.com"])
    assert body["metadata"]["annotations"] == seen["metadata"]["annotations"]
    assert body["metadata"]["resourceVersion"] == "42" and "managedFields" not in body["metadata"]
    assert body["status"] == {"loadBalancer": {"ingress": [{"ip": "172.30.9.11"}, {"hostname": "lb.example.com"}]}}
    assert lb_addresses(body) == ("172.30.9.11", "lb.example.com")


def test_status_prefers_the_service_load_balancer() -> None:
    writer = StatusWriter(None, Metrics(), ("172.30.9.11",), "knet-system/ingress")
    assert writer.addresses({}) == ("172.30.9.11",)
    assert writer.addresses({("knet-system", "ingress"): ("172.30.9.130",)}) == ("172.30.9.130",)


class _Api:
    def __init__(self, status: int) -> None:
        self.status, self.calls = status, 0

    async def request(self, method: str, path: str, *args: Any, **kwargs: Any) -> None:
        assert (method, path) == ("PUT", "/apis/networking.k8s.io/v1/namespaces/a/ingresses/one/status")
        self.calls += 1
        if self.status:
            raise ApiError(self.status, "nope")


def test_status_written_when_it_differs_and_given_up_without_permission() -> None:
    seen = _ingress("one", "one.test")
    ingress_lb = {("a", "one"): ((), seen), ("a", "two"): (("172.30.9.11",), seen)}
    writer = StatusWriter(None, Metrics(), ("172.30.9.11",))
    writer.api = api_ok = _Api(0)  # type: ignore[assignment]
    asyncio.run(writer.update(["a/one", "a/two"], ingress_lb, {}))
    assert api_ok.calls == 1  # a/two already says the same
    writer.api = denied = _Api(403)  # type: ignore[assignment]
    asyncio.run(writer.update(["a/one", "a/two"], ingress_lb, {}))
    assert denied.calls == 1 and writer.api is None


GATEWAY_API = [
    {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass", "metadata": {"name": "knet"},
     "spec": {"controllerName": "knet.io/gateway-nginx"}},
    {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway", "metadata": {"namespace": "a", "name": "gw"},
     "spec": {"gatewayClassName": "knet", "listeners": [{"name": "http", "port": 18080, "protocol": "HTTP"}]}},
    {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"namespace": "a", "name": "r"},
     "spec": {"parentRefs": [{"name": "gw"}], "hostnames": ["gw.test"],
              "rules": [{"backendRefs": [{"name": "web", "port": 80}]}]}},
]


def test_a_gateway_is_served_beside_the_ingresses_and_its_status_written(world: World) -> None:
    world.gateway_api = GATEWAY_API
    world.sync()
    assert "gw.test" in _conf(world) and "one.test" in _conf(world)
    assert [(p.kind, p.name) for p in world.patches] == [("GatewayClass", "knet"), ("Gateway", "gw"),
                                                         ("HTTPRoute", "r")]


def test_no_gateway_status_for_a_config_nginx_refuses(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ctl.files, "check_config", _refuse("gw.test"))
    world.gateway_api = GATEWAY_API
    world.sync()
    assert world.patches == []


class FakeGatewayServices(GatewayServiceWriter):
    def __init__(self, world: World) -> None:
        super().__init__(None, world.metrics)
        self.changes: list[Change] = []

    async def write(self, changes: Iterable[Change]) -> None:
        self.changes += changes


def test_with_gateway_ports_each_gateway_gets_its_own_service_and_reports_its_address(world: World) -> None:
    world.controller.rt = world.rt = replace(world.rt, gateway_ports=(20000, 20999))
    world.controller.status.service = "knet-system/knet-ingress"
    world.controller.gateway_services = written = FakeGatewayServices(world)
    ingress_pods = {**_slice("10.244.3.4"), "metadata": {"namespace": "knet-system", "name": "knet-ingress-1",
                                                         "labels": {api.SERVICE_NAME_LABEL: "knet-ingress"}}}
    world.slices.append(ingress_pods)
    world.gateway_api = GATEWAY_API
    world.sync()
    assert [(c.verb, c.kind, c.name) for c in written.changes] == [("create", "Service", "gw-knet"),
                                                                   ("create", "EndpointSlice", "gw-knet-ipv4")]
    svc, eps = (dict(c.body or {}) for c in written.changes)
    (port,) = svc["spec"]["ports"]
    assert port["port"] == 18080 and f"listen {port['targetPort']} default_server;" in _conf(world)
    assert eps["endpoints"][0]["addresses"] == ["10.244.3.4"]
    gw = next(p for p in world.patches if p.kind == "Gateway")
    assert {c["type"]: c["reason"] for c in gw.body["status"]["conditions"]}["Programmed"] == "AddressNotAssigned"
    # the API server's copies come back through the watch, the pool gives the Service an address
    world.slices.append(eps)
    world.gateway_api = [*GATEWAY_API, {**svc, "status": {"loadBalancer": {"ingress": [{"ip": "172.18.0.200"}]}}}]
    written.changes, world.patches = [], []
    world.sync()
    assert written.changes == []
    gw = next(p for p in world.patches if p.kind == "Gateway")
    assert gw.body["status"]["addresses"] == [{"type": "IPAddress", "value": "172.18.0.200"}]


class _Refusing:
    def __init__(self, message: str) -> None:
        self.message, self.calls = message, 0

    async def request(self, method: str, path: str, *args: Any, **kwargs: Any) -> None:
        self.calls += 1
        raise ApiError(403, self.message)


def test_a_create_in_a_namespace_being_deleted_does_not_stop_the_gateway_service_writer() -> None:
    creates = [Change("create", "Service", "gone", "gw-knet", {"kind": "Service"}),
               Change("create", "Service", "live", "gw-knet", {"kind": "Service"})]
    writer = GatewayServiceWriter(None, Metrics())
    writer.api = terminating = _Refusing('services "gw-knet" is forbidden: unable to create new content in '  # type: ignore[assignment]
                                         "namespace gone because it is being terminated")
    asyncio.run(writer.write(creates))
    assert terminating.calls == 2 and writer.api is terminating
    writer.api = denied = _Refusing("services is forbidden: User cannot create")  # type: ignore[assignment]
    asyncio.run(writer.write(creates))
    assert denied.calls == 1 and writer.api is None
