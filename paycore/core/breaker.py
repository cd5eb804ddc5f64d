"""A circuit breaker per channel (per process).

Closed: calls flow; the last ``window`` outcomes are kept. When at least
``min_calls`` were seen and ``failure_ratio`` of them failed (timeouts,
transport errors, 5xx), it opens: new payments fail fast with 503
CHANNEL_UNAVAILABLE for ``open_seconds``. Then half-open: one call goes
through as a probe; its success closes the breaker, its failure opens it
again. Recovery queries are never blocked (they must reach the channel
eventually) and do not count: they revisit one order's trouble (a slow or
odd order) again and again, which says little about the channel's health
and, after a restart, would open the breaker on leftovers alone.
"""
from __future__ import annotations

import time
from collections import deque

from paycore.metrics import Metrics

CLOSED, HALF_OPEN, OPEN = 0, 1, 2


class Breaker:
    def __init__(self, channel: str, window: int = 20, failure_ratio: float = 0.5, min_calls: int = 10,
                 open_seconds: float = 5.0, *, metrics: Metrics) -> None:
        self.channel = channel
        self.metrics = metrics
        self.window = window
        self.failure_ratio = failure_ratio
        self.min_calls = min_calls
        self.open_seconds = open_seconds
        self.state = CLOSED
        self._outcomes: deque[bool] = deque(maxlen=window)
        self._opened_at = 0.0
        self._probe_in_flight = False
        self.metrics.breaker_state.labels(channel).set(CLOSED)

    def _set(self, state: int) -> None:
        self.state = state
        self.metrics.breaker_state.labels(self.channel).set(state)

    def allow(self) -> bool:
        """May a new payment be sent? (Claims the probe when half-open.)"""
        if self.state == CLOSED:
            return True
        if self.state == OPEN and time.monotonic() - self._opened_at >= self.open_seconds:
            self._set(HALF_OPEN)
            self._probe_in_flight = False
        if self.state == HALF_OPEN and not self._probe_in_flight:
            self._probe_in_flight = True
            return True
        return False

    def release_probe(self) -> None:
        """The claimed probe never reached the channel: let the next call probe."""
        self._probe_in_flight = False

    def record(self, ok: bool) -> None:
        if self.state == HALF_OPEN:
            if ok:
                self._outcomes.clear()
                self._set(CLOSED)
            else:
                self._opened_at = time.monotonic()
                self._set(OPEN)
            self._probe_in_flight = False
            return
        self._outcomes.append(ok)
        if self.state == CLOSED and len(self._outcomes) >= self.min_calls:
            failures = self._outcomes.count(False)
            if failures / len(self._outcomes) >= self.failure_ratio:
                self._opened_at = time.monotonic()
                self._set(OPEN)
