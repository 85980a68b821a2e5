"""Per-source UDP response rate limiting: a forged source cannot aim all our answers at one victim."""

from __future__ import annotations

from operators.dns.ratelimit import ResponseRateLimit


def test_a_source_gets_its_rate_and_no_more() -> None:
    limit = ResponseRateLimit(rate=5)
    assert [limit.allow("10.0.0.1", 0.0) for _ in range(6)] == [True] * 5 + [False]
    assert limit.allow("10.0.0.2", 0.0), "another source has its own budget"


def test_the_budget_refills_with_time() -> None:
    limit = ResponseRateLimit(rate=5)
    for _ in range(5):
        limit.allow("10.0.0.1", 0.0)
    assert not limit.allow("10.0.0.1", 0.1) and limit.allow("10.0.0.1", 0.3)
