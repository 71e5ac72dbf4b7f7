"""Client-side rate limiting toward the API server (pure: the caller passes the clock).

A token bucket as client-go's (`--kube-api-qps`, `--kube-api-burst` in Flux and
controller-runtime): `qps` tokens a second, at most `burst` saved, one per request. A request
that finds no token reserves the next one and waits for it, so requests leave in order and no
window of t seconds carries more than burst + qps * t of them. A cold start of thousands of
objects then queues here, in the operator, instead of in the API server's priority and fairness
queues, where it would crowd out other clients and draw 429s.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class TokenBucket:
    """`qps` <= 0 means no limit."""

    qps: float
    burst: int
    _tokens: float = field(init=False, default=0.0)
    _updated: float | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        if self.qps > 0 and self.burst < 1:
            raise ValueError("burst must be at least 1 when qps limits requests")

    def reserve(self, now: float) -> float:
        """Take the next token; the seconds to wait before sending (0 when one was saved)."""
        if self.qps <= 0:
            return 0.0
        if self._updated is None:
            tokens = float(self.burst)
        else:
            tokens = min(float(self.burst), self._tokens + (now - self._updated) * self.qps)
        # Tokens below zero are reserved ahead: later callers wait behind earlier ones.
        self._tokens, self._updated = tokens - 1, now
        return 0.0 if self._tokens >= 0 else -self._tokens / self.qps


def retry_after(header: str | None, attempt: int) -> float:
    """How long to wait before resending a request the API server answered 429: its
    Retry-After (whole seconds) when given, otherwise 1 s doubling per attempt, at most 30 s."""
    if header is not None and header.strip().isdigit():
        return min(float(header.strip()), 30.0)
    return min(float(2**attempt), 30.0)
