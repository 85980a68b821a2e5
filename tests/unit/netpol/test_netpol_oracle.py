"""Generated clusters: `explain` must agree with an independent oracle, and nft must accept the rulesets.

The oracle below is a direct reading of the networking.k8s.io/v1 API documentation, working on the raw
API dicts; it shares no code with the compiler. Every (src, dst, port, protocol) of a small universe is
compared, including which policy rules allow the traffic.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from operators.netpol.compiler import Compiler, compile_node
from operators.netpol.explain import explain_views
from operators.netpol.inputs import parse_objects
from operators.netpol.nftables import RenderOptions
from operators.netpol.offline import render

Obj = dict[str, Any]
NAMESPACES = ("a", "b")
N_PODS = 4
EXTERNAL = "10.0.1.1"
PORTS = (53, 80, 81)
PROTOCOLS = ("TCP", "UDP", "SCTP")
PORT_NAMES = ("web", "dns", "nope")
CIDRS = ("10.0.0.0/24", "10.0.0.0/30", "10.0.0.2/31", "10.0.0.4/32", "0.0.0.0/0", "10.0.1.0/24")


def pod_ip(i: int) -> str:
    return f"10.0.0.{i + 1}"


# ---- the oracle: the spec, read literally, on raw API dicts -------------------------------------------


def labels_match(selector: Obj, labels: dict[str, str]) -> bool:
    """LabelSelector: matchLabels and every matchExpression must hold; {} matches everything."""
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in selector.get("matchExpressions") or []:
        op, key, values = e["operator"], e["key"], e.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def ns_labels(world: Obj, ns: str) -> dict[str, str]:
    return {**world["ns_labels"][ns], "kubernetes.io/metadata.name": ns}


def policy_types(spec: Obj) -> list[str]:
    """policyTypes as given; if unset, Ingress always and Egress when egress rules are present."""
    if spec.get("policyTypes"):
        return spec["policyTypes"]
    return ["Ingress", "Egress"] if spec.get("egress") else ["Ingress"]


def peer_matches(world: Obj, policy: Obj, peer: Obj, other: Obj | None, other_ip: str) -> bool:
    """A NetworkPolicyPeer against the other end of the connection (a pod dict, or None outside)."""
    if "ipBlock" in peer:
        block = peer["ipBlock"]
        ip = ipaddress.ip_address(other_ip)
        inside = ip in ipaddress.ip_network(block["cidr"])
        return inside and not any(ip in ipaddress.ip_network(e) for e in block.get("except") or [])
    if other is None:
        return False
    if "namespaceSelector" in peer:
        ns_ok = labels_match(peer["namespaceSelector"], ns_labels(world, other["ns"]))
    else:
        ns_ok = other["ns"] == policy["metadata"]["namespace"]
    pod_ok = "podSelector" not in peer or labels_match(peer["podSelector"], other["labels"])
    return ns_ok and pod_ok


def port_matches(rule_ports: list[Obj] | None, dst: Obj | None, port: int, proto: str) -> bool:
    """NetworkPolicyPort: named ports are looked up on the destination pod of the connection."""
    if not rule_ports:
        return True
    for p in rule_ports:
        if p.get("protocol", "TCP") != proto:
            continue
        want = p.get("port")
        if want is None:
            return True
        if isinstance(want, int) and (want == port or (p.get("endPort") and want <= port <= p["endPort"])):
            return True
        if isinstance(want, str) and dst is not None and (want, port, proto) in dst["ports"]:
            return True
    return False


def oracle_side(
    world: Obj, direction: str, me: Obj | None, other: Obj | None, other_ip: str, dst, port, proto
):
    """(isolated, allowing (policy, index) pairs) for `me` in one direction."""
    if me is None:
        return False, set()
    kind, peers_key = ("Ingress", "from") if direction == "ingress" else ("Egress", "to")
    isolated, allowing = False, set()
    for pol in world["policies"]:
        spec = pol["spec"]
        if pol["metadata"]["namespace"] != me["ns"] or not labels_match(spec["podSelector"], me["labels"]):
            continue
        if kind not in policy_types(spec):
            continue
        isolated = True
        for i, rule in enumerate(spec.get(direction) or []):
            peers = rule.get(peers_key)
            peer_ok = not peers or any(peer_matches(world, pol, pr, other, other_ip) for pr in peers)
            if peer_ok and port_matches(rule.get("ports"), dst, port, proto):
                allowing.add((f"{pol['metadata']['namespace']}/{pol['metadata']['name']}", i))
    return isolated, allowing


# ---- generation -------------------------------------------------------------------------------------

label_sets = st.dictionaries(st.sampled_from(["app", "tier"]), st.sampled_from(["x", "y"]), max_size=2)
expressions = st.lists(
    st.one_of(
        st.builds(
            lambda k, op, vs: {"key": k, "operator": op, "values": vs},
            st.sampled_from(["app", "tier", "team"]),
            st.sampled_from(["In", "NotIn"]),
            st.lists(st.sampled_from(["x", "y", "a", "b"]), min_size=1, max_size=2, unique=True),
        ),
        st.builds(
            lambda k, op: {"key": k, "operator": op},
            st.sampled_from(["app", "tier", "team"]),
            st.sampled_from(["Exists", "DoesNotExist"]),
        ),
    ),
    max_size=2,
)


@st.composite
def selectors(draw: st.DrawFn) -> Obj:
    out: Obj = {}
    if draw(st.booleans()):
        out["matchLabels"] = draw(
            st.dictionaries(
                st.sampled_from(["app", "tier", "team"]), st.sampled_from(["x", "y", "a"]), max_size=2
            )
        )
    if draw(st.booleans()):
        out["matchExpressions"] = draw(expressions)
    return out


@st.composite
def peers(draw: st.DrawFn) -> Obj:
    kind = draw(st.sampled_from(["ipBlock", "pod", "ns", "both"]))
    if kind == "ipBlock":
        cidr = draw(st.sampled_from(CIDRS))
        net = ipaddress.ip_network(cidr)
        inner = [
            c for c in CIDRS if ipaddress.ip_network(c) != net and ipaddress.ip_network(c).subnet_of(net)
        ]
        block: Obj = {"cidr": cidr}
        if inner and draw(st.booleans()):
            block["except"] = draw(st.lists(st.sampled_from(inner), min_size=1, max_size=2, unique=True))
        return {"ipBlock": block}
    out: Obj = {}
    if kind in ("pod", "both"):
        out["podSelector"] = draw(selectors())
    if kind in ("ns", "both"):
        out["namespaceSelector"] = draw(selectors())
    return out


@st.composite
def policy_ports(draw: st.DrawFn) -> Obj:
    out: Obj = {}
    if draw(st.booleans()):
        out["protocol"] = draw(st.sampled_from(PROTOCOLS))
    kind = draw(st.sampled_from(["none", "number", "range", "name"]))
    if kind in ("number", "range"):
        out["port"] = draw(st.sampled_from(PORTS))
        if kind == "range":
            out["endPort"] = out["port"] + draw(st.integers(0, 30))
    elif kind == "name":
        out["port"] = draw(st.sampled_from(PORT_NAMES))
    return out


@st.composite
def rules(draw: st.DrawFn, peers_key: str) -> Obj:
    out: Obj = {}
    peer_list = draw(st.one_of(st.none(), st.lists(peers(), max_size=2)))
    if peer_list is not None:
        out[peers_key] = peer_list
    port_list = draw(st.one_of(st.none(), st.lists(policy_ports(), max_size=2)))
    if port_list is not None:
        out["ports"] = port_list
    return out


@st.composite
def policies(draw: st.DrawFn, index: int) -> Obj:
    spec: Obj = {"podSelector": draw(selectors())}
    types = draw(st.sampled_from([None, ["Ingress"], ["Egress"], ["Ingress", "Egress"]]))
    if types:
        spec["policyTypes"] = types
    for direction, key in (("ingress", "from"), ("egress", "to")):
        if draw(st.booleans()):
            spec[direction] = draw(st.lists(rules(key), max_size=3))
    ns = draw(st.sampled_from(NAMESPACES))
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"namespace": ns, "name": f"pol-{index}"},
        "spec": spec,
    }


container_ports = st.lists(
    st.tuples(st.sampled_from(["web", "dns"]), st.sampled_from(PORTS), st.sampled_from(PROTOCOLS)),
    max_size=2,
    unique_by=lambda c: (c[0], c[2]),
)


@st.composite
def worlds(draw: st.DrawFn) -> Obj:
    pods = [
        {
            "ns": draw(st.sampled_from(NAMESPACES)),
            "name": f"p{i}",
            "labels": draw(label_sets),
            "ports": draw(container_ports),
            "node": draw(st.sampled_from(["n1", "n2"])),
        }
        for i in range(N_PODS)
    ]
    ns_label_sets = {
        ns: draw(st.dictionaries(st.just("team"), st.sampled_from(["a", "b"]))) for ns in NAMESPACES
    }
    n_policies = draw(st.integers(0, 4))
    return {
        "pods": pods,
        "ns_labels": ns_label_sets,
        "policies": [draw(policies(i)) for i in range(n_policies)],
    }


def to_objects(world: Obj) -> list[Obj]:
    objs: list[Obj] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": labels}}
        for ns, labels in world["ns_labels"].items()
    ]
    for i, p in enumerate(world["pods"]):
        ports = [{"name": n, "containerPort": num, "protocol": proto} for n, num, proto in p["ports"]]
        objs.append(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"namespace": p["ns"], "name": p["name"], "labels": p["labels"]},
                "spec": {"nodeName": p["node"], "containers": [{"name": "c", "ports": ports}]},
                "status": {"phase": "Running", "podIPs": [{"ip": pod_ip(i)}]},
            }
        )
    return objs + world["policies"]


# ---- the properties ---------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(worlds())
def test_explain_agrees_with_the_oracle(world: Obj) -> None:
    inputs = parse_objects(to_objects(world))
    assert not inputs.problems, inputs.problems  # generated input is valid, so the two must agree
    pods = {pod_ip(i): p for i, p in enumerate(world["pods"])}
    endpoints = [*(f"{p['ns']}/{p['name']}" for p in world["pods"]), EXTERNAL]
    ips = [*pods, EXTERNAL]
    for src, src_ip in zip(endpoints, ips, strict=True):
        for dst, dst_ip in zip(endpoints, ips, strict=True):
            s, d = pods.get(src_ip), pods.get(dst_ip)
            for port in PORTS:
                for proto in PROTOCOLS:
                    v = explain_views(inputs.policies, inputs.pods, inputs.namespaces, src, dst, port, proto)
                    e_iso, e_allow = oracle_side(world, "egress", s, d, dst_ip, d, port, proto)
                    i_iso, i_allow = oracle_side(world, "ingress", d, s, src_ip, d, port, proto)
                    where = f"{src} -> {dst} {port}/{proto}"
                    assert (v.egress.isolated, set(v.egress.allowed_by)) == (e_iso, e_allow), where
                    assert (v.ingress.isolated, set(v.ingress.allowed_by)) == (i_iso, i_allow), where
                    want = (not e_iso or bool(e_allow)) and (not i_iso or bool(i_allow))
                    assert v.allowed == want, where


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(worlds(), st.booleans())
def test_generated_rulesets_are_accepted_by_nft(nft_check, tmp_path, world: Obj, options: bool) -> None:
    opts = RenderOptions(
        log_drops=options, counters=options, isolate_unprogrammed=options, filter_node_traffic=options
    )
    objects = to_objects(world)
    objects.append(
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": "n1"},
            "spec": {"podCIDRs": ["10.0.0.0/24"]},
        }
    )
    text, problems = render(objects, "n1", opts)
    assert all("named port" in p for p in problems), problems  # the only warning valid input can give
    path = tmp_path / "ruleset.nft"
    path.write_text(text)
    assert nft_check([path]) == [], text


@st.composite
def histories(draw: st.DrawFn) -> list[Obj]:
    """A world, then edits of it: a pod's labels, a namespace's labels, the policies, or a new world."""
    out = [draw(worlds())]
    for _ in range(draw(st.integers(1, 4))):
        world = {**out[-1], "pods": [dict(p) for p in out[-1]["pods"]], "ns_labels": dict(out[-1]["ns_labels"])}
        edit = draw(st.sampled_from(["pod", "pod", "pod", "namespace", "policies", "world"]))
        if edit == "pod":
            world["pods"][draw(st.integers(0, N_PODS - 1))]["labels"] = draw(label_sets)
        elif edit == "namespace":
            world["ns_labels"][draw(st.sampled_from(NAMESPACES))] = {"team": draw(st.sampled_from(["a", "b"]))}
        elif edit == "policies":
            world["policies"] = [draw(policies(i)) for i in range(draw(st.integers(0, 4)))]
        else:
            world = draw(worlds())
        out.append(world)
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories())
def test_a_kept_compiler_gives_what_a_fresh_one_gives(history: list[Obj]) -> None:
    kept = Compiler()
    for world in history:
        inputs = parse_objects(to_objects(world))
        for node in ("n1", "n2"):
            fresh = compile_node(inputs.policies, inputs.pods, inputs.namespaces, node)
            assert compile_node(inputs.policies, inputs.pods, inputs.namespaces, node, compiler=kept) == fresh


def test_a_kept_compiler_follows_peers_that_change() -> None:
    """The edits that leave a kept peer set stale unless the compiler notices them, one after another."""
    peers = [{"podSelector": {"matchLabels": {"app": "x"}}},
             {"namespaceSelector": {"matchLabels": {"team": "a"}}, "podSelector": {}}]
    policy = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
              "metadata": {"namespace": "a", "name": "p"},
              "spec": {"podSelector": {}, "ingress": [{"from": peers}]}}
    pod = {"ns": "a", "name": "p0", "labels": {}, "ports": [], "node": "n1"}
    peer = {"ns": "a", "name": "p1", "labels": {"app": "x"}, "ports": [], "node": "n2"}
    other = {"ns": "b", "name": "p2", "labels": {}, "ports": [], "node": "n2"}
    steps = [([pod, other, peer], {}), ([pod, other, {**peer, "labels": {"app": "y"}}], {}),  # label gone
             ([pod, other, peer], {}), ([pod, other], {}),  # back, then the pod gone (addresses by position)
             ([pod, other], {"b": {"team": "a"}}), ([pod, other], {"b": {}})]  # b's pods come in, go out
    kept, models = Compiler(), set()
    for pods, ns_labels in steps:
        inputs = parse_objects(to_objects({"pods": pods, "ns_labels": {"a": {}, "b": {}, **ns_labels},
                                           "policies": [policy]}))
        fresh = compile_node(inputs.policies, inputs.pods, inputs.namespaces, "n1")
        assert compile_node(inputs.policies, inputs.pods, inputs.namespaces, "n1", compiler=kept) == fresh
        models.add(fresh)
    assert len(models) >= 3  # the steps really change the peers
