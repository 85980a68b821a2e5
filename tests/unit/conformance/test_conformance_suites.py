"""The named suites: which upstream tests each selects, and what e2e.test --list-tests prints."""

import os
import subprocess
from pathlib import Path

import pytest

from operators.conformance.junit import parse_junit
from operators.conformance.runner import JUNIT, e2e_bin_dir, skips_file
from operators.conformance.skips import load_skips, skip_regex
from operators.conformance.suites import QUICK, SUITES, parse_test_list, plan

SERVICE = "[sig-network] Services should serve a basic endpoint from pods [Conformance]"
LATENCY = "[sig-network] Service endpoints latency should not be very high [Conformance]"
NETPOL = ("[sig-network] Netpol NetworkPolicy between server and client should enforce updated policy "
          "[Feature:NetworkPolicy]")
APPS = "[sig-apps] Deployment should run the lifecycle of a Deployment [Conformance]"


def selected(suite, *names):
    return [n for n in names if SUITES[suite].selects(n)]


def test_conformance_is_sig_networks_conformance_tests():
    assert selected("conformance", SERVICE, LATENCY, NETPOL, APPS) == [SERVICE, LATENCY]


def test_netpol_is_the_networkpolicy_feature():
    assert selected("netpol", SERVICE, NETPOL, APPS) == [NETPOL]


def test_services_dns_takes_services_not_service_latency():
    dns = "[sig-network] DNS should support configurable pod resolv.conf"
    assert selected("services-dns", SERVICE, LATENCY, dns, NETPOL) == [SERVICE, dns]


def test_quick_is_exactly_its_fixed_list():
    longer = QUICK[0].replace("[Conformance]", "again [Conformance]")
    assert selected("quick", *QUICK, longer, SERVICE.replace("basic", "fancy")) == list(QUICK)
    assert 3 <= len(QUICK) <= 6


def test_list_tests_lines_give_the_names():
    out = ("The following spec names can be used with 'ginkgo run --focus/skip':\n"
           f"    k8s.io/kubernetes@v1.37.1/test/e2e/network/service.go:733: {SERVICE}\n"
           "    k8s.io/kubernetes@v1.37.1/test/e2e/common/network/networking.go:85: "
           "[sig-network] Networking Granular Checks: Pods should function for intra-pod communication: http\n")
    assert parse_test_list(out) == [SERVICE, "[sig-network] Networking Granular Checks: Pods should function for "
                                    "intra-pod communication: http"]


def test_a_plan_says_which_skip_takes_a_selected_test_out():
    skips = load_skips("skips: [{regex: latency, reason: slow here}]")
    planned = plan(SUITES["conformance"], [SERVICE, LATENCY, APPS], skips)
    assert [(p.name, p.skip and p.skip.reason) for p in planned] == [(LATENCY, "slow here"), (SERVICE, None)]


E2E = e2e_bin_dir() / "e2e.test"


@pytest.fixture(scope="module")
def upstream_names() -> list[str]:
    if not os.access(E2E, os.X_OK):
        pytest.skip("needs hack/build-e2e.sh's e2e.test")
    out = subprocess.run([str(E2E), "--list-tests"], capture_output=True, text=True, timeout=120, check=True)
    return parse_test_list(out.stdout)


@pytest.mark.parametrize("suite", sorted(SUITES))
def test_ginkgo_selects_what_the_plan_says(suite: str, upstream_names: list[str], tmp_path: Path):
    """Go's RE2 reads the focus and the skips as Python does: a dry run (no cluster) runs exactly the plan."""
    skips = load_skips(skips_file().read_text())
    names = upstream_names
    subprocess.run([str(E2E), "--ginkgo.dry-run", f"--ginkgo.focus={SUITES[suite].focus}",
                    f"--ginkgo.skip={skip_regex(skips)}", f"--report-dir={tmp_path}"],
                   capture_output=True, timeout=120, check=True)
    ran = {n for n, r in parse_junit((tmp_path / JUNIT).read_text()).tests.items() if r.state == "passed"}
    assert ran == {p.name for p in plan(SUITES[suite], names, skips) if p.skip is None}
