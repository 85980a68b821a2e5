"""Offline entry points for the CLI: `knet render netpol -f objects.yaml --node NODE` and `knet explain`."""

from __future__ import annotations

from typing import Any

from operators.kube.parse import Problem
from operators.netpol.compiler import compile_node
from operators.netpol.explain import Side, Verdict
from operators.netpol.inputs import parse_objects
from operators.netpol.nftables import RenderOptions, build_table, ruleset_text
from operators.nft.table import Table


def table_of(
    objects: list[dict[str, Any]], node: str, opts: RenderOptions | None = None
) -> tuple[Table, list[Problem]]:
    """(the table `inet knet-netpol`, problems) for `node`; its pod CIDRs come from its Node object, if given."""
    inputs = parse_objects(objects)
    model = compile_node(inputs.policies, inputs.pods, inputs.namespaces, node, inputs.problems)
    return build_table(model, inputs.pod_cidrs.get(node, ()), opts), list(model.problems)


def render(
    objects: list[dict[str, Any]], node: str, opts: RenderOptions | None = None
) -> tuple[str, list[str]]:
    """(ruleset text, problems as text) for `node`: what `knet render netpol` prints."""
    table, problems = table_of(objects, node, opts)
    return ruleset_text(table, node), [str(p) for p in problems]


def _side_text(side: Side) -> str:
    head = f"{side.direction:<7} {side.endpoint}:"
    if not side.subject:
        return f"{head} not a pod on the pod network; NetworkPolicy does not apply: allowed"
    if not side.isolated:
        return f"{head} not isolated (no policy selects it for {side.direction}): allowed"
    rules = ", ".join(f"{p} {side.direction}[{i}]" for p, i in side.allowed_by)
    result = f"allowed by {rules}" if rules else "denied: no rule allows it"
    return f"{head} isolated by {', '.join(side.policies)}; {result}"


def format_verdict(v: Verdict) -> str:
    """Human-readable text of an explain verdict, one line per direction, then any problems."""
    lines = [
        f"{'ALLOWED' if v.allowed else 'DENIED'}: {v.src} -> {v.dst} {v.port}/{v.protocol}"
        f" ({v.src_ip} -> {v.dst_ip})",
        "  " + _side_text(v.egress),
        "  " + _side_text(v.ingress),
    ]
    if v.problems:
        lines += ["problems:", *(f"  {p}" for p in v.problems)]
    return "\n".join(lines) + "\n"
