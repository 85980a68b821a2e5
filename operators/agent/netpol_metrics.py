"""The NetworkPolicy side's Prometheus metrics, in the agent's registry, under `knet_netpol_`.

Per-policy drop and allow counts come from the ruleset's named counters (only with drop logging on),
so their label set is the node's isolating policies: bounded by what users create, as Calico's are.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from operators.agent.metrics import LATENCY_BUCKETS, SYNC_BUCKETS

ERROR_KINDS = ("nft", "table-missing", "conntrack", "counters", "event", "sync")


class NetpolMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.sync_duration = Histogram("knet_netpol_sync_duration_seconds",
                                       "Time to compile, render and apply the NetworkPolicy rules, by kind of sync",
                                       ["kind"], buckets=SYNC_BUCKETS, registry=r)
        self.last_sync = Gauge("knet_netpol_sync_last_timestamp_seconds",
                               "When the NetworkPolicy rules were last programmed successfully (Unix time)",
                               registry=r)
        self.programming_latency = Histogram(
            "knet_netpol_programming_duration_seconds",
            "From a watched change (policy, pod, namespace) reaching the agent to its rules being in the kernel",
            buckets=LATENCY_BUCKETS, registry=r)
        self.policies = Gauge("knet_netpol_policies", "NetworkPolicies isolating at least one pod of this node",
                              registry=r)
        self.isolated_pods = Gauge("knet_netpol_isolated_pods", "Pods of this node isolated, by direction",
                                   ["direction"], registry=r)
        self.errors = Counter("knet_netpol_errors", "Failures, by kind: nft transaction, table removed by someone "
                              "else, conntrack (strict mode), reading counters, Event posting, sync loop",
                              ["kind"], registry=r)
        self.policies_with_problems = Gauge("knet_netpol_policies_with_problems",
                                            "NetworkPolicies that cannot be enforced exactly as written", registry=r)
        self.cut = Counter("knet_netpol_strict_flows_deleted", "Conntrack entries deleted in strict mode",
                           registry=r)
        self.cut_passes = Counter("knet_netpol_strict_passes", "Strict-mode passes over the conntrack table "
                                  "finished (one after each change of the rules)", registry=r)
        self.drops = Counter("knet_netpol_policy_drops", "Packets dropped by pods isolated by this policy "
                             "(with drop logging on)", ["namespace", "policy"], registry=r)
        self.allowed = Counter("knet_netpol_policy_allowed", "New flows allowed by rules of this policy "
                               "and others opening the same port (with drop logging on)", ["namespace", "policy"],
                               registry=r)
        self.options = Gauge("knet_netpol_option_enabled", "ClusterNetworkConfig NetworkPolicy options in use "
                             "(1 on, 0 off)", ["option"], registry=r)
        for kind in ERROR_KINDS:
            self.errors.labels(kind)
        for direction in ("ingress", "egress"):
            self.isolated_pods.labels(direction)
        for option in ("dropLogging", "strictMode"):
            self.options.labels(option)
