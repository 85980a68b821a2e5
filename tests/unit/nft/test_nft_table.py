"""The nft table form: whole-table text, the diff between two tables and between rulesets of several."""

from __future__ import annotations

from dataclasses import replace

from operators.nft import table as nft_table
from operators.nft.table import Chain, Counter, NftSet, Ruleset, Table

BASE = Chain("nat-prerouting", ("jump services",), "type nat hook prerouting priority -100; policy accept;")
AFF = NftSet("aff", "ipv4_addr", ("dynamic", "timeout"), 60)
IPS = NftSet("ips", "ipv4_addr . inet_proto . inet_service : verdict",
             elements=(("10.0.0.1 . tcp . 80", "goto svc-a"), ("10.0.0.2 . tcp . 80", "goto svc-b")))
TABLE = Table("inet", "t", "test", (IPS, AFF), (
    BASE,
    Chain("services", ("ip daddr . meta l4proto . th dport vmap @ips",)),
    Chain("svc-a", ("ip saddr @aff goto ep-a", "goto ep-a")),
    Chain("svc-b", ("goto ep-a",)),
    Chain("ep-a", ("update @aff { ip saddr }", "dnat ip to 10.1.0.1:80")),
))


def diff(old: Table, new: Table) -> str:
    return nft_table.diff(Ruleset((old,)), Ruleset((new,)))


def test_full_text() -> None:
    text = TABLE.full()
    assert text.startswith("add table inet t\ndelete table inet t\ntable inet t {\n\tcomment \"test\"\n")
    assert "\tmap ips {\n\t\ttype ipv4_addr . inet_proto . inet_service : verdict\n\t\telements = {\n" in text
    assert "\t\t\t10.0.0.1 . tcp . 80 : goto svc-a,\n\t\t\t10.0.0.2 . tcp . 80 : goto svc-b\n" in text
    assert "\tset aff {\n\t\ttype ipv4_addr\n\t\tflags dynamic,timeout\n\t\ttimeout 60s\n\t}\n" in text
    assert TABLE.delete() == "add table inet t\ndelete table inet t\n"


def test_no_change_no_diff() -> None:
    assert diff(TABLE, TABLE) == ""


def test_base_chain_change_is_a_full_sync() -> None:
    moved = replace(BASE, base="type nat hook prerouting priority -50; policy accept;")
    new = replace(TABLE, chains=(moved, *TABLE.chains[1:]))
    assert diff(TABLE, new) == new.full()


def test_element_and_chain_changes() -> None:
    new = replace(TABLE, sets=(replace(IPS, elements=(("10.0.0.1 . tcp . 80", "goto svc-c"),)), AFF),
                  chains=(*TABLE.chains[:2], Chain("svc-c", ("goto ep-a",)), *TABLE.chains[4:]))
    assert diff(TABLE, new).splitlines() == [
        "add chain inet t svc-c",
        "flush chain inet t svc-a",
        "flush chain inet t svc-b",
        "delete element inet t ips { 10.0.0.1 . tcp . 80, 10.0.0.2 . tcp . 80 }",
        "add element inet t ips { 10.0.0.1 . tcp . 80 : goto svc-c }",
        "add rule inet t svc-c goto ep-a",
        "delete chain inet t svc-a",
        "delete chain inet t svc-b",
    ]


def test_recreated_set_refills_its_users() -> None:
    new = replace(TABLE, sets=(IPS, replace(AFF, timeout=30)))
    assert diff(TABLE, new).splitlines() == [
        "flush chain inet t svc-a",
        "flush chain inet t ep-a",
        "delete set inet t aff",
        "add set inet t aff { type ipv4_addr; flags dynamic,timeout; timeout 30s; }",
        "add rule inet t svc-a ip saddr @aff goto ep-a",
        "add rule inet t svc-a goto ep-a",
        "add rule inet t ep-a update @aff { ip saddr }",
        "add rule inet t ep-a dnat ip to 10.1.0.1:80",
    ]


def test_grouped_elements_are_diffed_from_the_changed_groups_only() -> None:
    """An element two groups give stays while one of them does; unchanged groups are not looked into."""
    both = (("pairs", (("10.1.0.1 . 10.1.0.1", ""),)),)
    only_b = (("pairs", (("10.1.0.2 . 10.1.0.2", ""),)),)

    def table(*groups: tuple) -> Table:
        elements = tuple(dict.fromkeys(e for g in groups for _, els in g for e in els))
        return Table("inet", "t", "test", (NftSet("pairs", "ipv4_addr . ipv4_addr", elements=elements),), (BASE,),
                     ((BASE,),), groups, frozenset({"pairs"}), frozenset({"pairs"}))

    a, b = both, (("pairs", both[0][1] + only_b[0][1]),)
    old = table(a, b)
    assert diff(old, table(a)).splitlines() == ["delete element inet t pairs { 10.1.0.2 . 10.1.0.2 }"]
    assert diff(old, table(a, only_b)) == ""
    assert diff(table(a), old).splitlines() == ["add element inet t pairs { 10.1.0.2 . 10.1.0.2 }"]


def test_rulesets_skip_shared_tables_and_add_or_delete_whole_ones() -> None:
    other = replace(TABLE, name="u")
    changed = replace(TABLE, chains=(*TABLE.chains[:-1], Chain("ep-a", ("dnat ip to 10.1.0.2:80",))))
    assert nft_table.diff(Ruleset((TABLE, other)), Ruleset((TABLE, other))) == ""
    assert nft_table.diff(Ruleset((TABLE,)), Ruleset((TABLE, other))) == other.full()
    assert nft_table.diff(Ruleset((TABLE, other)), Ruleset((TABLE,))) == other.delete()
    assert nft_table.diff(Ruleset((TABLE, other)), Ruleset((changed, other))) == diff(TABLE, changed)
    gone = Table("inet", "v", "", (), ())
    assert Ruleset((TABLE,), (gone,)).full() == gone.delete() + TABLE.full()
    assert Ruleset((TABLE,), (gone,)).delete() == TABLE.delete() + gone.delete()


def test_counters_and_chain_comments() -> None:
    """Counters are declared first and left alone while they stay, so they keep counting; nft cannot
    change a comment on an existing chain or counter, so a changed one replaces the table."""
    counted = Chain("svc-b", ('counter name "hits" goto ep-a',), comment="Service b")
    plain = replace(TABLE, chains=(*TABLE.chains[:3], replace(counted, rules=("goto ep-a",)), TABLE.chains[4]))
    old = replace(plain, chains=(*plain.chains[:3], counted, plain.chains[4]), counters=(Counter("hits", "b"),))
    text = old.full()
    assert text.index("\tcounter hits {\n\t\tcomment \"b\"\n\t}\n") < text.index("\tmap ips {")
    assert "\tchain svc-b {\n\t\tcomment \"Service b\"\n\t\tcounter name \"hits\" goto ep-a\n\t}\n" in text
    assert diff(old, replace(old, counters=(*old.counters, Counter("new")))).splitlines() == [
        "add counter inet t new { }"]
    assert diff(plain, old).splitlines() == [
        'add counter inet t hits { comment "b"; }',
        "flush chain inet t svc-b",
        'add rule inet t svc-b counter name "hits" goto ep-a',
    ]
    assert diff(old, plain).splitlines() == [
        "flush chain inet t svc-b", "add rule inet t svc-b goto ep-a", "delete counter inet t hits"]
    assert nft_table.diff_table(old, replace(old, counters=(Counter("hits", "c"),))) is None
    assert nft_table.diff_table(plain, TABLE) is None  # svc-b loses its comment
    added = Chain("svc-c", ("goto ep-a",), comment="Service c")
    assert diff(old, replace(old, chains=(*old.chains, added))).splitlines() == [
        'add chain inet t svc-c { comment "Service c"; }', "add rule inet t svc-c goto ep-a"]
