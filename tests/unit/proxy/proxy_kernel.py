"""Helpers for the kernel checks: comparable views of what nft and iptables hold."""

from __future__ import annotations

import json
from pathlib import Path


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def nft_state(listing: str) -> dict:
    """`nft -j list ruleset` output without handles, with set elements sorted: comparable states, keyed by
    table and name."""
    state: dict = {"tables": set(), "chains": {}, "rules": {}, "sets": {}}
    for item in json.loads(listing)["nftables"]:
        (kind, obj), = item.items()
        obj.pop("handle", None)
        if kind == "table":
            state["tables"].add(obj["name"])
        elif kind == "chain":
            state["chains"][f"{obj['table']}/{obj['name']}"] = obj
        elif kind == "rule":
            state["rules"].setdefault(f"{obj['table']}/{obj['chain']}", []).append(json.dumps(obj, sort_keys=True))
        elif kind in ("set", "map"):
            obj["elem"] = sorted(json.dumps(e, sort_keys=True) for e in obj.get("elem", []))
            state["sets"][f"{obj['table']}/{obj['name']}"] = obj
    return state


def iptables_state(save: str) -> dict[str, list[str]]:
    """`iptables-save` output reduced to the KNET chains and their rules, per table."""
    state: dict[str, list[str]] = {}
    table = ""
    for line in save.splitlines():
        if line.startswith("*"):
            table = line[1:]
        elif line.startswith(":KNET-"):
            state.setdefault(f"{table} {line.split()[0][1:]}", [])
        elif line.startswith("-A KNET-"):
            state[f"{table} {line.split()[1]}"].append(line)
    return state
