"""Per-source response rate limiting for UDP, as CoreDNS's `ratelimit` and BIND's RRL do.

A UDP source address can be forged, so a server that answers every datagram is an amplifier aimed at
whoever's address the attacker writes in. With a limit, each source address gets at most `rate`
responses per second (a burst of as many), and what is over it is dropped unanswered. TCP needs no
limit: its handshake proves the source. Off by default (0), like the upstream servers.
"""

from __future__ import annotations

MAX_SOURCES = 100_000  # addresses tracked at once; past it all are forgotten (a flood of forged ones)


class ResponseRateLimit:
    """Token buckets by source address: `allow(source, now)` spends one token if there is one."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._buckets: dict[str, tuple[float, float]] = {}  # source -> (tokens, when counted)

    def allow(self, source: str, now: float) -> bool:
        tokens, then = self._buckets.get(source, (self.rate, now))
        tokens = min(self.rate, tokens + (now - then) * self.rate)
        if len(self._buckets) >= MAX_SOURCES and source not in self._buckets:
            self._buckets.clear()
        self._buckets[source] = (tokens - 1 if tokens >= 1 else tokens, now)
        return tokens >= 1
