"""The per-cluster record (`cluster.json`) that lets every command find a running cluster's layout."""

from __future__ import annotations

import dataclasses
import json

from .layout import Layout, state_root


def save_layout(layout: Layout) -> None:
    layout.dir.mkdir(parents=True, exist_ok=True)
    (layout.dir / "cluster.json").write_text(json.dumps(dataclasses.asdict(layout), indent=1))


def load_layout(name: str) -> Layout:
    """The saved layout of cluster `name`; FileNotFoundError when there is none."""
    data = json.loads((state_root() / name / "cluster.json").read_text())
    return Layout(**data)


def used_indexes() -> set[int]:
    root = state_root()
    if not root.exists():
        return set()
    out = set()
    for f in root.glob("*/cluster.json"):
        try:
            out.add(int(json.loads(f.read_text())["index"]))
        except (OSError, ValueError, KeyError):
            continue
    return out


def new_layout(name: str, nodes: int, dual_stack: bool, knet_image: str = "knet") -> Layout:
    """A layout for a new cluster, on the lowest underlay index no other cluster uses."""
    used = used_indexes()
    index = next(i for i in range(256) if i not in used)
    return Layout(name=name, index=index, nodes=nodes, dual_stack=dual_stack, knet_image=knet_image)
