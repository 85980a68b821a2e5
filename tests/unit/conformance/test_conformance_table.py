"""Runs -> counts per suite, the tests two runs disagree on, the Markdown table."""

from operators.conformance.junit import parse_junit, with_attempts
from operators.conformance.skips import load_skips
from operators.conformance.table import SuiteRun, compare, duration, render, slower, summarize

SKIPS = load_skips("skips: [{regex: 'DNS for the cluster', reason: needs glibc-dns-testing}]")


def run(cases: str, suite: str = "conformance", focus: str = "Conformance") -> SuiteRun:
    xml = f'<testsuite name="Kubernetes e2e suite" time="125">{cases}</testsuite>'
    return SuiteRun(suite, parse_junit(xml), focus, tuple(SKIPS))


def case(name: str, status: str = "passed", extra: str = "", seconds: float = 1) -> str:
    return f'<testcase name="[It] {name}" status="{status}" time="{seconds}">{extra}</testcase>'


LEFT_OUT = '<skipped message="skipped"/>'


def test_only_what_the_focus_selects_is_counted():
    s = summarize(run(case("a [Conformance]") + case("b [Slow]", "skipped", LEFT_OUT)))
    assert (s.passed, s.failed, s.skipped) == (["a [Conformance]"], [], [])


def test_a_skipped_test_says_which_skip_took_it_out():
    s = summarize(run(case("DNS for the cluster [Conformance]", "skipped", LEFT_OUT)))
    assert s.skipped == [("DNS for the cluster [Conformance]", "needs glibc-dns-testing")]


def test_a_test_that_skipped_itself_keeps_its_own_reason():
    s = summarize(run(case("c [Conformance]", "skipped", '<skipped message="skipped - needs 3 nodes"/>')))
    assert s.skipped == [("c [Conformance]", "needs 3 nodes")]


def test_without_a_focus_every_test_counts():
    s = summarize(run(case("a") + case("b", "failed", "<failure>[FAILED] no</failure>"), focus=""))
    assert (s.passed, [r.name for r in s.failed]) == (["a"], ["b"])


def test_the_difference_is_the_tests_whose_result_changed():
    ours = summarize(run(case("a [Conformance]") + case("b [Conformance]", "failed", "<failure/>")))
    base = summarize(run(case("a [Conformance]") + case("b [Conformance]") + case("c [Conformance]")))
    assert [(d.name, d.run, d.baseline) for d in compare(ours, base)] == [
        ("b [Conformance]", "failed", "passed"), ("c [Conformance]", "absent", "passed")]


def test_the_table_has_a_row_per_suite_and_names_each_failure():
    failed = case("b [Conformance]", "failed", "<failure>[FAILED] timed out</failure>")
    skipped = case("DNS for the cluster [Conformance]", "skipped", LEFT_OUT)
    s = summarize(run(case("a [Conformance]") + failed + skipped))
    assert render([s]).splitlines() == [
        "| suite | passed | failed | skipped | selected | time |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
        "| conformance | 1 | 1 | 1 | 3 | 2m 05s |",
        "", "Failed (conformance):", "- b [Conformance]: timed out",
        "", "Skipped (conformance), by reason:", "- 1 x needs glibc-dns-testing"]


def test_with_a_baseline_the_table_adds_its_counts_and_the_differences():
    ours = summarize(run(case("a [Conformance]", "failed", "<failure/>")))
    base = summarize(run(case("a [Conformance]")))
    lines = render([ours], [base]).splitlines()
    assert lines[2] == "| conformance | 0 | 1 | 0 | 1 | 2m 05s | 1 | 0 | 0 | 2m 05s |"
    assert lines[-1] == "| a [Conformance] | failed | passed |"


def test_a_test_is_slower_than_the_baseline_at_half_as_long_again_and_10_seconds_more():
    ours = summarize(run(case("a [Conformance]", seconds=40) + case("b [Conformance]", seconds=14)))
    base = summarize(run(case("a [Conformance]", seconds=20) + case("b [Conformance]", seconds=5)))
    assert slower(ours, base) == [("a [Conformance]", 40, 20)]


def test_a_retried_spec_is_listed_with_its_attempts():
    report = parse_junit(f'<testsuite time="1">{case("a [Conformance]")}</testsuite>')
    retried = SuiteRun("conformance", with_attempts(report, {"a [Conformance]": 2}), "Conformance")
    assert "- a [Conformance]: 2 attempts" in render([summarize(retried)]).splitlines()


def test_durations_read_as_minutes_and_seconds():
    assert (duration(42.4), duration(3725)) == ("42s", "62m 05s")
