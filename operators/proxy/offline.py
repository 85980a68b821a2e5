"""`knet render proxy`: the rules one node would get, computed offline from objects in YAML files.

Runs exactly the code the agent runs (parse -> model -> render), so what it prints is what a node
would program. Only Services (v1), EndpointSlices (discovery.k8s.io) and Nodes are read.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from operators.kube import services as api
from operators.kube.objects import Obj, of_kind, parse_all
from operators.proxy import iptables, nftables
from operators.proxy.model import MODES, ProxyConfig, ProxyModel, Views, build_model


def model_from_objects(objects: list[Obj], node: str, config: Mapping[str, Any] | None = None,
                       ) -> tuple[ProxyModel, list[api.Problem]]:
    """Parse the objects and build the node's model; problems in object order, then the model's."""
    cfg, problems = ProxyConfig.from_dict(config)
    svcs = parse_all(of_kind(objects, "Service", "v1"), api.parse_service, problems)
    slices = parse_all(of_kind(objects, "EndpointSlice", "discovery.k8s.io/"), api.parse_endpoint_slice,
                    problems)
    nodes = parse_all(of_kind(objects, "Node", "v1"), api.parse_node, problems)
    built = build_model(Views.of(svcs, slices, nodes), node, cfg)
    return built.model, problems + list(built.problems)


def render_text(model: ProxyModel) -> str:
    """The ruleset of `model.config.mode`; in iptables mode IPv4, then IPv6 when the model has any."""
    if model.config.mode == "nftables":
        return nftables.render_full(model)
    jumps = [f"#   -t {table} -A {chain} {shlex.join(args)}" for table, chain, args in iptables.JUMPS]
    parts = ["# jumps from the built-in chains (kept in place by the agent, not part of the input):", *jumps]
    text = "\n".join(parts) + "\n" + iptables.render(model, 4)
    return text + iptables.render(model, 6) if 6 in model.families else text


def render(objects: list[dict], node: str, mode: str = "nftables",
           config: dict | None = None) -> tuple[str, list[str]]:
    """The rules text for `node` in `mode` (nftables | iptables), and the problems found."""
    if mode not in MODES:
        raise ValueError(f"unknown proxy mode {mode!r} (expected one of {', '.join(MODES)})")
    model, problems = model_from_objects(objects, node, config)
    return render_text(replace(model, config=replace(model.config, mode=mode))), [str(p) for p in problems]
