"""Each component's chart roles grant nothing its code does not call the API for (see `api_calls`): a
grant the code cannot be using is a permission an attacker who takes the pod gets for free."""

from __future__ import annotations

from functools import cache
from typing import Any

import pytest
from api_calls import used_resources
from chart_helpers import VARIANTS, docs, template, variant_args

# The command each component's pods run (chart: `knet <component>`).
ENTRIES = {"agent": "operators.agent.cli", "controller": "operators.controller.cli", "dns": "operators.dns.cli",
           "ingress": "operators.ingress.cli"}
# What Kopf itself reads: it scans CRDs to notice knet's being installed later.
KOPF = {"customresourcedefinitions"}


@cache
def rendered() -> list[dict[str, Any]]:
    """The objects of every documented variant of the chart."""
    return [o for variant in VARIANTS for o in docs(template(*variant_args(variant)))]


def granted(objs: list[dict[str, Any]], component: str) -> set[str]:
    """The resources of every (Cluster)Role bound to the component's ServiceAccount."""
    account = f"knet-{component}"
    roles = {b["roleRef"]["name"] for b in objs if b["kind"] in ("ClusterRoleBinding", "RoleBinding")
             and any(s.get("name") == account for s in b["subjects"])}
    return {r for o in objs if o["kind"] in ("ClusterRole", "Role") and o["metadata"]["name"] in roles
            for rule in o["rules"] for r in rule["resources"]}


@pytest.mark.parametrize("component", sorted(ENTRIES))
def test_every_granted_resource_is_one_the_code_uses(component: str) -> None:
    unused = granted(rendered(), component) - used_resources(ENTRIES[component]) - KOPF
    assert not unused, f"knet-{component} is granted {sorted(unused)}, which its code never calls the API for"


def test_the_scan_sees_client_calls_and_kopf_watches() -> None:
    used = used_resources("operators.controller.operator")
    assert {"services", "services/status", "dnsconfigs/status", "configmaps", "events"} <= used


def test_the_scan_sees_the_gateway_api_status_writes() -> None:
    used = used_resources("operators.ingress.operator")
    assert {"gateways", "httproutes", "referencegrants", "namespaces", "gatewayclasses/status", "gateways/status",
            "httproutes/status"} <= used
