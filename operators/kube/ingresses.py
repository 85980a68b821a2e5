"""Typed, frozen views of IngressClasses, Ingresses (networking.k8s.io/v1) and TLS Secrets.

Like `operators.kube.services`, parsing never raises: each parser returns the view (or None when the
object is unusable as a whole) and a list of `Problem`s, so the Ingress controller can emit an Event
on the object at fault and keep serving everything else. Strings that later reach nginx.conf (hosts,
Service and Secret names, port names) are validated here; paths are checked by the model, which knows
whether a path is a regular expression.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from operators.kube.parse import Problem, Reader, field, is_dns_label, is_dns_subdomain, is_port, timestamp

CONTROLLER = "knet.io/ingress-nginx"
DEFAULT_CLASS_ANNOTATION = "ingressclass.kubernetes.io/is-default-class"
LEGACY_CLASS_ANNOTATION = "kubernetes.io/ingress.class"
PATH_TYPES = ("Exact", "Prefix", "ImplementationSpecific")

def is_host(value: object) -> bool:
    """An Ingress host: a DNS subdomain, or `*.` and one, never an IP address (as the API requires)."""
    if not isinstance(value, str):
        return False
    name = value.removeprefix("*.")
    try:
        ipaddress.ip_address(name)
        return False
    except ValueError:
        return is_dns_subdomain(name)


def host_matches(pattern: str, host: str) -> bool:
    """Whether `host` is covered by `pattern`, where `*.` stands for exactly one DNS label."""
    if pattern.startswith("*."):
        head, _, rest = host.partition(".")
        return bool(head) and head != "*" and rest == pattern[2:]
    return pattern == host


# --- IngressClass --------------------------------------------------------------------------------


@dataclass(frozen=True)
class IngressClass:
    name: str
    controller: str
    is_default: bool


def parse_ingress_class(obj: object) -> tuple[IngressClass | None, list[Problem]]:
    """The IngressClass view; `is_default` follows the `is-default-class` annotation ("true" only)."""
    p = Reader.of("IngressClass", obj, namespaced=False)
    annotations = p.metadata_map(obj, "annotations")
    if not p.named(is_dns_subdomain, "DNS subdomain"):
        return None, p.problems
    controller = field(p.mapping_at(obj, "spec"), "controller", "")
    if not isinstance(controller, str) or not controller:
        p.problem("spec.controller is missing; class skipped")
        return None, p.problems
    return IngressClass(p.name, controller, annotations.get(DEFAULT_CLASS_ANNOTATION) == "true"), p.problems


# --- Ingress -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BackendRef:
    """A Service backend: the port is a number or a Service port name."""

    service: str
    port: int | str

    def __str__(self) -> str:
        return f"{self.service}:{self.port}"


@dataclass(frozen=True)
class HTTPPath:
    path: str  # unvalidated text: the model checks it against the path type and use-regex
    path_type: str  # Exact | Prefix | ImplementationSpecific
    backend: BackendRef


@dataclass(frozen=True)
class Rule:
    host: str  # "" matches every host; "*.example.com" exactly one label
    paths: tuple[HTTPPath, ...]


@dataclass(frozen=True)
class TLS:
    hosts: tuple[str, ...]  # empty: every host whose name the certificate covers
    secret_name: str


@dataclass(frozen=True)
class Ingress:
    namespace: str
    name: str
    class_name: str  # "" when neither ingressClassName nor the legacy annotation is set
    class_from_annotation: bool
    rules: tuple[Rule, ...]
    default_backend: BackendRef | None
    tls: tuple[TLS, ...]
    annotations: tuple[tuple[str, str], ...]  # sorted
    created: str  # RFC 3339 UTC, "" when unknown
    uid: str = ""

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def age_key(self) -> tuple[str, str, str, str]:
        """Sort key, oldest first: ingress-nginx resolves conflicts in favour of the oldest Ingress. Ties (one
        second) go by UID, which no tenant chooses, rather than by a namespace name an attacker could pick."""
        return self.created or "9999", self.uid, self.namespace, self.name


def _backend(p: Reader, raw: object, what: str) -> BackendRef | None:
    if field(raw, "resource") is not None:
        p.problem(f"{what}: resource backends are not supported; skipped")
        return None
    svc = field(raw, "service")
    name = field(svc, "name")
    if not is_dns_label(name):
        p.problem(f"{what}: service name {name!r} is not a valid DNS label; skipped")
        return None
    port = field(svc, "port", {})
    number, port_name = field(port, "number"), field(port, "name")
    if is_port(number):
        return BackendRef(name, number)
    if number is None and is_dns_label(port_name):
        return BackendRef(name, port_name)
    p.problem(f"{what}: service port {port!r} is neither a port number nor a port name; skipped")
    return None


def _paths(p: Reader, raw_rule: object, what: str) -> tuple[HTTPPath, ...]:
    out: list[HTTPPath] = []
    for i, raw in enumerate(p.array_at(field(raw_rule, "http"), "paths")):
        path, path_type = field(raw, "path", ""), field(raw, "pathType")
        where = f"{what} path {path!r}" if isinstance(path, str) and path else f"{what} path #{i}"
        if path_type not in PATH_TYPES:
            p.problem(f"{where}: pathType {path_type!r} is not one of {', '.join(PATH_TYPES)}; skipped")
            continue
        if not isinstance(path, str) or (path_type != "ImplementationSpecific" and not path.startswith("/")):
            p.problem(f"{where}: a {path_type} path must be an absolute path; skipped")
            continue
        backend = _backend(p, field(raw, "backend"), where)
        if backend is not None:
            out.append(HTTPPath(path or "/", path_type, backend))
    return tuple(out)


def _rules(p: Reader, spec: dict[str, Any]) -> tuple[Rule, ...]:
    rules: list[Rule] = []
    for raw in p.array_at(spec, "rules"):
        host = field(raw, "host", "")
        if host != "" and not is_host(host):
            p.problem(f"host {host!r} is not a DNS name or a one-label wildcard; rule skipped")
            continue
        paths = _paths(p, raw, f"rule {host or '*'}")
        if paths:
            rules.append(Rule(host, paths))
    return tuple(rules)


def _tls(p: Reader, spec: dict[str, Any]) -> tuple[TLS, ...]:
    out: list[TLS] = []
    for raw in p.array_at(spec, "tls"):
        secret = field(raw, "secretName", "")
        if not is_dns_subdomain(secret):
            p.problem(f"tls secretName {secret!r} is not a valid Secret name; entry skipped")
            continue
        hosts = p.array_at(raw, "hosts")
        bad = [h for h in hosts if not is_host(h)]
        if bad:
            p.problem(f"tls hosts {bad!r} are not DNS names or one-label wildcards; ignored")
        out.append(TLS(tuple(h for h in hosts if h not in bad), secret))
    return tuple(out)


def parse_ingress(obj: object) -> tuple[Ingress | None, list[Problem]]:
    """The Ingress view; bad rules, paths, backends and TLS entries are dropped with a problem each."""
    p = Reader.of("Ingress", obj)
    annotations = p.metadata_map(obj, "annotations")
    if not p.named(is_dns_subdomain, "DNS subdomain"):
        return None, p.problems
    spec = p.mapping_at(obj, "spec")
    class_name = field(spec, "ingressClassName", "")
    from_annotation = False
    if not class_name and LEGACY_CLASS_ANNOTATION in annotations:
        class_name, from_annotation = annotations[LEGACY_CLASS_ANNOTATION], True
    if not isinstance(class_name, str):
        p.problem(f"ingressClassName {class_name!r} is not a string; ignored")
        class_name = ""
    default = field(spec, "defaultBackend")
    return Ingress(
        namespace=p.namespace,
        name=p.name,
        class_name=class_name,
        class_from_annotation=from_annotation,
        rules=_rules(p, spec),
        default_backend=_backend(p, default, "defaultBackend") if default is not None else None,
        tls=_tls(p, spec),
        annotations=tuple(sorted(annotations.items())),
        created=timestamp(field(field(obj, "metadata"), "creationTimestamp")),
        uid=str(field(field(obj, "metadata"), "uid", "") or ""),
    ), p.problems


# --- Secret --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TLSSecret:
    """A certificate chain and its key, re-encoded from the parsed objects (never the raw bytes)."""

    namespace: str
    name: str
    cert_pem: bytes
    key_pem: bytes
    dns_names: tuple[str, ...]  # SAN DNS names (or the CN without SANs), lower case
    not_after: str  # RFC 3339 UTC

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def covers(self, host: str) -> bool:
        """Whether the certificate is valid for `host` (a wildcard host needs the same wildcard name)."""
        return host in self.dns_names or any(host_matches(name, host) for name in self.dns_names)


def _secret_bytes(p: Reader, obj: object, item: str) -> bytes | None:
    data, plain = field(obj, "data", {}), field(obj, "stringData", {})
    if isinstance(plain, Mapping) and isinstance(plain.get(item), str):
        return plain[item].encode()
    value = data.get(item) if isinstance(data, Mapping) else None
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        p.problem(f"{item} is not valid base64")
        return None


def _names(cert: x509.Certificate) -> tuple[str, ...]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = san.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        names = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    return tuple(sorted({n.lower() for n in names if is_host(n.lower())}))


def parse_tls_secret(obj: object) -> tuple[TLSSecret | None, list[Problem]]:
    """A TLS Secret's view; (None, []) for Secrets that hold no certificate, as most Secrets do."""
    p = Reader.of("Secret", obj)
    is_tls = field(obj, "type") == "kubernetes.io/tls"
    if not p.named(is_dns_subdomain, "DNS subdomain"):
        return None, p.problems if is_tls else []
    cert_raw, key_raw = _secret_bytes(p, obj, "tls.crt"), _secret_bytes(p, obj, "tls.key")
    if cert_raw is None and key_raw is None and not is_tls:
        return None, p.problems
    if not cert_raw or not key_raw:
        if not p.problems:
            p.problem("tls.crt or tls.key is missing")
        return None, p.problems
    try:
        chain = x509.load_pem_x509_certificates(cert_raw)
    except ValueError:
        p.problem("tls.crt is not a PEM certificate chain")
        return None, p.problems
    try:
        key = serialization.load_pem_private_key(key_raw, password=None)
    except (ValueError, TypeError):
        p.problem("tls.key is not an unencrypted PEM private key")
        return None, p.problems
    pub = serialization.PublicFormat.SubjectPublicKeyInfo
    if chain[0].public_key().public_bytes(serialization.Encoding.PEM, pub) != key.public_key().public_bytes(
            serialization.Encoding.PEM, pub):
        p.problem("tls.key does not match the certificate in tls.crt")
        return None, p.problems
    return TLSSecret(
        namespace=p.namespace,
        name=p.name,
        cert_pem=b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain),
        key_pem=key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()),
        dns_names=_names(chain[0]),
        not_after=chain[0].not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
    ), p.problems
