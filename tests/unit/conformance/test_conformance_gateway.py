"""The Gateway API conformance run's pure part: its command line, its skip list, reading `go test -v`."""

from __future__ import annotations

from pathlib import Path

import pytest

from operators.conformance import gateway
from operators.conformance.gateway import GatewayConformanceError, SuiteSkip

REPO = Path(__file__).resolve().parents[3]

OUTPUT = """\
=== RUN   TestConformance
=== RUN   TestConformance/HTTPRouteSimpleSameNamespace
=== RUN   TestConformance/HTTPRouteSimpleSameNamespace/0_request_to_/
    --- PASS: TestConformance/HTTPRouteSimpleSameNamespace/0_request_to_/ (0.01s)
    --- PASS: TestConformance/HTTPRouteSimpleSameNamespace (2.10s)
    --- FAIL: TestConformance/HTTPRouteHeaderMatching (30.00s)
    --- SKIP: TestConformance/HTTPRouteRequestMirror (0.00s)
    --- SKIP: TestConformance/GatewayModifyListeners (0.00s)
--- FAIL: TestConformance (100.00s)
"""


def test_results_are_the_suite_tests_not_their_subtests_nor_the_whole() -> None:
    assert gateway.results(OUTPUT) == {"HTTPRouteSimpleSameNamespace": "PASS", "HTTPRouteHeaderMatching": "FAIL",
                                       "HTTPRouteRequestMirror": "SKIP", "GatewayModifyListeners": "SKIP"}


def test_summary_counts_and_names_each_skip_with_its_reason() -> None:
    text = gateway.summary(gateway.results(OUTPUT), [SuiteSkip("GatewayModifyListeners", "because")])
    assert text.splitlines() == [
        "4 tests: 1 passed, 1 failed, 2 skipped",
        "FAIL  HTTPRouteHeaderMatching",
        "SKIP  GatewayModifyListeners: because",
        "SKIP  HTTPRouteRequestMirror: a feature knet does not claim (the suite skips it)"]


def test_command_names_class_profile_features_skips_and_report() -> None:
    argv = gateway.command(Path("/b/suite.test"), [SuiteSkip("A", "x"), SuiteSkip("B", "y")], Path("/o/r.yaml"),
                           "0.1.0")
    assert argv[0] == "/b/suite.test"
    for flag in ("-gateway-class=knet", "-conformance-profiles=GATEWAY-HTTP", "-skip-tests=A,B",
                 "-report-output=/o/r.yaml", "-version=0.1.0"):
        assert flag in argv
    features = next(a for a in argv if a.startswith("-supported-features=")).split("=", 1)[1].split(",")
    assert features[:3] == ["Gateway", "HTTPRoute", "ReferenceGrant"] and "HTTPRouteMethodMatching" in features
    assert "-supported-features=Gateway,X" in gateway.command(Path("t"), [], Path("r"), "v", features=("Gateway", "X"))
    assert not any(a.startswith("-run-test") for a in argv)
    assert "-run-test=X" in gateway.command(Path("t"), [], Path("r"), "v", run_test="X")
    assert not any(a.startswith("-skip-tests") for a in gateway.command(Path("t"), [], Path("r"), "v"))


def test_skips_need_a_reason() -> None:
    assert gateway.load_skips("- {test: A, reason: why}\n") == [SuiteSkip("A", "why")]
    with pytest.raises(GatewayConformanceError):
        gateway.load_skips("- {test: A}\n")
    with pytest.raises(GatewayConformanceError):
        gateway.load_skips("{test: A}\n")


def test_the_committed_skip_list_loads() -> None:
    gateway.load_skips((REPO / "conformance/gateway/skips.yaml").read_text())
