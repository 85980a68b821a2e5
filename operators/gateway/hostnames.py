"""Gateway API hostnames: a `*.` wildcard is a suffix match over any number of labels (unlike an Ingress
host's single label), listener and route hostnames intersect, and a more specific name wins."""

from __future__ import annotations

from operators.kube.ingresses import is_host


def valid(name: str) -> bool:
    """A DNS subdomain, or `*.` and one; never an IP address (the API's rule, checked again since the
    name reaches nginx.conf)."""
    return is_host(name.lower()) and name == name.lower()


def covers(pattern: str, host: str) -> bool:
    """Whether `pattern` ("" for any) covers `host` (itself possibly a wildcard)."""
    if not pattern:
        return True
    if pattern.startswith("*."):
        return host.endswith(pattern[1:]) and len(host) > len(pattern) - 1
    return pattern == host


def intersect(listener: str, route: str) -> str | None:
    """The hostname a route serves on a listener: the more specific of the two where one covers the other."""
    if covers(listener, route):
        return route or listener
    if covers(route, listener):
        return listener
    return None


def specificity(name: str) -> tuple[int, int]:
    """Larger is more specific: exact names first, then wildcards by length, then no hostname."""
    if not name:
        return 0, 0
    return (1 if name.startswith("*.") else 2), len(name)
