"""The shared parsing layer: `field()`, the validators and the problem-collecting `Reader`."""

from __future__ import annotations

import ipaddress

from hypothesis import given
from hypothesis import strategies as st

from operators.kube import parse
from operators.kube.parse import Problem, Reader, field, is_dns_label, is_dns_subdomain, is_port


def test_field_reads_the_api_spelling_and_defaults_for_missing_null_or_not_a_mapping() -> None:
    assert field({"clusterIPs": ["10.0.0.1"]}, "clusterIPs") == ["10.0.0.1"]
    assert field({"clusterIPs": None}, "clusterIPs", []) == []  # null counts as missing
    assert field({"cluster_ips": ["10.0.0.2"]}, "clusterIPs") is None  # only the API's camelCase is read
    assert field({}, "clusterIPs", []) == [] and field("not a mapping", "a", 7) == 7
    assert field({"port": 0}, "port", 80) == 0  # a falsy value is a value


def test_validators_reject_a_trailing_newline_and_bools() -> None:
    assert is_dns_label("web") and not is_dns_label("web\n") and not is_dns_label("Web") and not is_dns_label(5)
    assert is_dns_subdomain("a.b-c.d") and not is_dns_subdomain("a.b\n") and not is_dns_subdomain("a..b")
    assert not is_dns_subdomain("x" * 64) and not is_dns_subdomain(".".join(["a" * 63] * 4) + ".b")
    assert is_port(1) and is_port(65535) and not is_port(0) and not is_port(True) and not is_port("80")


def test_reader_names_the_object_in_each_problem() -> None:
    p = Reader.of("Service", {"metadata": {"name": "web"}})
    assert p.mapping({}, "spec") == {} and p.array(None, "ports") == [] and not p.problems
    assert p.mapping([1], "spec") == {} and p.array_at({"ports": {"a": 1}}, "ports") == []
    assert [str(x) for x in p.problems] == ["Service default/web: spec is not a mapping; ignored",
                                            "Service default/web: ports is not a list; ignored"]
    node = Reader.of("Node", {"metadata": {"name": "n1", "namespace": "ignored"}}, namespaced=False)
    node.problem("odd")
    assert node.problems == [Problem("Node", "", "n1", "odd")]


def test_reader_named_checks_name_then_namespace() -> None:
    assert Reader.of("Service", {"metadata": {"name": "web", "namespace": "prod"}}).named(is_dns_label, "DNS label")
    bad_ns = Reader.of("Service", {"metadata": {"name": "web", "namespace": "Prod"}})
    assert not bad_ns.named(is_dns_label, "DNS label")
    assert bad_ns.problems[0].message == "namespace is not a valid DNS label; object skipped"
    bad_name = Reader.of("Node", {"metadata": {"name": 5}}, namespaced=False)
    assert not bad_name.named(is_dns_subdomain, "DNS subdomain")
    assert str(bad_name.problems[0]) == "Node 5: name is not a valid DNS subdomain; object skipped"


def test_reader_typed_getters_fall_back_and_report() -> None:
    p = Reader("DNSConfig", "default")
    assert p.choice(None, ("a", "b"), "a", "mode") == "a" and p.choice("b", ("a", "b"), "a", "mode") == "b"
    assert p.number(7, 5, 0, 10, "ttl") == 7 and p.number(True, 5, 0, 10, "ttl") == 5
    assert p.number(0.5, 2.0, 0.1, 30, "timeout", float) == 0.5
    assert p.boolean(None, True, "on") is True and p.boolean("yes", False, "on") is False
    assert p.port(0, "nodePort", allow_zero=True) == 0 and p.port(0, "port") is None
    assert p.protocol("UDP", "port dns") == "UDP" and p.protocol("ICMP", "port x") is None
    assert p.dns_label(None, "hostname") == "" and p.dns_label("web-0", "hostname") == "web-0"
    assert p.dns_label("Web_0", "hostname") == ""
    assert [x.message for x in p.problems] == [
        "ttl True is not a number in 0-10; using 5",
        "on 'yes' is not a boolean; using False",
        "port 0 is not a port number (1-65535)",
        "port x: protocol 'ICMP' is not one of TCP, UDP, SCTP",
        "hostname 'Web_0' is not a DNS label; ignored",
    ]
    assert all(x.kind == "DNSConfig" and x.namespace == "" and x.name == "default" for x in p.problems)


IPV4_TEXT = st.one_of(
    st.ip_addresses(v=4).map(str),  # ordinary, unspecified, loopback, multicast...
    st.ip_addresses(v=4).map(lambda ip: ".".join(f"{b:03d}" for b in ip.packed)),  # leading zeros
    st.text(alphabet="0123456789.x :", max_size=17),
)


@given(st.one_of(IPV4_TEXT, st.sampled_from([  # the edges of the refused ranges
    "0.0.0.0", "0.0.0.1", "126.255.255.255", "127.0.0.0", "127.255.255.255", "128.0.0.0", "223.255.255.255",
    "224.0.0.0", "239.255.255.255", "240.0.0.0", "255.255.255.255"])))
def test_ipv4_text_fast_path_agrees_with_ipaddress(value: str) -> None:
    """`ips` takes IPv4 on its bytes; it must accept and refuse exactly what `ipaddress` does."""
    try:
        ip = ipaddress.ip_address(value)
        expected = None if ip.is_unspecified or ip.is_loopback or ip.is_multicast else str(ip)
    except ValueError:
        expected = None
    assert parse._ip_text(value) == expected


def test_reader_lists_normalise_deduplicate_and_report() -> None:
    p = Reader.of("Service", {"metadata": {"name": "web"}})
    assert p.ips(["fd00::0001", "fd00::1", "127.0.0.1", "x"], "externalIPs") == ("fd00::1",)
    assert p.cidrs(["10.1.2.3/8", "fe80::%eth0/64"], "ranges") == ("10.0.0.0/8",)
    assert p.each(["1", "a", "2"], lambda v: int(v) if v.isdigit() else None, "numbers") == (1, 2)
    assert [x.message for x in p.problems] == [
        "externalIPs: '127.0.0.1' is not a valid unicast IP address",
        "externalIPs: 'x' is not a valid unicast IP address",
        "ranges: 'fe80::%eth0/64' is not a valid CIDR",
        "numbers: 'a' is not valid; ignored",
    ]


def test_metadata_map_keeps_string_entries() -> None:
    p = Reader.of("Ingress", {})
    obj = {"metadata": {"annotations": {"a": "1", "b": 2}, "labels": "oops"}}
    assert p.metadata_map(obj, "annotations") == {"a": "1"} and p.metadata_map(obj, "labels") == {}
    assert [x.message for x in p.problems] == ["labels is not a mapping; ignored"]
