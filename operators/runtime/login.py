"""How a component reaches the API server: the control-plane endpoint it is given, never a Service VIP.

The agent programs the `kubernetes` Service itself, so no component depends on it: in a pod they use the
endpoint in `KNET_API_SERVER` with the pod's service-account token and CA (the token file is read again
before each request, as the kubelet rotates it); by hand, a kubeconfig. One `Credentials` serves Kopf (as
`ConnectionInfo`, from the login handler) and knet's own client (`operators.kube.client`).

The kubeconfig is read here rather than with the kubernetes client: the components use no other part of
that client, and importing it (with the models Kopf then also loads) costs each process about 18 MiB.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import os
import ssl
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import yaml

if TYPE_CHECKING:
    import kopf

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class LoginError(Exception):
    pass


@dataclass(frozen=True)
class Credentials:
    """The API server and how to prove who we are; certificates and keys as files (kubeconfig data is
    written to a private temporary directory), the token as text or as a file read at each use."""

    server: str
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    token: str | None = None
    token_file: str | None = None
    insecure: bool = False

    def bearer(self) -> str | None:
        if self.token_file:
            return Path(self.token_file).read_text().strip() or None
        return self.token

    def headers(self) -> dict[str, str]:
        token = self.bearer()
        return {"Accept": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}

    def ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=self.ca_file)
        if self.cert_file:
            ctx.load_cert_chain(self.cert_file, self.key_file)
        if self.insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx

    def connection_info(self) -> kopf.ConnectionInfo:
        """Kopf's view of the same credentials (Kopf logs in again, so reads the token again, on a 401)."""
        import kopf

        token = self.bearer()
        return kopf.ConnectionInfo(server=self.server, ca_path=self.ca_file, insecure=self.insecure,
                                   scheme="Bearer" if token else None, token=token,
                                   certificate_path=self.cert_file, private_key_path=self.key_file)


def credentials(api_server: str | None, kubeconfig: str | None,
                service_account: Path = SERVICE_ACCOUNT) -> Credentials:
    """Credentials (and server) from a kubeconfig if given, else the service account's for `api_server`."""
    if kubeconfig:
        return from_kubeconfig(Path(kubeconfig))
    if not api_server:
        raise LoginError("no API server: set KNET_API_SERVER (the control-plane endpoint) or pass --kubeconfig")
    url = urlsplit(api_server)
    if url.scheme != "https" or not url.hostname:
        raise LoginError(f"KNET_API_SERVER {api_server!r} is not an https:// URL")
    token, ca = service_account / "token", service_account / "ca.crt"
    for path in (token, ca):
        if not path.is_file():
            raise LoginError(f"service-account credentials: {path} is missing")
    if not token.read_text().strip():
        raise LoginError(f"service-account credentials: {token} is empty")
    return Credentials(server=api_server.rstrip("/"), ca_file=str(ca), token_file=str(token))


def from_kubeconfig(path: Path) -> Credentials:
    """The current context's cluster and user (token, token file or client certificate; exec plugins and
    auth providers are not supported)."""
    try:
        config = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise LoginError(f"kubeconfig {path}: {e}") from e
    if not isinstance(config, dict):
        raise LoginError(f"kubeconfig {path}: not a kubeconfig")
    context = _named(config, "contexts", config.get("current-context"), path)
    cluster = _named(config, "clusters", context.get("cluster"), path)
    user = _named(config, "users", context.get("user"), path) if context.get("user") else {}
    if not cluster.get("server"):
        raise LoginError(f"kubeconfig {path}: the cluster has no server")
    if "exec" in user or "auth-provider" in user:
        raise LoginError(f"kubeconfig {path}: exec plugins and auth providers are not supported; use a token or "
                         "a client certificate")
    base = path.parent
    return Credentials(
        server=str(cluster["server"]).rstrip("/"),
        ca_file=_file(cluster, "certificate-authority", base),
        cert_file=_file(user, "client-certificate", base),
        key_file=_file(user, "client-key", base),
        token=user.get("token") or None,
        token_file=_file(user, "tokenFile", base, data=False),
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
    )


def _named(config: Mapping[str, Any], section: str, name: object, path: Path) -> Mapping[str, Any]:
    singular = section.removesuffix("s")
    for item in config.get(section) or ():
        if isinstance(item, dict) and item.get("name") == name and isinstance(item.get(singular), dict):
            return item[singular]
    raise LoginError(f"kubeconfig {path}: no {singular} named {name!r}")


def _file(section: Mapping[str, Any], key: str, base: Path, data: bool = True) -> str | None:
    """The file `key` names (relative to the kubeconfig's folder), else `key-data` written to a private file."""
    if section.get(key):
        return str(base / str(section[key]))
    if data and section.get(f"{key}-data"):
        return _private_file(base64.b64decode(str(section[f"{key}-data"])))
    return None


def _private_file(content: bytes) -> str:
    fd, name = tempfile.mkstemp(prefix="knet-login-")  # mode 0600
    with os.fdopen(fd, "wb") as f:
        f.write(content)
    atexit.register(_remove, name)
    return name


def _remove(name: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(name)
