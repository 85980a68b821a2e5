"""A small in-memory form of nftables tables, written either whole or as a diff against others.

The full ruleset and the incremental transaction must describe the same state. Building the table
once and deriving both texts from it makes that true by construction, and keeps the diff generic:
chains are compared by their rules, sets and maps by their declaration and their elements, named
counters by their declaration (an unchanged counter is left alone, so it keeps counting).

`full()` is one atomic transaction that replaces the table (`add` + `delete` + define, so it also
works when the table does not exist yet). Dynamic sets (ClientIP affinity) start empty again.

`Ruleset` is several such tables applied in one transaction. `diff(old, new)` skips a table that is
the same object on both sides, creates or deletes whole tables, and within a table touches only what
changed, so unchanged affinity sets keep their entries. It assumes the kernel holds exactly `old`;
the caller falls back to `full()` when the diff fails to apply. It deletes a chain in the same
transaction as the map element that pointed to it; kernels before 6.2 may refuse that (EBUSY), which
the same fallback covers. What nft cannot change on an existing object (a base chain's hook or
priority, a chain's or counter's comment, the table's comment) is never diffed: the table is replaced
(`diff_table` says None, `diff` writes the table's full text).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TypeVar

INDENT = "\t"
G = TypeVar("G")


@dataclass(frozen=True)
class Chain:
    name: str
    rules: tuple[str, ...]
    base: str = ""  # for base chains: "type nat hook prerouting priority dstnat; policy accept;"
    comment: str = ""

    def head(self) -> list[str]:
        """The statements before the rules, which nft cannot change on an existing chain."""
        return [*([self.base] if self.base else []), *([f'comment "{self.comment}"'] if self.comment else [])]


@dataclass(frozen=True)
class Counter:
    """A named counter, which rules count into with `counter name "<name>"`."""

    name: str
    comment: str = ""

    def decl(self) -> str:
        return f'{{ comment "{self.comment}"; }}' if self.comment else "{ }"


@dataclass(frozen=True)
class NftSet:
    """A named set, or a map when `type` has a `:` (then every element has a value)."""

    name: str
    type: str
    flags: tuple[str, ...] = ()
    timeout: int = 0  # seconds, for dynamic sets
    comment: str = ""
    elements: tuple[tuple[str, str], ...] = ()  # (key, value); value "" in sets
    typeof: bool = False  # `type` holds expressions (`typeof numgen random mod 1 : ip daddr . tcp dport`)

    @property
    def kind(self) -> str:
        return "map" if " : " in self.type else "set"

    def decl(self) -> list[str]:
        """The declaration statements (without elements), one per line."""
        lines = [f"{'typeof' if self.typeof else 'type'} {self.type}"]
        if self.flags:
            lines.append(f"flags {','.join(self.flags)}")
        if self.timeout:
            lines.append(f"timeout {self.timeout}s")
        if self.comment:
            lines.append(f'comment "{self.comment}"')
        return lines

    def same_decl(self, other: NftSet) -> bool:
        return self is other or self.decl() == other.decl()

    @functools.cached_property
    def members(self) -> frozenset[tuple[str, str]]:
        """The elements, for lookups: made once per set, so a diff of the next table finds it made."""
        return frozenset(self.elements)


def _element(key: str, value: str) -> str:
    return f"{key} : {value}" if value else key


@dataclass(frozen=True)
class Table:
    family: str
    name: str
    comment: str
    sets: tuple[NftSet, ...]
    chains: tuple[Chain, ...]
    # The same chains in groups that are built together (one per service port). A group that both
    # tables share as one object is unchanged, so `diff` looks only inside the others.
    groups: tuple[tuple[Chain, ...], ...] = ()
    # Likewise the elements of the sets named in `grouped_sets`, which hold nothing else: per group,
    # (set name, its (key, value) elements). An element is in such a set once however many groups give it.
    element_groups: tuple[tuple[tuple[str, tuple[tuple[str, str], ...]], ...], ...] = ()
    grouped_sets: frozenset[str] = frozenset()
    # Those of `grouped_sets` to which several groups may give the same element: an element of a changed
    # group may stay through a shared one, so `diff` compares all their elements.
    shared_sets: frozenset[str] = frozenset()
    counters: tuple[Counter, ...] = ()  # declared before the sets and chains

    @property
    def ref(self) -> str:
        return f"{self.family} {self.name}"

    def delete(self) -> str:
        """A transaction removing the table, whether or not it exists."""
        return f"add table {self.ref}\ndelete table {self.ref}\n"

    def full(self) -> str:
        """A transaction replacing whatever the table held with exactly this content."""
        i1, i2, i3 = INDENT, INDENT * 2, INDENT * 3
        out = [self.delete().rstrip("\n"), f"table {self.ref} {{", f'{i1}comment "{self.comment}"']
        for k in self.counters:
            out += ["", f"{i1}counter {k.name} {{", *([f'{i2}comment "{k.comment}"'] if k.comment else []), f"{i1}}}"]
        for s in self.sets:
            out += ["", f"{i1}{s.kind} {s.name} {{", *(i2 + line for line in s.decl())]
            if s.elements:
                items = [_element(k, v) for k, v in s.elements]
                out += [f"{i2}elements = {{", *(f"{i3}{e}," for e in items[:-1]), f"{i3}{items[-1]}"]
                out.append(f"{i2}}}")
            out.append(f"{i1}}}")
        for c in self.chains:
            out += ["", f"{i1}chain {c.name} {{", *(i2 + line for line in c.head())]
            out += [*(i2 + r for r in c.rules), f"{i1}}}"]
        out.append("}")
        return "\n".join(out) + "\n"


def _refs(chain: Chain) -> set[str]:
    """Named sets and maps a chain's rules use (`@name`)."""
    return {tok[1:] for rule in chain.rules for tok in rule.split() if tok.startswith("@")}


def _not_shared(old: tuple[G, ...], new: tuple[G, ...]) -> tuple[list[G], list[G]]:
    """The groups of each side that are not the very same object on the other side."""
    old_ids, new_ids = {id(g) for g in old}, {id(g) for g in new}
    return [g for g in old if id(g) not in new_ids], [g for g in new if id(g) not in old_ids]


def _changed_chains(old: Table, new: Table) -> tuple[tuple[Chain, ...], tuple[Chain, ...]]:
    """The chains of each table outside the groups both share: all of them unless both have groups."""
    if not (old.groups and new.groups):
        return old.chains, new.chains
    old_only, new_only = _not_shared(old.groups, new.groups)
    return tuple(c for g in old_only for c in g), tuple(c for g in new_only for c in g)


def _changed_elements(old: Table, new: Table) -> dict[str, tuple[list[tuple[str, str]], list[tuple[str, str]]]] | None:
    """Per grouped set, the elements of the old and of the new groups that are not shared by both tables
    (the only elements that can differ); None when the tables were not built in groups."""
    if not (old.element_groups and new.element_groups) or old.grouped_sets != new.grouped_sets:
        return None
    out: dict[str, tuple[list[tuple[str, str]], list[tuple[str, str]]]] = {}
    for side, groups in enumerate(_not_shared(old.element_groups, new.element_groups)):
        for g in groups:
            for name, elements in g:
                out.setdefault(name, ([], []))[side].extend(elements)
    return out


def diff_table(old: Table, new: Table) -> str | None:
    """The transaction turning `old` (what the kernel holds) into `new`; "" when they are the same, None
    when the table must be replaced instead (what differs cannot be changed on an existing object)."""
    old_c, new_c = _changed_chains(old, new)
    old_k, new_k = {k.name: k for k in old.counters}, {k.name: k for k in new.counters}
    old_heads = {c.name: c.head() for c in old_c}
    if (old.ref, old.comment) != (new.ref, new.comment) or (
        {c.name: c.base for c in old_c if c.base} != {c.name: c.base for c in new_c if c.base}
    ) or any(c.name in old_heads and old_heads[c.name] != c.head() for c in new_c) or any(
        k != new_k.get(name, k) for name, k in old_k.items()
    ):
        return None
    t = new.ref
    old_sets = {s.name: s for s in old.sets}
    new_sets = {s.name: s for s in new.sets}
    kept_sets = [s for s in new.sets if s.name in old_sets and s.same_decl(old_sets[s.name])]
    gone_sets = [s for s in old.sets if s.name not in new_sets or not s.same_decl(new_sets[s.name])]
    added_sets = [s for s in new.sets if s.name not in old_sets or not s.same_decl(old_sets[s.name])]
    gone_set_names = {s.name for s in gone_sets}
    if gone_set_names and gone_set_names - {name for c in old_c for name in _refs(c)}:
        # a set none of the changed chains used may be used by chains of unchanged groups: look at every chain
        old_c, new_c = old.chains, new.chains
    old_chains = {c.name: c for c in old_c}
    new_chains = {c.name: c for c in new_c}
    added_chains = [c for c in new_c if c.name not in old_chains]
    gone_chains = [c for c in old_c if c.name not in new_chains]
    # A chain is refilled when its rules changed, or when a set it uses is deleted and recreated.
    refill = [c for c in new_c if (o := old_chains.get(c.name)) is not None
              and ((c is not o and c.rules != o.rules) or (gone_set_names and _refs(o) & gone_set_names))]

    out = [f"add chain {t} {c.name}" + (f' {{ comment "{c.comment}"; }}' if c.comment else "") for c in added_chains]
    out += [f"add counter {t} {k.name} {k.decl()}" for name, k in new_k.items() if name not in old_k]
    out += [f"flush chain {t} {c.name}" for c in refill + gone_chains]
    adds: list[tuple[NftSet, list[tuple[str, str]]]] = []
    changed = _changed_elements(old, new)
    for s in kept_sets:
        if s is old_sets[s.name]:
            continue  # rendered once for an unchanged port and kept as it was
        if changed is not None and s.name in new.grouped_sets:
            was, now = changed.get(s.name, ((), ()))  # only elements of changed groups can differ
            if s.name in new.shared_sets:  # and another group may keep one, or have had it already
                new_all, old_all = s.members, old_sets[s.name].members
                was, now = [e for e in was if e not in new_all], [e for e in now if e not in old_all]
        else:
            was, now = old_sets[s.name].elements, s.elements
        before, after = dict(was), dict(now)
        dropped = list(dict.fromkeys(k for k, v in was if after.get(k) != v))
        added = list(dict.fromkeys((k, v) for k, v in now if before.get(k) != v))
        if dropped:
            out.append(f"delete element {t} {s.name} {{ {', '.join(dropped)} }}")
        adds.append((s, added))
    out += [f"delete {s.kind} {t} {s.name}" for s in gone_sets]
    for s in added_sets:
        out.append(f"add {s.kind} {t} {s.name} {{ {'; '.join(s.decl())}; }}")
        adds.append((s, list(s.elements)))
    for s, elements in adds:
        if elements:
            out.append(f"add element {t} {s.name} {{ {', '.join(_element(k, v) for k, v in elements)} }}")
    for c in added_chains + refill:
        out += [f"add rule {t} {c.name} {r}" for r in c.rules]
    out += [f"delete chain {t} {c.name}" for c in gone_chains]
    out += [f"delete counter {t} {name}" for name in old_k if name not in new_k]
    return "\n".join(out) + "\n" if out else ""


@dataclass(frozen=True)
class Ruleset:
    """Tables written in one transaction; `absent` are tables of ours that must not exist (`full` deletes them)."""

    tables: tuple[Table, ...]
    absent: tuple[Table, ...] = ()

    def full(self) -> str:
        """A transaction replacing all our tables with exactly these."""
        return "".join(t.delete() for t in self.absent) + "".join(t.full() for t in self.tables)

    def delete(self) -> str:
        return "".join(t.delete() for t in self.tables + self.absent)


def diff(old: Ruleset, new: Ruleset) -> str:
    """The transaction turning `old` into `new`; "" when they are the same."""
    before = {t.ref: t for t in old.tables}
    out = []
    for t in new.tables:
        o = before.pop(t.ref, None)
        if o is not t:
            step = None if o is None else diff_table(o, t)
            out.append(t.full() if step is None else step)
    out += [o.delete() for o in before.values()]
    return "".join(out)
