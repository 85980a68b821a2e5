"""How the agent reaches the API server: the control-plane endpoint it is given, never a Service VIP.

The agent programs the `kubernetes` Service itself, so it cannot depend on it: in a pod it uses the
endpoint in `KNET_API_SERVER` with the pod's service-account token and CA (the token file is re-read
as the kubelet rotates it); by hand, a kubeconfig. One `kubernetes.client.Configuration` serves both
Kopf (as `ConnectionInfo`, from the login handler) and the kubernetes client (Events).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import kopf
import kubernetes

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class LoginError(Exception):
    pass


def configuration(api_server: str | None, kubeconfig: str | None,
                  service_account: Path = SERVICE_ACCOUNT) -> kubernetes.client.Configuration:
    """Credentials (and server) from a kubeconfig if given, else the service account's for `api_server`."""
    config = kubernetes.client.Configuration()
    if kubeconfig:
        kubernetes.config.load_kube_config(config_file=kubeconfig, client_configuration=config)
        return config
    if not api_server:
        raise LoginError("no API server: set KNET_API_SERVER (the control-plane endpoint) or pass --kubeconfig")
    url = urlsplit(api_server)
    if url.scheme != "https" or not url.hostname:
        raise LoginError(f"KNET_API_SERVER {api_server!r} is not an https:// URL")
    environ = {"KUBERNETES_SERVICE_HOST": url.hostname, "KUBERNETES_SERVICE_PORT": str(url.port or 443)}
    try:
        kubernetes.config.incluster_config.InClusterConfigLoader(
            token_filename=str(service_account / "token"), cert_filename=str(service_account / "ca.crt"),
            environ=environ).load_and_set(config)
    except kubernetes.config.ConfigException as e:
        raise LoginError(f"service-account credentials: {e}") from e
    return config


def connection_info(config: kubernetes.client.Configuration) -> kopf.ConnectionInfo:
    """Kopf's view of the same credentials (the client's hook re-reads a rotated token file)."""
    header = config.get_api_key_with_prefix("BearerToken") or config.get_api_key_with_prefix("authorization")
    scheme, _, token = (header or "").partition(" ")
    return kopf.ConnectionInfo(
        server=config.host,
        ca_path=config.ssl_ca_cert,
        insecure=not config.verify_ssl,
        scheme=scheme.capitalize() if token else None,
        token=token or None,
        certificate_path=config.cert_file,
        private_key_path=config.key_file,
    )
