"""Proxy model -> `iptables-restore` input for one IP family (feed family 6 to `ip6tables-restore`).

Apply it with `iptables-restore --noflush`: without it, restoring would flush every other user's
rules in the nat and filter tables. Each knet chain is declared (`:CHAIN - [0:0]`, which creates or
flushes it) and refilled; chains left over from an earlier sync are named in `existing_chains` and
deleted at the end. The jumps from the built-in chains are not in `render`'s output (with --noflush
they would pile up): the agent reads `iptables-save` (`parse_save`) and adds `missing_jumps` to the same
transaction (`with_jumps`), in `JUMPS` order; `render_cleanup` removes our chains and jumps again.

Layout (after kube-proxy's iptables mode):
- nat `KNET-SERVICES` (from PREROUTING, OUTPUT) matches every ClusterIP, externalIP and LB IP with
  its port and jumps to the port's chain; local destinations then go on to `KNET-NODEPORTS`.
  `KNET-SVC-*` (Cluster policy) and `KNET-SVL-*` (Local policy) check ClientIP affinity
  (`-m recent --rcheck`), then pick an endpoint with `-m statistic --mode random --probability
  1/(n-i)`. `KNET-EXT-*` handle external traffic, `KNET-FW-*` (loadBalancerSourceRanges) pass
  allowed sources on and mark the rest for dropping (the nat table cannot DROP), `KNET-SEP-*` mark
  hairpin traffic, record affinity (`-m recent --set`) and DNAT. `KNET-MARK-MASQ` marks for SNAT,
  `KNET-MASQ-NONLOCAL` marks unless the source is in a pod CIDR, `KNET-POSTROUTING` masquerades.
- filter `KNET-SERVICES` (FORWARD, OUTPUT; new connections, after DNAT) rejects ClusterIP traffic of
  Services without endpoints (drops it for internalTrafficPolicy Local without local endpoints),
  rejects every other port of a ClusterIP and drops unallocated service addresses.
  `KNET-EXTERNAL-SERVICES` (INPUT, FORWARD) does the same for externalIPs, LB IPs and node ports,
  `KNET-FIREWALL` drops what a `KNET-FW-*` chain marked, `KNET-NODEPORTS` (INPUT) accepts
  healthCheckNodePorts.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable
from dataclasses import dataclass, field

from operators.proxy import names
from operators.proxy.model import ProxiedPort, ProxyModel, Target, of_family

# (table, built-in chain, rule arguments): the jumps the agent keeps in place with -C / -I.
_NEW = ("-m", "conntrack", "--ctstate", "NEW")
JUMPS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("nat", "PREROUTING", ("-m", "comment", "--comment", "knet service portals", "-j", "KNET-SERVICES")),
    ("nat", "OUTPUT", ("-m", "comment", "--comment", "knet service portals", "-j", "KNET-SERVICES")),
    ("nat", "POSTROUTING", ("-m", "comment", "--comment", "knet postrouting", "-j", "KNET-POSTROUTING")),
    ("filter", "INPUT", ("-m", "comment", "--comment", "knet health checks", "-j", "KNET-NODEPORTS")),
    ("filter", "INPUT", (*_NEW, "-j", "KNET-EXTERNAL-SERVICES")),
    ("filter", "INPUT", ("-j", "KNET-FIREWALL")),
    ("filter", "FORWARD", (*_NEW, "-j", "KNET-SERVICES")),
    ("filter", "FORWARD", (*_NEW, "-j", "KNET-EXTERNAL-SERVICES")),
    ("filter", "FORWARD", ("-j", "KNET-FIREWALL")),
    ("filter", "OUTPUT", (*_NEW, "-j", "KNET-SERVICES")),
    ("filter", "OUTPUT", ("-j", "KNET-FIREWALL")),
)
_OUR_CHAIN = re.compile(r"^KNET-[A-Z0-9-]{1,23}$")
NAT_CHAINS = ("KNET-SERVICES", "KNET-NODEPORTS", "KNET-POSTROUTING", "KNET-MARK-MASQ", "KNET-MARK-DROP",
              "KNET-MASQ-NONLOCAL")
FILTER_CHAINS = ("KNET-SERVICES", "KNET-EXTERNAL-SERVICES", "KNET-FIREWALL", "KNET-NODEPORTS")


def _comment(text: str) -> str:
    return f'-m comment --comment "{text}"'  # text: fixed words and validated names only


class _Family:
    """Spelling of one family's addresses, loopback range and ICMP reject."""

    def __init__(self, family: int) -> None:
        self.family = family
        self.bits = 32 if family == 4 else 128
        self.loopback = "127.0.0.0/8" if family == 4 else "::1/128"
        self.icmp_reject = "icmp-admin-prohibited" if family == 4 else "icmp6-adm-prohibited"

    def host(self, ip: str) -> str:
        return f"{ip}/{self.bits}"

    def dest(self, t: Target) -> str:
        return f"{t.ip}:{t.port}" if self.family == 4 else f"[{t.ip}]:{t.port}"

    def reject(self, protocol: str) -> str:
        return "-j REJECT --reject-with " + ("tcp-reset" if protocol == "tcp" else self.icmp_reject)


class _Builder:
    def __init__(self, model: ProxyModel, family: int) -> None:
        self.model = model
        self.f = _Family(family)
        self.local_cidrs = of_family(model.local_cidrs, family)
        self.nat: dict[str, list[str]] = {c: [] for c in NAT_CHAINS}
        self.filter: dict[str, list[str]] = {c: [] for c in FILTER_CHAINS}
        cidrs = of_family(model.nodeport_cidrs, family)
        # Destinations that accept node ports: local addresses, never loopback, maybe only some CIDRs.
        self.nodeport_dests = ([f"-d {c} -m addrtype --dst-type LOCAL" for c in cidrs] if cidrs
                               else [f"-m addrtype --dst-type LOCAL ! -d {self.f.loopback}"])

    def static(self) -> None:
        cfg = self.model.config
        masq, drop = f"{cfg.masquerade_mark:#x}", f"{cfg.drop_mark:#x}"
        self.nat["KNET-POSTROUTING"] += [
            f"-m mark ! --mark {masq}/{masq} -j RETURN",
            f"-j MARK --xor-mark {masq}",
            f"{_comment('knet service traffic requiring SNAT')} -j MASQUERADE --random-fully",
        ]
        self.nat["KNET-MARK-MASQ"].append(f"-j MARK --or-mark {masq}")
        self.nat["KNET-MARK-DROP"].append(f"-j MARK --or-mark {drop}")
        if self.local_cidrs:
            self.nat["KNET-MASQ-NONLOCAL"] += [*(f"-s {c} -j RETURN" for c in self.local_cidrs),
                                               "-j KNET-MARK-MASQ"]
        self.filter["KNET-FIREWALL"].append(
            f"{_comment('dropped by loadBalancerSourceRanges')} -m mark --mark {drop}/{drop} -j DROP")
        for hc in sorted({h.node_port for h in self.model.health_checks}):
            self.filter["KNET-NODEPORTS"].append(f"{_comment('health check node port')} -p tcp -m tcp "
                                                 f"--dport {hc} -j ACCEPT")

    def policy_chain(self, name: str, p: ProxiedPort, endpoints: tuple[Target, ...], internal: bool) -> None:
        rules = self.nat.setdefault(name, [])
        match = f"-d {self.f.host(p.cluster_ip)} -p {p.protocol} -m {p.protocol} --dport {p.port}"
        if internal and self.model.config.masquerade_all:
            rules.append(f"{_comment(f'{p.key} cluster IP')} {match} -j KNET-MARK-MASQ")
        elif internal and self.local_cidrs:
            rules.append(f"{_comment(f'{p.key} cluster IP')} {match} -j KNET-MASQ-NONLOCAL")
        seps = [names.ipt_endpoint(p, t) for t in endpoints]
        if p.affinity_seconds:
            rules += [f"-m recent --name {sep} --rcheck --seconds {p.affinity_seconds} --reap -j {sep}"
                      for sep in seps]
        for i, sep in enumerate(seps):
            if i < len(seps) - 1:
                rules.append(f"{_comment(p.key)} -m statistic --mode random --probability "
                             f"{1 / (len(seps) - i):.10f} -j {sep}")
            else:
                rules.append(f"{_comment(p.key)} -j {sep}")

    def external_chain(self, p: ProxiedPort) -> None:
        svc, rules = names.ipt_port("SVC", p), self.nat.setdefault(names.ipt_port("EXT", p), [])
        if not p.external_local:
            rules += [f"{_comment(f'masquerade traffic for {p.key} external destinations')} "
                      "-j KNET-MARK-MASQ", f"-j {svc}"]
            return
        rules += [f"{_comment(f'pod traffic for {p.key} external destinations')} -s {c} -j {svc}"
                  for c in self.local_cidrs]
        rules += [f"{_comment(f'masquerade LOCAL traffic for {p.key} external destinations')} "
                  "-m addrtype --src-type LOCAL -j KNET-MARK-MASQ",
                  f"{_comment(f'route LOCAL traffic for {p.key} external destinations')} "
                  f"-m addrtype --src-type LOCAL -j {svc}"]
        if p.local_endpoints:
            rules.append(f"-j {names.ipt_port('SVL', p)}")

    def endpoint_chains(self, p: ProxiedPort) -> None:
        for t in p.reachable_endpoints:
            sep = names.ipt_endpoint(p, t)
            recent = f" -m recent --name {sep} --set" if p.affinity_seconds else ""
            self.nat[sep] = [
                f"{_comment(p.key)} -s {self.f.host(t.ip)} -j KNET-MARK-MASQ",
                f"{_comment(p.key)} -p {p.protocol}{recent} -m {p.protocol} -j DNAT --to-destination "
                f"{self.f.dest(t)}",
            ]

    def port(self, p: ProxiedPort) -> None:
        proto, svc_chain, ext = p.protocol, names.ipt_port("SVC", p), names.ipt_port("EXT", p)
        unusable = "-j DROP" if p.has_endpoints else self.f.reject(proto)

        def match(ip: str) -> str:
            return f"-d {self.f.host(ip)} -p {proto} -m {proto} --dport {p.port}"

        if p.cluster_endpoints:
            self.policy_chain(svc_chain, p, p.cluster_endpoints, internal=not p.internal_local)
        if p.local_endpoints:
            self.policy_chain(names.ipt_port("SVL", p), p, p.local_endpoints, internal=p.internal_local)
        if p.uses_external_chain:
            self.external_chain(p)
        if p.firewalled and p.uses_external_chain:
            self.nat[names.ipt_port("FW", p)] = [
                *(f"{_comment(f'{p.key} loadbalancer IP')} -s {r} -j {ext}" for r in p.source_ranges or ()),
                f"{_comment(f'{p.key} loadbalancer IP')} -j KNET-MARK-DROP",
            ]
        self.endpoint_chains(p)

        why = _comment(f"{p.key} has no local endpoints" if p.has_endpoints else f"{p.key} has no endpoints")
        if p.internal_endpoints:
            internal = names.ipt_port("SVL" if p.internal_local else "SVC", p)
            self.nat["KNET-SERVICES"].append(
                f"{_comment(f'{p.key} cluster IP')} {match(p.cluster_ip)} -j {internal}")
        else:
            self.filter["KNET-SERVICES"].append(f"{why} {match(p.cluster_ip)} {unusable}")
        for kind, ips in (("external IP", p.external_ips), ("loadbalancer IP", p.lb_ips)):
            for ip in ips:
                if p.uses_external_chain:
                    target = names.ipt_port("FW", p) if p.firewalled and kind == "loadbalancer IP" else ext
                    self.nat["KNET-SERVICES"].append(f"{_comment(f'{p.key} {kind}')} {match(ip)} -j {target}")
                if not p.external_endpoints:
                    self.filter["KNET-EXTERNAL-SERVICES"].append(f"{why} {match(ip)} {unusable}")
        if p.node_port:
            np = f"-p {proto} -m {proto} --dport {p.node_port}"
            if p.uses_external_chain:
                self.nat["KNET-NODEPORTS"].append(f"{_comment(p.key)} {np} -j {ext}")
            if not p.external_endpoints:
                self.filter["KNET-EXTERNAL-SERVICES"] += [f"{why} {d} {np} {unusable}"
                                                          for d in self.nodeport_dests]

    def tail(self) -> None:
        """Catch-alls that must follow every per-port rule."""
        self.nat["KNET-SERVICES"] += [f"{_comment('knet service nodeports')} {d} -j KNET-NODEPORTS"
                                      for d in self.nodeport_dests]
        unknown = _comment("unknown port of a ClusterIP")
        for ip in of_family(self.model.cluster_ips, self.f.family):
            self.filter["KNET-SERVICES"] += [f"{unknown} -d {self.f.host(ip)} -p tcp {self.f.reject('tcp')}",
                                             f"{unknown} -d {self.f.host(ip)} {self.f.reject('udp')}"]
        self.filter["KNET-SERVICES"] += [f"{_comment('unallocated ClusterIP')} -d {c} -j DROP"
                                         for c in of_family(self.model.config.service_cidrs, self.f.family)]


def _table(name: str, chains: dict[str, list[str]], stale: list[str]) -> list[str]:
    out = [f"*{name}", *(f":{c} - [0:0]" for c in [*chains, *stale])]
    out += [f"-A {c} {rule}" for c, rules in chains.items() for rule in rules]
    out += [f"-X {c}" for c in stale]
    return [*out, "COMMIT"]


def render(model: ProxyModel, family: int, existing_chains: Iterable[str] = ()) -> str:
    """Restore input for `family` (4 or 6); `existing_chains`: KNET-* nat chains now in the kernel."""
    b = _Builder(model, family)
    b.static()
    for p in model.ports:
        if p.family == family:
            b.port(p)
    b.tail()
    stale = sorted({c for c in existing_chains if _OUR_CHAIN.match(c)} - set(b.nat) - set(b.filter))
    header = f"# knet service proxy, IPv{family}: for ip{'' if family == 4 else '6'}tables-restore --noflush"
    return "\n".join([header, *_table("nat", b.nat, stale), *_table("filter", b.filter, [])]) + "\n"


# --- what the kernel holds: `iptables-save` parsed, and the inputs that repair or remove our part ---


@dataclass
class Saved:
    """One table of `iptables-save` output: its chains and its rules as (chain, arguments)."""

    chains: list[str] = field(default_factory=list)
    rules: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)

    @property
    def ours(self) -> list[str]:
        return [c for c in self.chains if _OUR_CHAIN.match(c)]

    def our_jumps(self) -> list[tuple[str, tuple[str, ...]]]:
        """Rules in built-in chains that jump to a knet chain."""
        return [(c, args) for c, args in self.rules
                if not _OUR_CHAIN.match(c) and len(args) >= 2 and args[-2] == "-j" and _OUR_CHAIN.match(args[-1])]


def parse_save(text: str) -> dict[str, Saved]:
    """`iptables-save` output -> table name -> its chains and rules (comments and counters dropped)."""
    tables: dict[str, Saved] = {}
    current: Saved | None = None
    for line in text.splitlines():
        if line.startswith("*"):
            current = tables.setdefault(line[1:].strip(), Saved())
        elif current is None or line.startswith("#"):
            continue
        elif line.startswith(":"):
            current.chains.append(line[1:].split()[0])
        elif line.startswith("-A "):
            words = shlex.split(line)
            current.rules.append((words[1], tuple(words[2:])))
    return tables


def _join(args: tuple[str, ...]) -> str:
    """Arguments as iptables-restore reads them (it knows double quotes only; ours hold no quote)."""
    return " ".join(f'"{a}"' if " " in a else a for a in args)


def missing_jumps(saved: dict[str, Saved]) -> list[str]:
    """Restore lines (per table, to go before its COMMIT) that put the jumps from the built-in chains
    back in `JUMPS` order: a built-in chain missing any of its jumps gets all of them re-inserted."""
    out: list[str] = []
    for table, chain in dict.fromkeys((t, c) for t, c, _ in JUMPS):
        present = saved.get(table, Saved()).rules
        wanted = [a for t, c, a in JUMPS if (t, c) == (table, chain)]
        if all((chain, a) in present for a in wanted):
            continue
        out += [f"{table} -D {chain} {_join(a)}" for a in wanted if (chain, a) in present]
        out += [f"{table} -I {chain} {i} {_join(a)}" for i, a in enumerate(wanted, 1)]
    return out


def with_jumps(text: str, jump_lines: list[str]) -> str:
    """`text` (from `render`) with the `missing_jumps` lines placed before their table's COMMIT."""
    if not jump_lines:
        return text
    out, table = [], ""
    for line in text.splitlines():
        if line.startswith("*"):
            table = line[1:]
        if line == "COMMIT":
            out += [rest for j in jump_lines for t, _, rest in [j.partition(" ")] if t == table]
        out.append(line)
    return "\n".join(out) + "\n"


def jumps_present(saved: dict[str, Saved]) -> bool:
    """Whether every jump from the built-in chains to ours is in place (our part works)."""
    return not missing_jumps(saved)


def render_cleanup(saved: dict[str, Saved]) -> str:
    """Restore input removing every knet chain and jump from the tables in `saved`; "" if none."""
    out: list[str] = []
    for name in ("nat", "filter"):
        table = saved.get(name, Saved())
        if not table.ours and not table.our_jumps():
            continue
        out += [f"*{name}", *(f":{c} - [0:0]" for c in table.ours)]
        out += [f"-D {c} {_join(a)}" for c, a in table.our_jumps()]
        out += [*(f"-X {c}" for c in table.ours), "COMMIT"]
    return "\n".join(out) + "\n" if out else ""


def rule_count(text: str) -> int:
    """Rules written by a restore input (its `-A` lines)."""
    return sum(line.startswith("-A ") for line in text.splitlines())
