"""The agent's incremental path: a build from the change set its store collected equals a build from
scratch, and so do the rules rendered with the render cache; the chained diffs leave the kernel in the
state of a full render of the last step.

The histories (`proxy_strategies.histories`) keep each object's uid from step to step and move
EndpointSlices between Services, so a store or a build that forgets the Service a slice left, or the
one it joined, fails here (`test_a_store_that_forgets_a_moved_slice_fails_the_property`)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from proxy_kernel import nft_state, write
from proxy_strategies import CONFIG, NODE_A, SERVICE_NAME, histories

from operators.agent.conntrack import stale_flows
from operators.agent.proxy import drive
from operators.agent.store import ProxyStore, node_entry
from operators.kube import services as api
from operators.kube.informer import Index
from operators.kube.objects import of_kind, parse_all
from operators.nft import table as nft_table
from operators.proxy import nftables
from operators.proxy.model import Build, ProxiedPort, ProxyConfig, Views, build_model, stream_model

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
LIST = "nft -j list ruleset"


def _config(step: int) -> ProxyConfig:
    # One step changes what every port's rules depend on, another which externalIPs are allowed.
    ranges = () if step == 3 else tuple(CONFIG["externalIPRanges"])
    return ProxyConfig(masquerade_all=step == 5, external_ip_ranges=ranges)


def _fresh_views(objects: list[dict]) -> Views:
    """The step's views parsed afresh, without the store: what a build from scratch reads."""
    problems: list[api.Problem] = []
    return Views.of(parse_all(of_kind(objects, "Service", "v1"), api.parse_service, problems),
                    parse_all(of_kind(objects, "EndpointSlice", "discovery.k8s.io/"), api.parse_endpoint_slice,
                              problems),
                    parse_all(of_kind(objects, "Node", "v1"), api.parse_node, problems))


class Fed:
    """A store fed as the informers feed it: each step's objects against the last step's, by uid."""

    def __init__(self, store_type: type[ProxyStore] = ProxyStore) -> None:
        self.nodes = Index(node_entry)
        self.store = store_type(self.nodes)
        self.seen: dict[str, dict[str, Any]] = {}

    def index(self, body: dict[str, Any]) -> Index:
        kind = body["kind"]
        return self.nodes if kind == "Node" else self.store.services if kind == "Service" else self.store.slices

    def step(self, objects: list[dict[str, Any]]) -> None:
        now = {o["metadata"]["uid"]: o for o in objects}
        for uid, body in self.seen.items():
            if uid not in now:
                self.index(body).handle("DELETED", body)
        for uid, body in now.items():
            if self.seen.get(uid) != body:
                self.index(body).handle("MODIFIED" if uid in self.seen else "ADDED", body)
        self.seen = now


def _builds(history: list[list[dict]], store_type: type[ProxyStore] = ProxyStore,
            ) -> Iterator[tuple[int, Build, Build, Build | None]]:
    """Per step: the build from the store's change set and the last build, a build from scratch, and the
    last build (the first step builds from scratch: the agent's first sync is full)."""
    fed, previous = Fed(store_type), None
    for i, objects in enumerate(history):
        fed.step(objects)
        changes = fed.store.take()
        built = build_model(fed.store.views(), "node-a", _config(i), previous, changes)
        yield i, built, build_model(_fresh_views(objects), "node-a", _config(i)), previous
        previous = built


def check_history(history: list[list[dict]], store_type: type[ProxyStore] = ProxyStore) -> None:
    """The property: at every step the build from the change set is the build from scratch, model and
    problems, with the counts the agent reports and the ports it announces, and the conntrack deletions
    computed from the changed Services alone are those computed from every port."""
    for _, built, fresh, previous in _builds(history, store_type):
        assert built.model == fresh.model
        assert built.problems == fresh.problems
        assert built.model.counts == fresh.model.counts
        assert built.model.balanced_ports == tuple(p for p in fresh.model.ports if p.lb_ips)
        if previous is not None and built.changed is not None:
            assert stale_flows(previous.ports_of(built.changed), built.ports_of(built.changed)) == stale_flows(
                previous.model.ports, built.model.ports)


@SETTINGS
@given(history=histories())
def test_builds_from_change_sets_equal_full_builds(history) -> None:
    check_history(history)


@SETTINGS
@given(history=histories())
def test_rules_rendered_with_the_cache_equal_a_full_render(history) -> None:
    render_cache = nftables.RenderCache()
    for _, built, fresh, _ in _builds(history):
        pieces: list[str] = []  # what a full sync streams to nft, table by table
        rules = nftables.build_ruleset(built.model, render_cache, pieces.append)
        assert rules.full() == nftables.render_full(fresh.model)
        assert sorted(pieces) == sorted([t.delete() for t in rules.absent] + [t.full() for t in rules.tables])


class _Forgets(ProxyStore):
    """Broken on purpose: a slice that moves counts for one of its two Services alone."""

    side = 0  # 0: forgets the Service the slice left, 1: the one it joined

    def _slice(self, uid: Any, old: Any, new: Any) -> None:
        before = set(self.changed_endpoints)
        super()._slice(uid, old, new)
        if old is not None and old.view is not None and new is not None and new.view is not None:
            keys = [(e.view.namespace, e.view.service_name) for e in (old, new)]
            self.changed_endpoints -= {keys[self.side]} - before - {keys[1 - self.side]}


class _ForgetsTheOldOwner(_Forgets):
    side = 0


class _ForgetsTheNewOwner(_Forgets):
    side = 1


def _moving_slice() -> list[list[dict]]:
    """Services a and b; a's slice moves to b."""
    def svc(name: str, ip: str) -> dict:
        return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default",
                                                                     "uid": f"svc-{name}"},
                "spec": {"clusterIP": ip, "clusterIPs": [ip], "ports": [{"name": "http", "port": 80}]}}

    def slice_of(service: str) -> dict:
        return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"name": "s", "namespace": "default", "uid": "slice-1",
                             "labels": {SERVICE_NAME: service}},
                "addressType": "IPv4", "ports": [{"name": "http", "port": 8080}],
                "endpoints": [{"addresses": ["10.244.1.1"], "conditions": {"ready": True}, "nodeName": "node-a"}]}

    services = [svc("a", "10.96.0.1"), svc("b", "10.96.0.2")]
    return [[*services, slice_of("a"), NODE_A], [*services, slice_of("b"), NODE_A]]


@pytest.mark.parametrize("broken", [_ForgetsTheNewOwner, _ForgetsTheOldOwner])
def test_a_store_that_forgets_a_moved_slice_fails_the_property(broken: type[ProxyStore]) -> None:
    history = _moving_slice()
    check_history(history)
    with pytest.raises(AssertionError):
        check_history(history, broken)


@SETTINGS
@given(history=histories())
def test_streamed_full_builds_equal_full_builds(history) -> None:
    """The agent's full sync renders each shard as `stream_model` yields its ports; the rest of the
    steps take the incremental path between them, as the agent's syncs do."""
    render_cache = nftables.RenderCache()
    for i, built, fresh, _ in _builds(history):
        halves: list[tuple[int, tuple[ProxiedPort, ...]]] = []  # two groups: several Services in each
        steps = stream_model(_fresh_views(history[i]), "node-a", _config(i), 2, lambda _, name: len(name) % 2)
        assert drive(steps, lambda g, out=halves: out.append((g[0], g[2]))).model == fresh.model
        assert halves == [(g, tuple(p for p in fresh.model.ports if len(p.name) % 2 == g)) for g in (0, 1)]
        if i % 2:
            assert nftables.build_ruleset(built.model, render_cache).full() == nftables.render_full(fresh.model)
            continue
        pieces: list[str] = []
        build = nftables.FullBuild(render_cache, pieces.append)
        shards: list[tuple[int, tuple[ProxiedPort, ...]]] = []

        def shard(group: Any, build: nftables.FullBuild = build, shards: list = shards) -> None:
            shards.append((group[0], group[2]))
            build.shard(group[1], group[0], group[2])

        streamed = drive(stream_model(_fresh_views(history[i]), "node-a", _config(i), nftables.SHARDS,
                                       nftables.shard_of), shard)
        assert streamed.model == fresh.model
        assert shards == [(k, tuple(p for p in fresh.model.ports if nftables.shard_of(p.namespace, p.name) == k))
                          for k in range(nftables.SHARDS)]
        rules = build.finish(streamed.model)
        assert rules.full() == nftables.render_full(fresh.model)
        assert sorted(pieces) == sorted([t.delete() for t in rules.absent] + [t.full() for t in rules.tables])


@settings(SETTINGS, max_examples=15)
@given(history=histories())
def test_chained_diffs_equal_full(history, netns, tmp_path) -> None:
    render_cache = nftables.RenderCache()
    tables = [nftables.build_ruleset(built.model, render_cache) for _, built, _, _ in _builds(history)]
    files = {"S0": write(tmp_path, "s0.nft", tables[0].full()), "LAST": write(tmp_path, "last.nft", tables[-1].full())}
    script = 'nft -f "$S0"; '
    for i, (old, new) in enumerate(itertools.pairwise(tables)):
        files[f"D{i}"] = write(tmp_path, f"d{i}.nft", nft_table.diff(old, new))
        script += f'nft -f "$D{i}"; '
    result = netns(f'{script}{LIST}; echo; nft -f "$LAST"; {LIST}', **files)
    assert result.returncode == 0, result.stderr
    via_diffs, via_full = result.stdout.strip().split("\n", 1)
    assert nft_state(via_diffs) == nft_state(via_full)
