"""e2e.test's JUnit report (--report-dir writes junit_01.xml) -> per-test results. Pure.

The file lists every spec of e2e.test, not only those the run selected: a spec left out by --focus
or --skip is `status="skipped"` with the bare message "skipped", one that skipped itself at run time
says why ("skipped - <reason>"). Which specs the run selected is therefore decided by the focus
(suite.py / the run's run.json), not by this file alone. Suite nodes ([SynchronizedBeforeSuite], ...)
are kept apart: a failure there fails every test, and says more than any single test does.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass, replace

# ginkgo's spec states (types.SpecState.String()), reduced to the three a table counts.
_FAILED = {"failed", "timedout", "panicked", "interrupted", "aborted"}
_SKIPPED = {"skipped", "pending"}


class JUnitError(ValueError):
    """Not a ginkgo JUnit report."""


@dataclass(frozen=True)
class Result:
    name: str  # the spec's full text, without ginkgo's "[It] "
    state: str  # passed | failed | skipped
    status: str  # ginkgo's own state (timedout, panicked, ...)
    seconds: float
    message: str = ""  # a skip's reason ("" when --focus/--skip left it out), or the failure's text
    attempts: int = 1  # runs of the spec: more than 1 when it failed and ginkgo's --flake-attempts retried it

    @property
    def filtered(self) -> bool:
        """Left out by --focus/--skip, as opposed to run, or skipped by the test itself."""
        return self.state == "skipped" and not self.message

    @property
    def summary(self) -> str:
        """The first line that says what went wrong (ginkgo starts failures with "[FAILED] ")."""
        for line in self.message.splitlines():
            line = line.strip()
            if line:
                return line.removeprefix("[FAILED] ").removeprefix("[TIMEDOUT] ").removeprefix("[PANICKED] ")
        return ""


@dataclass(frozen=True)
class Report:
    tests: dict[str, Result]  # [It] specs by name
    setup: tuple[Result, ...]  # suite nodes, in file order
    focus: str  # --focus as the run saw it (the FocusStrings property; "" if none)
    skip: str  # --skip likewise
    seconds: float
    succeeded: bool

    @property
    def setup_failures(self) -> list[Result]:
        return [r for r in self.setup if r.state == "failed"]


def _state(status: str) -> str:
    if status in _FAILED:
        return "failed"
    if status in _SKIPPED:
        return "skipped"
    return "passed"


def _result(case: ET.Element) -> tuple[bool, Result]:
    """(is an [It] spec, its result)."""
    raw = case.get("name", "")
    is_spec = raw.startswith("[It] ")
    status = case.get("status") or ("failed" if case.find("failure") is not None else "passed")
    state = _state(status)
    message = ""
    if state == "skipped" and (skipped := case.find("skipped")) is not None:
        message = (skipped.get("message") or "").removeprefix("skipped").removeprefix(" - ").strip()
    elif state == "failed":
        node = case.find("failure")
        if node is None:
            node = case.find("error")
        if node is not None:
            message = (node.get("message") or "") or (node.text or "")
    return is_spec, Result(raw.removeprefix("[It] "), state, status, float(case.get("time") or 0), message.strip())


_RANK = {"failed": 2, "passed": 1, "skipped": 0}


def parse_junit(text: str) -> Report:
    """A ginkgo JUnit report (one <testsuite>, as e2e.test writes) -> Report."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as e:
        raise JUnitError(f"not XML: {e}") from e
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    if suite is None:
        raise JUnitError(f"no <testsuite> in <{root.tag}>")
    props = {p.get("name"): p.get("value", "") for p in suite.iter("property")}
    tests: dict[str, Result] = {}
    setup: list[Result] = []
    for case in suite.iter("testcase"):
        is_spec, r = _result(case)
        if not is_spec:
            setup.append(r)
        elif r.name not in tests or _RANK[r.state] > _RANK[tests[r.name].state]:
            tests[r.name] = r  # a name twice (rare): the worse result counts
    return Report(
        tests=tests,
        setup=tuple(setup),
        focus=props.get("FocusStrings", ""),
        skip=props.get("SkipStrings", ""),
        seconds=float(suite.get("time") or 0),
        succeeded=props.get("SuiteSucceeded", "") == "true",
    )


def parse_attempts(text: str) -> dict[str, int]:
    """ginkgo's JSON report (e2e's <report-dir>/ginkgo/report.json) -> the attempts of each [It] spec that ran
    more than once. e2e's own JUnit leaves out the timelines of passed specs, and with them any retry."""
    try:
        suites = json.loads(text)
    except json.JSONDecodeError as e:
        raise JUnitError(f"not JSON: {e}") from e
    out: dict[str, int] = {}
    for suite in suites if isinstance(suites, list) else [suites]:
        for spec in suite.get("SpecReports") or []:
            if spec.get("LeafNodeType") == "It" and int(spec.get("NumAttempts") or 1) > 1:
                texts = [*(spec.get("ContainerHierarchyTexts") or []), spec.get("LeafNodeText") or ""]
                out[" ".join(t for t in texts if t)] = int(spec["NumAttempts"])
    return out


def with_attempts(report: Report, attempts: dict[str, int]) -> Report:
    """The report with each retried spec's attempts."""
    tests = {name: replace(r, attempts=attempts.get(name, r.attempts)) for name, r in report.tests.items()}
    return replace(report, tests=tests)
