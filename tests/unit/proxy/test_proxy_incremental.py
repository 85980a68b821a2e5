"""The agent's incremental path: model and render caches kept across syncs give exactly what a build from
scratch gives, and the chained diffs leave the kernel in the state of a full render of the last step."""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, given, settings
from proxy_kernel import nft_state, write
from proxy_strategies import CONFIG, clusters

from operators.kube import services as api
from operators.kube.objects import of_kind, parse_all
from operators.nft import table as nft_table
from operators.proxy import nftables
from operators.proxy.model import ModelCache, Progress, ProxiedPort, ProxyConfig, ProxyModel, build_model

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
LIST = "nft -j list ruleset"
Views = tuple[list[api.Service], list[api.EndpointSlice], list[api.Node]]


def _views(objects: list[dict]) -> Views:
    problems: list[api.Problem] = []
    return (parse_all(of_kind(objects, "Service", "v1"), api.parse_service, problems),
            parse_all(of_kind(objects, "EndpointSlice", "discovery.k8s.io/"), api.parse_endpoint_slice, problems),
            parse_all(of_kind(objects, "Node", "v1"), api.parse_node, problems))


def _steps(before: list[dict], after: list[dict]) -> list[Views]:
    """Snapshots sharing view objects as the agent's store does: the same object while unchanged."""
    (s1, e1, n1), (s2, e2, n2) = _views(before), _views(after)
    # Same Services, as many slices, some of them new or moved: the path that rebuilds only their Services.
    mixed = [e2[i] if i < len(e2) and i % 2 == 0 else sl for i, sl in enumerate(e1)]
    return [(s1, e1, n1), (s1, mixed, n1), (s1, mixed[::-1], n1), (s1, e2, n1), (s2, e2, n2), (s2[1:], e2, n2),
            (s2[1:], e1, n2), (s2, e2, n2)]


def _config(step: int) -> ProxyConfig:
    # One step changes what every port's rules depend on, another which externalIPs are allowed.
    ranges = () if step == 3 else tuple(CONFIG["externalIPRanges"])
    return ProxyConfig(masquerade_all=step == 6, external_ip_ranges=ranges)


@SETTINGS
@given(before=clusters(), after=clusters())
def test_cached_builds_equal_fresh_builds(before, after) -> None:
    model_cache, render_cache = ModelCache(), nftables.RenderCache()
    for i, (svcs, slices, nodes) in enumerate(_steps(before, after)):
        cached = build_model(svcs, slices, nodes, "node-a", _config(i), model_cache)
        fresh = build_model(svcs, slices, nodes, "node-a", _config(i))
        assert cached == fresh
        pieces: list[str] = []  # what a full sync streams to nft, table by table
        rules = nftables.build_ruleset(cached[0], render_cache, pieces.append)
        assert rules.full() == nftables.render_full(fresh[0])
        assert sorted(pieces) == sorted([t.delete() for t in rules.absent] + [t.full() for t in rules.tables])


@SETTINGS
@given(before=clusters(), after=clusters())
def test_streamed_full_builds_equal_fresh_builds(before, after) -> None:
    """The agent's full sync renders each shard as `build_model` hands out its ports (every other step
    here; the others take the cached path between them, as the agent's incremental syncs do)."""
    model_cache, render_cache = ModelCache(), nftables.RenderCache()
    for i, (svcs, slices, nodes) in enumerate(_steps(before, after)):
        fresh = build_model(svcs, slices, nodes, "node-a", _config(i))
        halves: list[tuple[int, tuple[ProxiedPort, ...]]] = []  # two groups: several Services in each
        assert build_model(svcs, slices, nodes, "node-a", _config(i), progress=Progress(
            2, lambda _, name: len(name) % 2, lambda g, _, ports: halves.append((g, ports)))) == fresh  # noqa: B023
        assert halves == [(g, tuple(p for p in fresh[0].ports if len(p.name) % 2 == g)) for g in (0, 1)]
        if i % 2:
            cached = build_model(svcs, slices, nodes, "node-a", _config(i), model_cache)
            assert cached == fresh
            assert nftables.build_ruleset(cached[0], render_cache).full() == nftables.render_full(fresh[0])
            continue
        stream = _Streamed(render_cache)
        streamed = build_model(svcs, slices, nodes, "node-a", _config(i), model_cache, stream.progress)
        assert streamed == fresh
        model = streamed[0]
        assert stream.shards == [(k, tuple(p for p in model.ports if nftables.shard_of(p.namespace, p.name) == k))
                                 for k in range(nftables.SHARDS)]
        rules = stream.build.finish(model)
        assert rules.full() == nftables.render_full(fresh[0])
        assert sorted(stream.pieces) == sorted([t.delete() for t in rules.absent] + [t.full() for t in rules.tables])


class _Streamed:
    """The agent's full sync without nft: each shard rendered as soon as `build_model` hands it out."""

    def __init__(self, cache: nftables.RenderCache) -> None:
        self.pieces: list[str] = []  # what would be streamed to nft, table by table
        self.shards: list[tuple[int, tuple[ProxiedPort, ...]]] = []
        self.build = nftables.FullBuild(cache, self.pieces.append)
        self.progress = Progress(nftables.SHARDS, nftables.shard_of, self.done)

    def done(self, shard: int, head: ProxyModel, ports: tuple[ProxiedPort, ...]) -> None:
        self.shards.append((shard, ports))
        self.build.shard(head, shard, ports)


@settings(SETTINGS, max_examples=15)
@given(before=clusters(), after=clusters())
def test_chained_diffs_equal_full(before, after, netns, tmp_path) -> None:
    model_cache, render_cache = ModelCache(), nftables.RenderCache()
    tables = [nftables.build_ruleset(build_model(*views, "node-a", _config(i), model_cache)[0], render_cache)
              for i, views in enumerate(_steps(before, after))]
    files = {"S0": write(tmp_path, "s0.nft", tables[0].full()), "LAST": write(tmp_path, "last.nft", tables[-1].full())}
    script = 'nft -f "$S0"; '
    for i, (old, new) in enumerate(itertools.pairwise(tables)):
        files[f"D{i}"] = write(tmp_path, f"d{i}.nft", nft_table.diff(old, new))
        script += f'nft -f "$D{i}"; '
    result = netns(f'{script}{LIST}; echo; nft -f "$LAST"; {LIST}', **files)
    assert result.returncode == 0, result.stderr
    via_diffs, via_full = result.stdout.strip().split("\n", 1)
    assert nft_state(via_diffs) == nft_state(via_full)
