"""Runs -> per-suite counts, the tests two runs disagree on, and the text of the table. Pure.

A run is one suite's JUnit report plus what the runner recorded (run.json: the suite's focus and
the skips it used). Only the tests the suite selects are counted: a test the focus selects and a
skips.yaml entry takes out is "skipped", with that entry's reason; one that skipped itself says its
own. The table is Markdown, so that conformance/README.md can hold it as printed.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from .junit import Report, Result
from .skips import Skip, reason_for


@dataclass(frozen=True)
class SuiteRun:
    suite: str
    report: Report
    focus: str = ""  # "" -> the report's own FocusStrings
    skips: tuple[Skip, ...] = ()  # the entries the run used, to say why a test was left out


@dataclass(frozen=True)
class Summary:
    suite: str
    passed: list[str] = field(default_factory=list)
    failed: list[Result] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (name, reason)
    setup_failures: list[Result] = field(default_factory=list)
    seconds: float = 0.0
    retried: list[tuple[str, int]] = field(default_factory=list)  # (name, attempts) of specs that ran again
    times: dict[str, float] = field(default_factory=dict)  # seconds of each test that ran

    @property
    def selected(self) -> int:
        return len(self.passed) + len(self.failed) + len(self.skipped)

    def states(self) -> dict[str, str]:
        out = dict.fromkeys(self.passed, "passed")
        out.update((r.name, "failed") for r in self.failed)
        out.update((n, "skipped") for n, _ in self.skipped)
        return out


def selected(run: SuiteRun) -> list[Result]:
    """The run's results for the tests its focus selects (all tests, if no focus is known)."""
    focus = run.focus or run.report.focus
    pattern = re.compile(focus) if focus else None
    return [r for name, r in sorted(run.report.tests.items()) if pattern is None or pattern.search(name)]


def skip_reason(result: Result, skips: Iterable[Skip]) -> str:
    if result.message:
        return result.message  # the test skipped itself
    entry = reason_for(result.name, skips)
    return entry.reason if entry else "left out by the run's --skip"


def summarize(run: SuiteRun) -> Summary:
    s = Summary(run.suite, setup_failures=run.report.setup_failures, seconds=run.report.seconds)
    for r in selected(run):
        if r.attempts > 1:
            s.retried.append((r.name, r.attempts))
        if r.state != "skipped":
            s.times[r.name] = r.seconds
        if r.state == "passed":
            s.passed.append(r.name)
        elif r.state == "failed":
            s.failed.append(r)
        else:
            s.skipped.append((r.name, skip_reason(r, run.skips)))
    return s


@dataclass(frozen=True)
class Difference:
    name: str
    run: str  # passed | failed | skipped | absent
    baseline: str


def compare(run: Summary, baseline: Summary) -> list[Difference]:
    """The tests whose result differs between two runs of a suite (absent: not selected there)."""
    ours, theirs = run.states(), baseline.states()
    return [Difference(n, ours.get(n, "absent"), theirs.get(n, "absent"))
            for n in sorted(ours.keys() | theirs.keys()) if ours.get(n) != theirs.get(n)]


SLOWER = (1.5, 10.0)  # a test is listed as slower when it takes 1.5 times as long and 10 s more


def slower(run: Summary, baseline: Summary) -> list[tuple[str, float, float]]:
    """(name, seconds, baseline seconds) of the tests both passed where the run took markedly longer."""
    factor, margin = SLOWER
    both = ((n, run.times[n], baseline.times[n]) for n in set(run.passed) & set(baseline.passed))
    return sorted(((n, ours, theirs) for n, ours, theirs in both if ours > factor * theirs and ours - theirs > margin),
                  key=lambda t: t[2] - t[1])


def duration(seconds: float) -> str:
    m, s = divmod(round(seconds), 60)
    return f"{m}m {s:02d}s" if m else f"{s}s"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _counts(s: Summary | None) -> list[str]:
    return [str(len(s.passed)), str(len(s.failed)), str(len(s.skipped))] if s else ["-", "-", "-"]


def render(runs: Sequence[Summary], baselines: Sequence[Summary] = ()) -> str:
    """The table: one row per suite, then each suite's failures, skip reasons and differences."""
    base = {b.suite: b for b in baselines}
    head = ["suite", "passed", "failed", "skipped", "selected", "time"]
    if baselines:
        head += ["baseline passed", "baseline failed", "baseline skipped", "baseline time"]
    lines = ["| " + " | ".join(head) + " |", "| --- |" + " ---: |" * (len(head) - 1)]
    for s in runs:
        row = [s.suite, *_counts(s), str(s.selected), duration(s.seconds)]
        if baselines:
            b = base.get(s.suite)
            row += [*_counts(b), duration(b.seconds) if b else "-"]
        lines.append("| " + " | ".join(row) + " |")
    for s in runs:
        for r in s.setup_failures:
            lines += ["", f"{s.suite}: suite setup failed ({r.name}): {r.summary}"]
        if s.failed:
            lines += ["", f"Failed ({s.suite}):"]
            lines += [f"- {r.name}" + (f" ({r.status})" if r.status != "failed" else "")
                      + (f": {r.summary}" if r.summary else "") for r in s.failed]
        if s.skipped:
            lines += ["", f"Skipped ({s.suite}), by reason:"]
            counts = Counter(reason for _, reason in s.skipped)
            lines += [f"- {n} x {reason}" for reason, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
        for label, summary in (("", s), (" (baseline)", base.get(s.suite))):
            if summary and summary.retried:
                lines += ["", f"Passed or failed only after a retry ({s.suite}{label}):"]
                lines += [f"- {name}: {n} attempts" for name, n in summary.retried]
        if (b := base.get(s.suite)) and (diffs := compare(s, b)):
            lines += ["", f"Differs from the baseline ({s.suite}):", "",
                      "| test | run | baseline |", "| --- | --- | --- |"]
            lines += [f"| {_cell(d.name)} | {d.run} | {d.baseline} |" for d in diffs]
        if b and (slow := slower(s, b)):
            lines += ["", f"Slower than the baseline ({s.suite}; both passed):", "",
                      "| test | run | baseline |", "| --- | ---: | ---: |"]
            lines += [f"| {_cell(n)} | {duration(a)} | {duration(c)} |" for n, a, c in slow]
    return "\n".join(lines) + "\n"
