"""Domain-name helpers shared by the record store, the server, the config and the Corefile renderer.

Names are handled in one canonical form: lowercase, no trailing dot, the root zone as "". Every
name that may reach a Corefile passes `normalize_name`, which admits only letters, digits, '-' and
'_' in labels, so no user string can carry Corefile syntax (spaces, braces, quotes, '#', '{$ENV}').
"""

from __future__ import annotations

import ipaddress
import re

_LABEL = re.compile(r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?")
REVERSE_V4 = "in-addr.arpa"
REVERSE_V6 = "ip6.arpa"
MAX_REVERSE_ZONES = 256  # a CIDR off an octet/nibble boundary expands to several zones


def normalize_name(value: object, *, allow_root: bool = False) -> str | None:
    """The canonical form of a domain name, or None when it is not a valid hostname-like name (whitespace
    anywhere included: a name is one token of a Corefile line)."""
    if not isinstance(value, str):
        return None
    name = value.lower()
    if name in (".", ""):
        return "" if allow_root and name == "." else None
    name = name.removesuffix(".")
    if len(name) > 253 or not all(_LABEL.fullmatch(label) for label in name.split(".")):
        return None
    return name


def in_zone(name: str, zone: str) -> bool:
    """Whether `name` is `zone` or below it (both canonical; "" is the root)."""
    return not zone or name == zone or name.endswith("." + zone)


def split(name: str) -> list[str]:
    """Labels of a canonical name (the root has none)."""
    return name.split(".") if name else []


def dashed(ip: str) -> str:
    """The label form of an address, as kube-dns and CoreDNS name endpoints without a hostname."""
    return ip.replace(".", "-").replace(":", "-")


def ip_from_dashed(label: str) -> str | None:
    """The address of a pod label like `10-244-1-5` or `fd00-10--5`, normalised; None if invalid."""
    text = label.replace("-", ".") if label.count("-") == 3 and "--" not in label else label.replace("-", ":")
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def reverse_name(ip: str) -> str:
    """`1.0.96.10.in-addr.arpa` / nibble form under ip6.arpa, canonical (no trailing dot)."""
    return ipaddress.ip_address(ip).reverse_pointer


def ip_from_reverse(name: str) -> str | None:
    """The address a complete reverse name stands for, or None (partial names, garbage)."""
    if name.endswith("." + REVERSE_V4):
        parts = name[: -len(REVERSE_V4) - 1].split(".")
        if len(parts) != 4 or not all(p.isdigit() and len(p) <= 3 for p in parts):
            return None
        text = ".".join(reversed(parts))
    elif name.endswith("." + REVERSE_V6):
        nibbles = name[: -len(REVERSE_V6) - 1].split(".")
        if len(nibbles) != 32 or not all(len(n) == 1 and n in "0123456789abcdef" for n in nibbles):
            return None
        hexa = "".join(reversed(nibbles))
        text = ":".join(hexa[i : i + 4] for i in range(0, 32, 4))
    else:
        return None
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def reverse_zones_for(value: str) -> list[str] | None:
    """Reverse zones for a zone name under in-addr.arpa/ip6.arpa or for a CIDR; None if neither.

    A CIDR off an octet (IPv4) or nibble (IPv6) boundary becomes the zones of its subnets at the
    next boundary, as CoreDNS does for server-block keys like `10.96.0.0/12`.
    """
    if "/" not in value:
        name = normalize_name(value)
        ok = name is not None and (in_zone(name, REVERSE_V4) or in_zone(name, REVERSE_V6))
        return [name] if ok and name else None
    try:
        net = ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        return None
    step = 8 if net.version == 4 else 4
    prefix = -(-net.prefixlen // step) * step
    if 2 ** (prefix - net.prefixlen) > MAX_REVERSE_ZONES:
        return None
    zones = []
    for sub in net.subnets(new_prefix=prefix):
        labels = sub.network_address.reverse_pointer.split(".")
        keep = prefix // step  # octets or nibbles that belong to the zone
        zones.append(".".join(labels[len(labels) - 2 - keep :]))
    return zones


def parse_server(value: object) -> tuple[str, int] | None:
    """`IP`, `IP:port` or `[IPv6]:port` -> (normalised IP, port); None for anything else (no names)."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            return None
        text, port_text = host, rest[1:] if rest else "53"
    elif text.count(":") == 1:
        text, port_text = text.split(":")
    else:
        port_text = "53"
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        return None
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if ip.is_unspecified or ip.is_multicast or getattr(ip, "scope_id", None):
        return None
    return str(ip), int(port_text)


def server_text(host: str, port: int) -> str:
    """`IP:port`, bracketing IPv6, as CoreDNS's forward plugin and humans write it."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
