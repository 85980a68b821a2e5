"""From the applied ruleset to a new one in a transaction that touches only what changed.

Replacing the whole table costs nft time in proportion to the ruleset (all peer sets of every policy),
while a label change or a new pod usually changes one map element, one set or one chain. Both texts
are what `render_nftables` wrote; its blocks (`set`, `map`, `chain`, `counter` inside the table) are
compared by name:

- changed contents: `flush` it, then declare it again with its new body (nft adds the elements or
  rules to the existing object; its declaration line must be the same, see below);
- new: declared; removed: `delete`d at the end, after the flushes that dropped every reference to it,
  in the reverse of the rendered order (the renderer declares what is used before its users);
- unchanged: not touched, so its counters and the kernel's objects stay as they are.

nft ignores a changed comment on an existing object and refuses a changed type, so when anything
besides a set's or map's elements or a chain's rules differs (or the table's own lines), there is no
update: the caller replaces the table. The result is one `nft -f` transaction, atomic like the full one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_OPEN = re.compile(r"^\t(set|map|chain) (\S+) \{$")
_COUNTER = re.compile(r"^\tcounter (\S+) \{.*\}$")


@dataclass(frozen=True)
class Block:
    kind: str  # set, map, chain, counter
    name: str
    lines: tuple[str, ...]  # the whole declaration, as rendered

    @property
    def header(self) -> tuple[str, ...]:
        """The lines nft cannot change on an existing object: all but elements (sets, maps) or rules."""
        if self.kind == "counter":
            return self.lines
        if self.kind == "chain":
            return tuple(line for line in self.lines if not line.startswith("\t\t") or
                         line.startswith(("\t\tcomment ", "\t\ttype ")))
        return tuple(line for line in self.lines if not line.startswith(("\t\telements = ", "\t\t      ")))


@dataclass(frozen=True)
class Ruleset:
    table: str  # `inet knet-netpol`
    own: tuple[str, ...]  # the table's own lines (its comment)
    blocks: dict[tuple[str, str], Block]  # in rendered order


def parse(text: str) -> Ruleset:
    """The blocks of a rendered table; lines before `table ... {` (comments, add/delete table) are skipped."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("table ") and line.endswith(" {"))
    table = lines[start].removeprefix("table ").removesuffix(" {")
    own: list[str] = []
    blocks: dict[tuple[str, str], Block] = {}
    i = start + 1
    while i < len(lines) and lines[i] != "}":
        line = lines[i]
        if m := _OPEN.match(line):
            end = lines.index("\t}", i)
            blocks[m.group(1), m.group(2)] = Block(m.group(1), m.group(2), tuple(lines[i:end + 1]))
            i = end + 1
            continue
        if m := _COUNTER.match(line):
            blocks["counter", m.group(1)] = Block("counter", m.group(1), (line,))
        else:
            own.append(line)
        i += 1
    return Ruleset(table, tuple(own), blocks)


@dataclass(frozen=True)
class Update:
    text: str  # for `nft -f`
    kept: frozenset[tuple[str, str]]  # blocks left untouched (their counters keep counting)


def update(old_text: str, new_text: str) -> Update | None:
    """The transaction from `old_text` (applied) to `new_text`, or None when the table must be replaced."""
    old, new = parse(old_text), parse(new_text)
    if old.table != new.table or old.own != new.own:
        return None
    changed = [k for k, b in new.blocks.items() if k in old.blocks and old.blocks[k].lines != b.lines]
    if any(old.blocks[k].header != new.blocks[k].header for k in changed):
        return None
    added = [k for k in new.blocks if k not in old.blocks]
    removed = [k for k in old.blocks if k not in new.blocks]
    out = [f"flush {kind} {new.table} {name}" for kind, name in changed]
    declared = set(changed) | set(added)
    if declared:
        out.append(f"table {new.table} {{")
        out += [line for k, b in new.blocks.items() if k in declared for line in b.lines]
        out.append("}")
    out += [f"delete {kind} {old.table} {name}" for kind, name in reversed(removed)]  # users before what they use
    kept = frozenset(new.blocks) - declared
    return Update("\n".join([*out, ""]) if out else "", kept)
