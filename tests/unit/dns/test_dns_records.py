"""The record store against the Kubernetes DNS-Based Service Discovery spec (1.1.0) and CoreDNS."""

from __future__ import annotations

import time
import tracemalloc

import pytest
from dns_builders import ask, endpoint, endpoint_slice, external, headless, namespace, pod, service, store_of
from dnslib import QTYPE

from operators.dns import views
from operators.dns.config import parse_dns_config
from operators.dns.records import RecordStore

Z = "default.svc.cluster.local"


def config(**spec):
    cfg, problems = parse_dns_config({"spec": spec})
    assert problems == []
    return cfg


# --- 2.2 schema version --------------------------------------------------------------------------


def test_dns_version_txt() -> None:
    store = store_of()
    found = store.lookup("dns-version.cluster.local.", QTYPE.TXT)
    assert [str(rr) for rr in found.answer] == ['dns-version.cluster.local. 28800   IN      TXT     "1.1.0"']
    assert ask(store, "dns-version.cluster.local", "A") == ("NOERROR", [], [], ["SOA"])


# --- 2.3 ClusterIP Services ----------------------------------------------------------------------


def test_cluster_ip_a_aaaa_dual_stack() -> None:
    store = store_of(service("web", ips=("10.96.0.10", "fd00:96::10")))
    assert ask(store, f"web.{Z}") == ("NOERROR", ["10.96.0.10"], [], [])
    assert ask(store, f"web.{Z}", "AAAA") == ("NOERROR", ["fd00:96::10"], [], [])


def test_single_stack_other_family_is_nodata_with_soa() -> None:
    store = store_of(service("web"))
    assert ask(store, f"web.{Z}", "AAAA") == ("NOERROR", [], [], ["SOA"])
    assert ask(store, f"web.{Z}", "MX") == ("NOERROR", [], [], ["SOA"])


def test_names_are_case_insensitive_and_owner_keeps_the_query_case() -> None:
    store = store_of(service("web"))
    found = store.lookup("WEB.Default.SVC.Cluster.Local.", QTYPE.A)
    assert [str(rr.rname) for rr in found.answer] == ["WEB.Default.SVC.Cluster.Local."]
    assert [str(rr.rdata) for rr in found.answer] == ["10.96.0.10"]


def test_srv_named_port_cluster_ip() -> None:
    store = store_of(service("web", ports=[{"name": "http", "port": 80}, {"name": "dns", "port": 53,
                                                                          "protocol": "UDP"}]))
    assert ask(store, f"_http._tcp.web.{Z}", "SRV") == (
        "NOERROR", [f"0 100 80 web.{Z}."], [f"web.{Z}. A 10.96.0.10"], [])
    assert ask(store, f"_dns._udp.web.{Z}", "SRV")[1] == [f"0 100 53 web.{Z}."]
    assert ask(store, f"_http._udp.web.{Z}", "SRV")[0] == "NXDOMAIN"
    assert ask(store, f"_https._tcp.web.{Z}", "SRV")[0] == "NXDOMAIN"
    assert ask(store, f"_http._tcp.web.{Z}", "A") == ("NOERROR", [], [], ["SOA"])


def test_unnamed_port_has_no_srv_but_service_srv_lists_it() -> None:
    store = store_of(service("web", ports=[{"port": 8443}]))
    assert ask(store, f"_._tcp.web.{Z}", "SRV")[0] == "NXDOMAIN"
    assert ask(store, f"_tcp.web.{Z}", "SRV")[0] == "NXDOMAIN"
    assert ask(store, f"web.{Z}", "SRV")[1] == [f"0 100 8443 web.{Z}."]  # CoreDNS: every port at the name


def test_proto_label_is_an_empty_non_terminal() -> None:
    store = store_of(service("web"))
    assert ask(store, f"_tcp.web.{Z}", "SRV") == ("NOERROR", [], [], ["SOA"])


def test_ptr_for_cluster_ips_v4_and_v6() -> None:
    store = store_of(service("web", ips=("10.96.0.10", "fd00:96::10")))
    assert ask(store, "10.0.96.10.in-addr.arpa", "PTR") == ("NOERROR", [f"web.{Z}."], [], [])
    v6 = "0.1.0.0." + "0." * 20 + "6.9.0.0.0.0.d.f.ip6.arpa"
    assert ask(store, v6, "PTR") == ("NOERROR", [f"web.{Z}."], [], [])
    assert ask(store, v6.upper(), "PTR")[1] == [f"web.{Z}."]
    assert ask(store, "10.0.96.10.in-addr.arpa", "A") == ("NOERROR", [], [], ["SOA"])


# --- 2.4 headless Services -----------------------------------------------------------------------


def _headless_store():
    return store_of(
        headless("db"),
        endpoint_slice("db", [endpoint("10.244.1.5", "db-0"), endpoint("10.244.1.6"),
                              endpoint("10.244.1.7", "db-2", ready=False)]),
    )


def test_headless_answers_every_ready_endpoint() -> None:
    assert ask(_headless_store(), f"db.{Z}") == ("NOERROR", ["10.244.1.5", "10.244.1.6"], [], [])


def test_headless_without_ready_endpoints_is_nxdomain() -> None:
    store = store_of(headless("db"), endpoint_slice("db", [endpoint("10.244.1.7", ready=False)]))
    assert ask(store, f"db.{Z}") == ("NXDOMAIN", [], [], ["SOA"])
    assert ask(store_of(headless("lonely")), f"lonely.{Z}", "SRV")[0] == "NXDOMAIN"


def test_endpoint_hostname_records_and_dashed_default() -> None:
    store = _headless_store()
    assert ask(store, f"db-0.db.{Z}") == ("NOERROR", ["10.244.1.5"], [], [])
    assert ask(store, f"10-244-1-6.db.{Z}") == ("NOERROR", ["10.244.1.6"], [], [])
    assert ask(store, f"db-2.db.{Z}")[0] == "NXDOMAIN"  # not ready
    assert ask(store, f"db-9.db.{Z}")[0] == "NXDOMAIN"


def test_headless_srv_is_endpoints_times_named_ports() -> None:
    store = store_of(
        headless("db", ports=[{"name": "sql", "port": 5432}, {"name": "metrics", "port": 9187}]),
        endpoint_slice("db", [endpoint("10.244.1.5", "db-0"), endpoint("10.244.1.6", "db-1")],
                       ports=[{"name": "sql", "port": 5432}, {"name": "metrics", "port": 9187}]),
    )
    rcode, answers, additional, _ = ask(store, f"_sql._tcp.db.{Z}", "SRV")
    assert (rcode, answers) == ("NOERROR", [f"0 50 5432 db-0.db.{Z}.", f"0 50 5432 db-1.db.{Z}."])
    assert additional == [f"db-0.db.{Z}. A 10.244.1.5", f"db-1.db.{Z}. A 10.244.1.6"]
    assert len(ask(store, f"db.{Z}", "SRV")[1]) == 4  # 2 endpoints x 2 ports
    assert ask(store, f"db-0.db.{Z}", "SRV")[1] == [f"0 50 5432 db-0.db.{Z}.", f"0 50 9187 db-0.db.{Z}."]


def test_pod_hostname_and_subdomain_name_the_endpoint() -> None:
    store = store_of(
        pod("web-7f9c", ["10.244.2.8"], hostname="web-a", subdomain="web"),
        headless("web"),
        endpoint_slice("web", [endpoint("10.244.2.8", pod="web-7f9c")]),
    )
    assert ask(store, f"web-a.web.{Z}") == ("NOERROR", ["10.244.2.8"], [], [])
    # the pod changes subdomain: its hostname no longer names an endpoint of `web`
    store.apply(pod("web-7f9c", ["10.244.2.8"], hostname="web-a", subdomain="other"))
    assert ask(store, f"web-a.web.{Z}")[0] == "NXDOMAIN"
    assert ask(store, f"10-244-2-8.web.{Z}")[1] == ["10.244.2.8"]


def test_dual_stack_headless_hostname_has_a_and_aaaa() -> None:
    store = store_of(
        headless("db"),
        endpoint_slice("db", [endpoint("10.244.1.5", "db-0")]),
        endpoint_slice("db", [endpoint("fd00:244::5", "db-0")], family="IPv6"),
    )
    assert ask(store, f"db-0.db.{Z}", "A")[1] == ["10.244.1.5"]
    assert ask(store, f"db-0.db.{Z}", "AAAA")[1] == ["fd00:244::5"]
    assert ask(store, f"db.{Z}", "AAAA")[1] == ["fd00:244::5"]
    v6 = ".".join(reversed("fd000244000000000000000000000005")) + ".ip6.arpa"
    assert ask(store, v6, "PTR")[1] == [f"db-0.db.{Z}."]


def test_ptr_for_endpoints() -> None:
    store = _headless_store()
    assert ask(store, "5.1.244.10.in-addr.arpa", "PTR")[1] == [f"db-0.db.{Z}."]
    assert ask(store, "6.1.244.10.in-addr.arpa", "PTR")[1] == [f"10-244-1-6.db.{Z}."]
    missing = store.lookup("7.1.244.10.in-addr.arpa", QTYPE.PTR)  # not ready
    assert (missing.rcode, missing.fallthrough) == (3, True)
    assert ask(store, "1.244.10.in-addr.arpa", "PTR")[0] == "NXDOMAIN"  # partial name


def test_endpoints_of_cluster_ip_services_have_names_too() -> None:
    store = store_of(service("web"), endpoint_slice("web", [endpoint("10.244.3.3", "w0")]))
    assert ask(store, f"w0.web.{Z}")[1] == ["10.244.3.3"]
    assert ask(store, f"web.{Z}")[1] == ["10.96.0.10"]


# --- 2.5 ExternalName ----------------------------------------------------------------------------


def test_external_name_is_a_cname() -> None:
    store = store_of(external("search", "www.Example.com."))
    found = store.lookup(f"search.{Z}", QTYPE.A)
    assert [str(rr) for rr in found.answer] == [f"search.{Z}. 5       IN      CNAME   www.example.com."]
    assert found.external == "www.example.com"
    assert ask(store, f"search.{Z}", "CNAME")[1] == ["www.example.com."]
    assert ask(store, f"x.search.{Z}")[0] == "NXDOMAIN"


def test_external_name_inside_the_cluster_is_chased() -> None:
    store = store_of(external("alias", f"web.{Z}"), service("web"))
    found = store.lookup(f"alias.{Z}", QTYPE.A)
    assert [QTYPE.get(rr.rtype) for rr in found.answer] == ["CNAME", "A"]
    assert found.external == ""
    loop = store_of(external("a", f"b.{Z}"), external("b", f"a.{Z}"))
    assert loop.lookup(f"a.{Z}", QTYPE.A).rcode == 2  # SERVFAIL after the hop limit, no recursion error


def test_external_name_that_is_an_ip_has_no_record() -> None:
    store = RecordStore()
    problems = store.apply(external("bad", "192.0.2.1"))
    assert problems and "externalName" in problems[0].message
    assert ask(store, f"bad.{Z}")[0] == "NXDOMAIN"


# --- 2.6 pods ------------------------------------------------------------------------------------


def test_pod_records_insecure_needs_an_existing_namespace() -> None:
    store = store_of(namespace("default"))
    assert ask(store, "10-244-1-5.default.pod.cluster.local") == ("NOERROR", ["10.244.1.5"], [], [])
    assert ask(store, "fd00-244--5.default.pod.cluster.local", "AAAA")[1] == ["fd00:244::5"]
    assert ask(store, "10-244-1-5.default.pod.cluster.local", "AAAA")[0] == "NOERROR"
    assert ask(store, "10-244-1-5.nowhere.pod.cluster.local")[0] == "NXDOMAIN"
    assert ask(store, "10-244-1-300.default.pod.cluster.local")[0] == "NXDOMAIN"


def test_pod_records_verified() -> None:
    store = store_of(pod("a", ["10.244.1.5", "fd00:244::5"]), pod("done", ["10.244.1.9"], phase="Succeeded"),
                     config=config(podRecords="verified"))
    assert ask(store, "10-244-1-5.default.pod.cluster.local")[1] == ["10.244.1.5"]
    assert ask(store, "fd00-244--5.default.pod.cluster.local", "AAAA")[1] == ["fd00:244::5"]
    assert ask(store, "10-244-1-6.default.pod.cluster.local")[0] == "NXDOMAIN"
    assert ask(store, "10-244-1-9.default.pod.cluster.local")[0] == "NXDOMAIN"  # finished pod
    store.apply(namespace("other"))
    assert ask(store, "10-244-1-5.other.pod.cluster.local")[0] == "NXDOMAIN"  # wrong namespace
    store.apply(pod("a", [], phase="Running"), deleted=True)
    assert ask(store, "10-244-1-5.default.pod.cluster.local")[0] == "NXDOMAIN"


def test_pod_records_disabled() -> None:
    store = store_of(pod("a", ["10.244.1.5"]), config=config(podRecords="disabled"))
    assert ask(store, "10-244-1-5.default.pod.cluster.local")[0] == "NXDOMAIN"


# --- NXDOMAIN vs NODATA, apex, zones -------------------------------------------------------------


@pytest.mark.parametrize(("name", "rcode"), [
    ("svc.cluster.local", "NOERROR"),
    ("pod.cluster.local", "NOERROR"),
    ("default.svc.cluster.local", "NOERROR"),  # a namespace with Services
    ("empty.svc.cluster.local", "NOERROR"),  # a Namespace object
    ("nowhere.svc.cluster.local", "NXDOMAIN"),
    ("foo.cluster.local", "NXDOMAIN"),
    ("web.nowhere.svc.cluster.local", "NXDOMAIN"),
    ("a.b.c.web.default.svc.cluster.local", "NXDOMAIN"),
    ("*.default.svc.cluster.local", "NXDOMAIN"),  # no wildcards, as in CoreDNS >= 1.9
    ("any.default.svc.cluster.local", "NXDOMAIN"),
    ("dns.cluster.local", "NOERROR"),
])
def test_nxdomain_versus_nodata(name: str, rcode: str) -> None:
    store = store_of(service("web"), namespace("empty"))
    found = store.lookup(name, QTYPE.A)
    assert (found.rcode, found.answer) == ({"NOERROR": 0, "NXDOMAIN": 3}[rcode], [])
    [soa] = found.authority
    assert str(soa.rname) == "cluster.local." and soa.ttl == 5
    assert str(soa.rdata).startswith("ns.dns.cluster.local. hostmaster.cluster.local. ")


def test_apex_soa_and_ns() -> None:
    store = RecordStore(nameservers=["10.96.0.10"])
    soa = ask(store, "cluster.local", "SOA")[1][0]
    assert soa.startswith("ns.dns.cluster.local. hostmaster.cluster.local.")
    assert ask(store, "cluster.local", "NS") == ("NOERROR", ["ns.dns.cluster.local."],
                                                 ["ns.dns.cluster.local. A 10.96.0.10"], [])
    assert ask(store, "ns.dns.cluster.local")[1] == ["10.96.0.10"]
    assert ask(store, "in-addr.arpa", "SOA")[1][0].startswith("ns.dns.in-addr.arpa.")


def test_names_outside_our_zones_are_not_ours() -> None:
    store = store_of(service("web"))
    assert store.lookup("example.com", QTYPE.A) is None
    assert store.lookup("cluster.local.example.com", QTYPE.A) is None


def test_additional_zones_and_narrow_reverse_zones() -> None:
    cfg = config(clusterDomain="k8s.example", additionalZones=["cluster.local"],
                 reverseZones=["10.96.0.0/16"])
    store = store_of(service("web"), endpoint_slice("web", [endpoint("10.244.0.9", "w")]), config=cfg)
    assert ask(store, "web.default.svc.k8s.example")[1] == ["10.96.0.10"]
    assert ask(store, f"web.{Z}", "SRV")[1] == [f"0 100 80 web.{Z}."]  # targets in the zone asked
    assert ask(store, "10.0.96.10.in-addr.arpa", "PTR")[1] == ["web.default.svc.k8s.example."]  # primary zone
    assert store.lookup("9.0.244.10.in-addr.arpa", QTYPE.PTR) is None  # outside 10.96.0.0/16


# --- incremental updates -------------------------------------------------------------------------


def test_incremental_updates() -> None:
    store = store_of(headless("db"), endpoint_slice("db", [endpoint("10.244.1.5", "db-0")]), service("web"))
    serial = store.serial
    store.apply(headless("db"))  # unchanged: no new serial
    assert store.serial == serial
    store.apply(endpoint_slice("db", [endpoint("10.244.1.5", "db-0", ready=False)]))
    assert ask(store, f"db.{Z}")[0] == "NXDOMAIN"
    assert store.lookup("5.1.244.10.in-addr.arpa", QTYPE.PTR).rcode == 3
    assert store.serial > serial
    store.apply(endpoint_slice("db", [endpoint("10.244.1.6", "db-1")], name="db-extra"))
    assert ask(store, f"db-1.db.{Z}")[1] == ["10.244.1.6"]
    store.apply(endpoint_slice("web", [endpoint("10.244.1.6", "db-1")], name="db-extra"))  # moved
    assert ask(store, f"db.{Z}")[0] == "NXDOMAIN"
    assert ask(store, "6.1.244.10.in-addr.arpa", "PTR")[1] == [f"db-1.web.{Z}."]
    store.apply(service("web"), deleted=True)
    assert ask(store, f"web.{Z}")[0] == "NXDOMAIN"
    assert store.lookup("10.0.96.10.in-addr.arpa", QTYPE.PTR).rcode == 3
    store.apply(endpoint_slice("db", []), deleted=True)
    store.apply(endpoint_slice("web", [], name="db-extra"), deleted=True)
    assert store.stats() == {"services": 1, "endpoint_slices": 0, "endpoints": 0, "pods": 0}


def test_a_service_that_turns_invalid_loses_its_records() -> None:
    store = store_of(service("web"))
    problems = store.apply(service("web", type="Bogus"))
    assert problems
    assert ask(store, f"web.{Z}")[0] == "NXDOMAIN"


def test_scale_is_cheap_and_bounded() -> None:
    """1,000 Services with 10 endpoints each: the store (parsing aside) is cheap to fill, update and ask."""
    parsed = []
    for i in range(1000):
        parsed.append(views.parse_service(headless(f"s{i}"))[0])
        eps = [endpoint(f"10.{i // 200}.{i % 200}.{j}", f"h{j}") for j in range(10)]
        parsed.append(views.parse_slice(endpoint_slice(f"s{i}", eps))[0])
    store = RecordStore()
    tracemalloc.start()
    started = time.perf_counter()
    for view in parsed:
        (store.upsert_service if isinstance(view, views.DNSService) else store.upsert_slice)(view)
    filled = time.perf_counter() - started
    size, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert filled < 2
    assert size / 10000 < 1000, f"{size / 10000:.0f} bytes per endpoint"
    update = views.parse_slice(endpoint_slice("s7", [endpoint(f"10.0.7.{j}", f"x{j}") for j in range(10)]))[0]
    started = time.perf_counter()
    for _ in range(1000):
        store.upsert_slice(update)
        store.delete_slice("default", update.name)
        store.lookup("h3.s999.default.svc.cluster.local", QTYPE.A)
    assert time.perf_counter() - started < 2
