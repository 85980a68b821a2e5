"""conformance/skips.yaml -> ginkgo's --skip, and the reason behind each skipped test."""

import re

import pytest

from operators.conformance.runner import skips_file
from operators.conformance.skips import SkipsError, exact, load_skips, reason_for, skip_regex, unused
from operators.conformance.suites import QUICK

SUITE = "Kubernetes e2e suite"  # ginkgo searches "<suite description> <spec text>"


def test_an_exact_name_matches_itself_and_nothing_longer():
    rx = exact("[sig-network] DNS should provide DNS for services [Conformance]")
    assert re.search(rx, f"{SUITE} [sig-network] DNS should provide DNS for services [Conformance]")
    assert re.search(rx, "[sig-network] DNS should provide DNS for services [Conformance]")
    assert not re.search(rx, f"{SUITE} [sig-network] DNS should provide DNS for services [Conformance] too")


def test_brackets_and_dots_in_a_name_are_literal():
    rx = exact("[sig-network] a.b [Slow]")
    assert re.search(rx, "[sig-network] a.b [Slow]") and not re.search(rx, "[sig-network] axb [Slow]")
    assert not re.search(rx, "[sig-network] a.b S")


def test_a_regex_entry_is_searched_anywhere_in_the_name():
    skips = load_skips("skips: [{regex: '\\[Disruptive\\]', reason: restarts things}]")
    assert reason_for("[sig-network] Services should work after restarting apiserver [Disruptive]", skips).reason \
        == "restarts things"
    assert reason_for("[sig-network] Services should serve a basic endpoint", skips) is None


def test_names_share_one_reason():
    skips = load_skips("skips: [{names: ['[x] a', '[x] b'], reason: needs an image}]")
    assert [s.label for s in skips] == ["[x] a", "[x] b"] and {s.reason for s in skips} == {"needs an image"}


def test_the_first_matching_entry_gives_the_reason():
    skips = load_skips("skips: [{name: '[x] a [Slow]', reason: image}, {regex: Slow, reason: slow}]")
    assert reason_for("[x] a [Slow]", skips).reason == "image"
    assert reason_for("[x] b [Slow]", skips).reason == "slow"


def test_the_skip_regex_is_one_alternation_of_the_entries():
    skips = load_skips("skips: [{regex: 'SCTP', reason: r}, {name: '[x] a', reason: r}]")
    assert skip_regex(skips) == "(?:SCTP)|(?:(?:^| )\\[x\\] a$)"
    assert skip_regex([]) == ""


@pytest.mark.parametrize("text", [
    "skips: [{name: '[x] a'}]",                              # no reason
    "skips: [{name: '[x] a', regex: a, reason: r}]",         # two ways at once
    "skips: [{regex: '(', reason: r}]",                      # not a regex
    "skips: [{names: [], reason: r}]",                       # nothing named
    "skips: [{name: '[x] a', reason: r, suite: quick}]",     # a key nobody reads
])
def test_a_malformed_entry_is_an_error_not_a_silent_gap(text):
    with pytest.raises(SkipsError):
        load_skips(text)


def test_entries_that_match_no_test_are_reported():
    skips = load_skips("skips: [{name: '[x] gone', reason: r}, {regex: here, reason: r}]")
    assert [s.label for s in unused(skips, ["[x] is here"])] == ["[x] gone"]


def test_the_committed_skip_list_loads_and_leaves_the_quick_suite_alone():
    skips = load_skips(skips_file().read_text())
    assert skips and all(s.reason for s in skips)
    assert [n for n in QUICK if reason_for(n, skips)] == []
