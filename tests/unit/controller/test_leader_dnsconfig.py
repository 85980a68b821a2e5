"""Who acts among the replicas (Kopf's peering rule) and which DNSConfig becomes the Corefile."""

from __future__ import annotations

import datetime

from operators.controller.dnsconfig import plan
from operators.controller.leader import is_active

NOW = datetime.datetime(2026, 1, 1, 12, 0, tzinfo=datetime.UTC)


def peer(priority: int, seconds_ago: int, lifetime: int = 60) -> dict:
    seen = (NOW - datetime.timedelta(seconds=seconds_ago)).isoformat()
    return {"priority": priority, "lifetime": lifetime, "lastseen": seen}


def test_highest_live_priority_is_active() -> None:
    status = {"a": peer(10, 1), "b": peer(20, 1)}
    assert is_active(status, "b", 20, NOW)
    assert not is_active(status, "a", 10, NOW)


def test_equal_priorities_pause_both_and_dead_peers_do_not_count() -> None:
    assert not is_active({"a": peer(5, 1), "b": peer(5, 1)}, "a", 5, NOW)
    assert is_active({"a": peer(5, 1), "b": peer(50, 61)}, "a", 5, NOW)
    assert is_active({"b": peer(50, 1, lifetime=0)}, "a", 5, NOW)
    assert is_active(None, "a", 5, NOW)


def dnsconfig(name: str, **spec: object) -> dict:
    return {"metadata": {"name": name}, "spec": spec}


def test_default_is_rendered_and_others_are_not_used() -> None:
    result = plan({"default": dnsconfig("default", hosts=[{"ip": "10.0.0.10", "hostnames": ["a.example"]}]),
                   "other": dnsconfig("other")})
    assert result.corefile and "10.0.0.10 a.example." in result.corefile
    assert result.verdicts["default"].ok and not result.verdicts["other"].ok
    assert result.verdicts["other"].reason == "NotUsed"


def test_invalid_default_is_not_written_and_says_why() -> None:
    result = plan({"default": dnsconfig("default", ttl=99999, hosts=[{"ip": "nope", "hostnames": ["a.example"]}])})
    assert result.corefile is None
    verdict = result.verdicts["default"]
    assert not verdict.ok and verdict.reason == "Invalid" and len(verdict.problems) == 2
    assert "ttl" in verdict.message


def test_no_default_leaves_the_corefile_alone() -> None:
    assert plan({}).corefile is None
