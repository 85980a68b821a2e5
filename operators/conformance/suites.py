"""The suites knet runs from upstream's e2e.test: a name, the ginkgo focus, a timeout. Pure.

A suite is a focus regex over test names; conformance/skips.yaml then takes out what cannot run
here, for every suite alike. `quick` is a fixed list rather than a pattern, so that `make test` runs
the same few tests every time, whatever upstream adds.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from .skips import Skip, exact, reason_for


@dataclass(frozen=True)
class Suite:
    name: str
    focus: str  # ginkgo --focus: searched in each test's full name (RE2; the subset Python's re shares)
    timeout_minutes: int  # ginkgo --timeout for the whole run, at 2 parallel processes
    about: str

    def selects(self, name: str) -> bool:
        return re.search(self.focus, name) is not None


# A handful of fast conformance tests that knet passes, one per datapath that `make test` must never
# lose: a ClusterIP Service (the agent's nftables), a NodePort, cluster DNS (an ExternalName's CNAME,
# answered by the CoreDNS whose Corefile knet writes, reached at 10.96.0.10 through knet's own
# rules), and NetworkPolicy (upstream has no NetworkPolicy conformance test, so the smallest of
# its [Feature:NetworkPolicy] tests). The DNS conformance tests proper need an image not built here
# (skips.yaml), hence the ExternalName one.
QUICK = (
    "[sig-network] Services should serve a basic endpoint from pods [Conformance]",
    "[sig-network] Services should be able to create a functioning NodePort service [Conformance]",
    "[sig-network] Services should be able to change the type from ClusterIP to ExternalName [Conformance]",
    "[sig-network] DNS should provide DNS for services [Conformance]",
    "[sig-network] Netpol NetworkPolicy between server and client should support a 'default-deny-ingress' policy "
    "[Feature:NetworkPolicy]",
)

SUITES: dict[str, Suite] = {
    s.name: s
    for s in (
        Suite("conformance", r"\[sig-network\].*\[Conformance\]", 90, "sig-network's [Conformance] tests"),
        Suite("netpol", r"\[Feature:NetworkPolicy\]", 90, "upstream's NetworkPolicy tests"),
        Suite("services-dns", r"\[sig-network\] (Services|DNS)", 120, "every sig-network Services and DNS test"),
        Suite("quick", "|".join(f"(?:{exact(n)})" for n in QUICK), 20, "a fixed handful for make test"),
    )
}

# What `make conformance` runs, in order (quick is a subset of these).
FULL = ("conformance", "netpol", "services-dns")


@dataclass(frozen=True)
class Planned:
    name: str
    skip: Skip | None  # the skips.yaml entry that takes the test out; None: it runs


def plan(suite: Suite, names: Iterable[str], skips: list[Skip]) -> list[Planned]:
    """Which of `names` (e2e.test --list-tests) the suite selects, each with the skip that takes it out."""
    return [Planned(n, reason_for(n, skips)) for n in sorted(set(names)) if suite.selects(n)]


_LISTED = re.compile(r"^\s*\S+\.go:\d+: (.+?)\s*$")


def parse_test_list(text: str) -> list[str]:
    """Test names from `e2e.test --list-tests` ("    k8s.io/.../file.go:NN: <name>" lines)."""
    return [m.group(1) for line in text.splitlines() if (m := _LISTED.match(line))]
