"""DNSConfig parsing (defaults, validation, problems instead of exceptions) and the policy it compiles to."""

from __future__ import annotations

import pytest
from dnslib import QTYPE

from operators.dns.config import DNSConfig, Rewrite, Server, parse_dns_config
from operators.dns.names import normalize_name
from operators.dns.policy import Policy


def parse(spec: object, **kwargs):
    return parse_dns_config({"apiVersion": "knet.io/v1alpha1", "kind": "DNSConfig",
                             "metadata": {"name": "default"}, "spec": spec}, **kwargs)


def messages(spec: object) -> list[str]:
    return [p.message for p in parse(spec)[1]]


def test_defaults() -> None:
    config, problems = parse_dns_config(None)
    assert problems == []
    assert config == DNSConfig()
    assert config.zones == ("cluster.local",)
    assert config.reverse_zones == ("in-addr.arpa", "ip6.arpa")
    assert (config.ttl, config.pod_records, config.cache.size) == (5, "insecure", 9984)
    assert config.upstream.servers == ()


def test_cluster_domain_comes_from_the_cluster_unless_set() -> None:
    assert parse({}, cluster_domain="corp.internal")[0].zones == ("corp.internal",)
    assert parse({"clusterDomain": "K8s.Example."})[0].zones == ("k8s.example",)


def test_a_full_spec() -> None:
    config, problems = parse({
        "additionalZones": ["cluster.example"],
        "reverseZones": ["10.96.0.0/16", "0.0.0.0.0.d.f.ip6.arpa"],
        "reverseFallthrough": False,
        "ttl": 30,
        "podRecords": "verified",
        "upstream": {"servers": ["1.1.1.1", "[2606:4700::1111]:5353"], "policy": "round_robin",
                     "maxConcurrent": 50, "timeoutSeconds": 0.5},
        "stubDomains": [{"domain": "corp.example", "servers": ["10.0.0.53:53"]}],
        "cache": {"enabled": True, "size": 100, "successTTL": 60, "denialTTL": 5},
        "acl": [{"action": "deny", "sources": ["10.1.0.0/16"], "types": ["any"], "zones": ["."]}],
        "hosts": [{"ip": "10.9.9.9", "hostnames": ["A.example"]}],
        "hostsTTL": 60,
        "rewrites": [{"match": "suffix", "from": "old.example", "to": "new.example"}],
        "queryLog": True,
        "lameduckSeconds": 0,
    })
    assert problems == []
    assert config.zones == ("cluster.local", "cluster.example")
    assert config.reverse_zones == ("96.10.in-addr.arpa", "0.0.0.0.0.d.f.ip6.arpa")
    assert config.upstream.servers == (Server("1.1.1.1", 53), Server("2606:4700::1111", 5353))
    assert str(config.upstream.servers[1]) == "[2606:4700::1111]:5353"
    assert config.acl[0].types == ("ANY",) and config.acl[0].zones == ("",)
    assert config.hosts[0].hostnames == ("a.example",)
    assert config.rewrites == (Rewrite("suffix", "old.example", "new.example"),)


@pytest.mark.parametrize(("spec", "expected"), [
    ({"ttl": 7200}, "ttl 7200 is not a number in 0-3600; using 5"),
    ({"ttl": "5"}, "ttl '5' is not a number in 0-3600; using 5"),
    ({"podRecords": "yes"}, "podRecords 'yes' is not one of disabled, insecure, verified; using insecure"),
    ({"clusterDomain": "bad domain"}, "clusterDomain 'bad domain' is not a valid domain"),
    ({"reverseZones": ["example.com"]}, "reverseZones: 'example.com' is neither"),
    ({"upstream": {"servers": ["dns.google"]}}, "upstream.servers: 'dns.google' is not valid; ignored"),
    ({"upstream": {"policy": "fastest"}}, "upstream.policy 'fastest' is not one of"),
    ({"stubDomains": [{"domain": "cluster.local", "servers": ["1.1.1.1"]}]}, "is invalid, a cluster zone or"),
    ({"stubDomains": [{"domain": "corp.example", "servers": []}]}, "has no valid servers"),
    ({"cache": {"size": 0}}, "cache.size 0 is not a number"),
    ({"acl": [{"action": "drop", "sources": ["10.0.0.0/8"]}]}, "acl[0]: needs action"),
    ({"acl": [{"action": "deny", "sources": ["10.0.0.0/33"]}]}, "acl[0].sources: '10.0.0.0/33' is not valid"),
    ({"acl": [{"action": "deny", "sources": ["10.0.0.0/8"], "types": ["A;"]}]}, "acl[0].types: 'A;' is not"),
    ({"hosts": [{"ip": "nope", "hostnames": ["a.example"]}]}, "hosts[0]: needs a valid ip"),
    ({"rewrites": [{"match": "prefix", "from": "a", "to": "b"}]}, "rewrites[0]: needs match"),
    ({"spec": 1, "tll": 5}, "spec: unknown field 'spec' ignored"),
    ({"queryLog": "true"}, "queryLog 'true' is not a boolean; using False"),
])
def test_invalid_fields_become_problems(spec: dict, expected: str) -> None:
    found = messages(spec)
    assert any(expected in m for m in found), found


def test_not_a_mapping_anywhere_is_a_problem_not_an_exception() -> None:
    for spec in (["x"], "x", 3, {"upstream": []}, {"cache": "big"}, {"acl": {"a": 1}}, {"hosts": [1, None]},
                 {"stubDomains": ["x"]}, {"rewrites": [None]}):
        config, problems = parse(spec)
        assert problems and isinstance(config, DNSConfig)


@pytest.mark.parametrize(("source", "target"), [
    ("a b", "c"),  # whitespace would end a Corefile token
    ("(.*)", "{1} }"),
    ("}", "x"),
    ("{$HOME}", "x"),  # Corefile environment substitution
    ("#", "x"),
    ('"', "x"),
    ("(?=a)b", "x"),  # lookahead: Python only
    (r"(a)\1", "x"),  # backreference: Python only
    ("(a", "x"),  # does not compile
    ("(a)", "{2}.example"),  # group that does not exist
    ("a", "UPPER{env.X}"),
    ("a.example\n", "x"),  # a newline would split the Corefile line (`$` matches before it)
    ("a", "x\n"),
    ("^(a+)+b", "x"),  # nested repetition: exponential backtracking, for every query
    ("(a|aa)*b", "x"),  # a repeated alternative: the same
    (".*.*.*x", "x"),  # three repetitions: cubic in the name's length
])
def test_unsafe_regex_rewrites_are_rejected(source: str, target: str) -> None:
    config, problems = parse({"rewrites": [{"match": "regex", "from": source, "to": target}]})
    assert config.rewrites == () and problems


def test_safe_regex_rewrite_is_kept() -> None:
    rule = {"match": "regex", "from": r"^(.*)\.legacy\.$", "to": "{1}.svc.x"}
    config, problems = parse({"rewrites": [rule]})
    assert problems == [] and config.rewrites == (Rewrite("regex", r"^(.*)\.legacy\.$", "{1}.svc.x"),)


def test_policy_acl_first_match_wins() -> None:
    config, _ = parse({"acl": [
        {"action": "allow", "sources": ["10.0.1.0/24"]},
        {"action": "deny", "sources": ["10.0.0.0/8"], "zones": ["cluster.local"]},
        {"action": "deny", "sources": ["0.0.0.0/0"], "types": ["ANY"]},
    ]})
    policy = Policy(config)
    assert policy.allowed("10.0.1.5", "web.default.svc.cluster.local", "A")
    assert not policy.allowed("10.0.2.5", "web.default.svc.cluster.local", "A")
    assert not policy.allowed("::ffff:10.0.2.5", "web.default.svc.cluster.local", "A")  # v4-mapped
    assert policy.allowed("10.0.2.5", "example.com", "A")
    assert not policy.allowed("192.0.2.1", "example.com", "ANY")
    assert policy.allowed("fd00::1", "example.com", "ANY")  # no IPv6 source listed


def test_policy_rewrites() -> None:
    config, _ = parse({
        "stubDomains": [{"domain": "corp.example", "servers": ["10.0.0.53"]}],
        "rewrites": [
            {"match": "exact", "from": "api.example", "to": "api.default.svc.cluster.local"},
            {"match": "suffix", "from": "old.example", "to": "new.example"},
            {"match": "regex", "from": r"^(.*)-(prod)\.example\.$", "to": "{1}.{2}.svc.cluster.local"},
        ]})
    policy = Policy(config)
    assert policy.rewrite("api.example") == "api.default.svc.cluster.local"
    assert policy.rewrite("www.old.example") == "www.new.example"
    assert policy.rewrite("old.example") == "old.example"  # suffix rules rewrite names below it only
    assert policy.rewrite("shop-prod.example") == "shop.prod.svc.cluster.local"
    assert policy.rewrite("x.corp.example") == "x.corp.example"  # stub domains are not rewritten
    assert policy.rewrite("unrelated.org") == "unrelated.org"


def test_policy_hosts() -> None:
    config, _ = parse({"hosts": [{"ip": "10.9.9.9", "hostnames": ["db.example"]},
                                 {"ip": "fd00::9", "hostnames": ["db.example"]}], "hostsTTL": 60})
    policy = Policy(config)
    assert [str(r.rdata) for r in policy.hosts("DB.example.", "db.example", QTYPE.A)] == ["10.9.9.9"]
    assert [str(r.rdata) for r in policy.hosts("db.example.", "db.example", QTYPE.AAAA)] == ["fd00::9"]
    assert policy.hosts("db.example.", "db.example", QTYPE.MX) == []  # NODATA
    assert policy.hosts("x.example.", "x.example", QTYPE.A) is None
    ptr = policy.hosts("9.9.9.10.in-addr.arpa.", "9.9.9.10.in-addr.arpa", QTYPE.PTR)
    assert [str(r.rdata) for r in ptr] == ["db.example."] and ptr[0].ttl == 60


@pytest.mark.parametrize("name", ["a\n.example", "a.example\n", " a.example", "a .example"])
def test_names_with_whitespace_are_not_names(name: str) -> None:
    assert normalize_name(name) is None
