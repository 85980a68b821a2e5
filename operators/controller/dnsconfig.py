"""Which DNSConfig becomes CoreDNS's Corefile, and what each DNSConfig's status says. Pure.

The controller uses the DNSConfig named `default` (as knet dns does). A DNSConfig with any problem
(an unknown field, an entry the parser had to drop, a value replaced by its default) is not written
out at all: CoreDNS keeps the previous Corefile and the status lists the problems, because a
Corefile that silently lacks what the user asked for is worse than the old one. Without a
`default` DNSConfig the ConfigMap is left as it is (kind's own Corefile stays).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from operators.dns.config import parse_dns_config
from operators.dns.corefile import ClusterSettings, render

USED = "default"


@dataclass(frozen=True)
class Verdict:
    """A DNSConfig's Ready condition and problems."""

    ok: bool
    reason: str
    message: str
    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class Plan:
    corefile: str | None  # the Corefile to hold in the ConfigMap; None: leave it as it is
    verdicts: dict[str, Verdict]  # by DNSConfig name


def plan(configs: Mapping[str, Mapping[str, Any]], cluster: ClusterSettings | None = None) -> Plan:
    """The Corefile of the DNSConfig named default (if valid) and a verdict for every DNSConfig."""
    verdicts = {name: Verdict(False, "NotUsed", f"only the DNSConfig named {USED} is used")
                for name in configs if name != USED}
    obj = configs.get(USED)
    if obj is None:
        return Plan(None, verdicts)
    config, problems = parse_dns_config(obj)
    if problems:
        found = tuple(p.message for p in problems)
        verdicts[USED] = Verdict(False, "Invalid", f"{len(found)} problem(s); the Corefile was not changed: "
                                 + "; ".join(found), found)
        return Plan(None, verdicts)
    verdicts[USED] = Verdict(True, "Valid", "valid")
    return Plan(render(config, cluster), verdicts)
