"""The one way to read API dicts: `field()`, the shared validators, and a problem-collecting `Reader`.

Every view of a Kubernetes object (`operators.kube.services`, `.ingresses`, `.pods`) and of a knet
custom resource (`operators.dns.config`) is parsed with these, so that:

- a missing field, a null one and a field of something that is not a mapping all read as the
  default (`field`), so a parser can walk a malformed object without a check at every step;
- parsing never raises: a bad part is reported as a `Problem` naming the object, then dropped or
  replaced by its default, so one odd object (or field) never stops the others;
- every string that may later reach a ruleset, nginx.conf or a Corefile passes one validator here.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from socket import AF_INET, inet_pton
from typing import Any, TypeVar

T = TypeVar("T")
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

PROTOCOLS = ("TCP", "UDP", "SCTP")
UNSPECIFIED_V4 = bytes(4)

_LABEL = r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"
_DNS_LABEL = re.compile(_LABEL)
_DNS_SUBDOMAIN = re.compile(rf"(?=.{{1,253}}\Z){_LABEL}(\.{_LABEL})*")


@dataclass(frozen=True)
class Problem:
    """Something wrong with one object, worth an Event on it; the rest of the object may still be used."""

    kind: str
    namespace: str
    name: str
    message: str

    def __str__(self) -> str:
        ref = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.kind} {ref}: {self.message}"


# --- validators ----------------------------------------------------------------------------------


def timestamp(value: object) -> str:
    """RFC 3339 in UTC with second precision (sortable as text); "" when absent or unreadable."""
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return ""
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return ""


def is_dns_label(value: object) -> bool:
    """RFC 1123 label: what namespaces, Service names and port names must be (no trailing newline)."""
    return isinstance(value, str) and _DNS_LABEL.fullmatch(value) is not None


def is_dns_subdomain(value: object) -> bool:
    """RFC 1123 subdomain of labels of at most 63 characters: Secret names, Ingress hosts, policy names."""
    return isinstance(value, str) and _DNS_SUBDOMAIN.fullmatch(value) is not None


def is_port(value: object) -> bool:
    """A port number, 1-65535 (a bool is not a number, although Python says it is an int)."""
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 65535


def _unicast_v4(value: str) -> bytes | None:
    """An IPv4 address's four bytes when it is a usable unicast address in canonical form (inet_pton takes
    nothing else, as strict as ipaddress and faster: a full sync parses every endpoint); not unspecified
    (0.0.0.0), loopback (127/8) or multicast (224/4)."""
    try:
        packed = inet_pton(AF_INET, value)
    except OSError:
        return None
    return None if packed == UNSPECIFIED_V4 or packed[0] == 127 or 224 <= packed[0] <= 239 else packed


def parse_ip(value: object) -> IPAddress | None:
    """A normalised unicast address, or None (no zone ids, no unspecified/loopback/multicast)."""
    if not isinstance(value, str):
        return None
    if ":" not in value:
        packed = _unicast_v4(value)
        return None if packed is None else ipaddress.IPv4Address(packed)
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        return None
    if getattr(ip, "scope_id", None) or ip.is_unspecified or ip.is_loopback or ip.is_multicast:
        return None
    return ip


def parse_cidr(value: object) -> Network | None:
    """A normalised network (host bits cleared, as Go's ParseCIDR does), or None; no zone ids."""
    if not isinstance(value, str) or "%" in value:
        return None
    try:
        return ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        return None


def _ip_text(value: object) -> str | None:
    """`parse_ip` as text. IPv4 (every endpoint of a full sync) needs no address object: its accepted
    text is already the normalised one."""
    if type(value) is str and ":" not in value:
        return value if _unicast_v4(value) is not None else None
    ip = parse_ip(value)
    return None if ip is None else str(ip)


def cidr_text(value: object) -> str | None:
    """A CIDR in its normalised text form (`parse_cidr`), or None."""
    net = parse_cidr(value)
    return None if net is None else str(net)


# --- field ---------------------------------------------------------------------------------------


def field(obj: object, key: str, default: Any = None) -> Any:
    """`obj[key]` of an object as the API serves it (camelCase JSON); `default` when it is missing or null,
    or when `obj` is not a mapping at all."""
    if type(obj) is not dict and not isinstance(obj, Mapping):  # `type` first: the ABC check is slow
        return default
    value = obj.get(key)
    return default if value is None else value


# --- Reader --------------------------------------------------------------------------------------


class Reader:
    """Reads the parts of one object, collecting a `Problem` that names the object for each bad part.

    The typed getters never raise: they return what is usable (or the default) and report the rest.
    `mapping`/`array` check a value already read; `mapping_at`/`array_at` read `field(obj, key)` first.
    """

    __slots__ = ("kind", "name", "namespace", "problems")

    def __init__(self, kind: str, name: object, namespace: object = None) -> None:
        self.kind = kind
        self.name = name
        self.namespace = namespace  # None: a cluster-scoped object
        self.problems: list[Problem] = []

    @classmethod
    def of(cls, kind: str, obj: object, namespaced: bool = True) -> Reader:
        """A reader named after `obj`'s metadata; a namespaced object without a namespace is in `default`."""
        md = field(obj, "metadata")
        return cls(kind, field(md, "name", ""), field(md, "namespace", "default") if namespaced else None)

    def problem(self, message: str) -> None:
        name = self.name if isinstance(self.name, str) else repr(self.name)
        ns = self.namespace if isinstance(self.namespace, str) else "" if self.namespace is None else repr(
            self.namespace)
        self.problems.append(Problem(self.kind, ns, name, message))

    def named(self, valid: Callable[[object], bool], rule: str) -> bool:
        """Whether namespace and name are safe to use at all (they end up in rule names and comments)."""
        if not valid(self.name):
            self.problem(f"name is not a valid {rule}; object skipped")
        elif self.namespace is not None and not is_dns_label(self.namespace):
            self.problem("namespace is not a valid DNS label; object skipped")
        else:
            return True
        return False

    def mapping(self, value: object, what: str) -> dict[str, Any]:
        """`value` as a dict (a dict itself, not a copy: parsers only read it)."""
        if type(value) is dict:
            return value  # type: ignore[return-value]
        if isinstance(value, Mapping):
            return dict(value)
        if value is not None:
            self.problem(f"{what} is not a mapping; ignored")
        return {}

    def mapping_at(self, obj: object, key: str) -> dict[str, Any]:
        return self.mapping(field(obj, key), key)

    def array(self, value: object, what: str) -> list[Any]:
        if isinstance(value, list):
            return value
        if value is not None:
            self.problem(f"{what} is not a list; ignored")
        return []

    def array_at(self, obj: object, key: str) -> list[Any]:
        return self.array(field(obj, key), key)

    def metadata_map(self, obj: object, key: str) -> dict[str, str]:
        """The string entries of `obj`'s `metadata.<key>` (labels, annotations); other entries are dropped."""
        raw = self.mapping(field(field(obj, "metadata"), key), key)
        return {k: v for k, v in raw.items() if isinstance(k, str) and isinstance(v, str)}

    def dns_label(self, value: object, what: str) -> str:
        """`value` if it is a DNS label, else "" (a bad one reported): hostnames, subdomains."""
        if not value:
            return ""
        if is_dns_label(value):
            return value  # type: ignore[return-value]
        self.problem(f"{what} {value!r} is not a DNS label; ignored")
        return ""

    def boolean(self, value: object, default: bool, what: str) -> bool:
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        self.problem(f"{what} {value!r} is not a boolean; using {default}")
        return default

    def number(self, value: object, default: T, low: float, high: float, what: str, kind: type = int) -> T:
        if value is None:
            return default
        ok_type = isinstance(value, int | float) if kind is float else isinstance(value, int)
        if ok_type and not isinstance(value, bool) and low <= value <= high:  # type: ignore[operator]
            return kind(value)  # type: ignore[no-any-return]
        self.problem(f"{what} {value!r} is not a number in {low}-{high}; using {default}")
        return default

    def choice(self, value: object, allowed: tuple[str, ...], default: str, what: str) -> str:
        if value is None:
            return default
        if value in allowed:
            return str(value)
        self.problem(f"{what} {value!r} is not one of {', '.join(allowed)}; using {default}")
        return default

    def port(self, value: object, what: str, allow_zero: bool = False) -> int | None:
        if is_port(value) or (allow_zero and value == 0 and type(value) is int):
            return value  # type: ignore[return-value]
        self.problem(f"{what} {value!r} is not a port number (1-65535)")
        return None

    def protocol(self, value: object, what: str) -> str | None:
        if value in PROTOCOLS:
            return str(value)
        self.problem(f"{what}: protocol {value!r} is not one of {', '.join(PROTOCOLS)}")
        return None

    def each(self, values: list[Any], convert: Callable[[Any], T | None], what: str,
             why: str = "is not valid; ignored") -> tuple[T, ...]:
        """Converted entries, without repeats; the ones that do not convert are reported and dropped."""
        out: list[T] = []
        for value in values:
            item = convert(value)
            if item is None:
                self.problem(f"{what}: {value!r} {why}")
            elif item not in out:
                out.append(item)
        return tuple(out)

    def ips(self, values: list[Any], what: str) -> tuple[str, ...]:
        """Normalised unicast addresses (`parse_ip`)."""
        return self.each(values, _ip_text, what, "is not a valid unicast IP address")

    def cidrs(self, values: list[Any], what: str) -> tuple[str, ...]:
        """Normalised networks (`parse_cidr`)."""
        return self.each(values, cidr_text, what, "is not a valid CIDR")

