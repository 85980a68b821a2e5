"""e2e.test's junit_01.xml -> per-test results."""

import pytest

from operators.conformance.junit import JUnitError, parse_junit


def report(cases: str, focus: str = ""):
    return parse_junit(f"""<testsuites><testsuite name="Kubernetes e2e suite" time="61.5">
      <properties><property name="SuiteSucceeded" value="false"/><property name="FocusStrings" value="{focus}"/>
      </properties>{cases}</testsuite></testsuites>""")


def test_a_passed_spec_loses_ginkgos_it_prefix():
    r = report('<testcase name="[It] [sig-network] Services a" status="passed" time="12.5"/>')
    assert r.tests["[sig-network] Services a"].state == "passed"
    assert r.tests["[sig-network] Services a"].seconds == 12.5


def test_a_failure_is_summed_up_by_its_first_line():
    r = report("""<testcase name="[It] [sig-network] Services a" status="failed" time="300">
      <failure type="failed">[FAILED] service not reachable within 2m0s
      In [It] at: service.go:100</failure></testcase>""")
    assert r.tests["[sig-network] Services a"].summary == "service not reachable within 2m0s"


def test_a_timeout_counts_as_a_failure_and_keeps_its_status():
    r = report('<testcase name="[It] a" status="timedout" time="900"><failure type="timedout"/></testcase>')
    assert (r.tests["a"].state, r.tests["a"].status) == ("failed", "timedout")


def test_left_out_by_focus_is_told_apart_from_skipped_by_the_test():
    r = report("""<testcase name="[It] a" status="skipped" time="0"><skipped message="skipped"/></testcase>
      <testcase name="[It] b" status="skipped" time="1"><skipped message="skipped - needs 3 nodes"/></testcase>""")
    assert r.tests["a"].filtered and r.tests["a"].message == ""
    assert not r.tests["b"].filtered and r.tests["b"].message == "needs 3 nodes"


def test_suite_nodes_are_kept_apart_and_their_failures_show():
    r = report("""<testcase name="[SynchronizedBeforeSuite]" status="failed" time="600">
      <failure type="failed">[FAILED] nodes not ready</failure></testcase>
      <testcase name="[It] a" status="skipped" time="0"><skipped message="skipped"/></testcase>""")
    assert list(r.tests) == ["a"] and [f.summary for f in r.setup_failures] == ["nodes not ready"]


def test_the_run_keeps_its_focus_and_time():
    r = report("", focus="\\[sig-network\\].*\\[Conformance\\]")
    assert (r.focus, r.seconds, r.succeeded) == ("\\[sig-network\\].*\\[Conformance\\]", 61.5, False)


@pytest.mark.parametrize("text", ["not xml", "<testsuites/>"])
def test_something_else_is_an_error(text):
    with pytest.raises(JUnitError):
        parse_junit(text)
