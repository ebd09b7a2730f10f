"""A spending limit for one run (``mmaip build --max-cost``).

A call is admitted only while the money already spent, plus the estimates of the calls in flight, plus its own
estimate stays within the limit; a call that does not fit is not made (nor recorded), so the run stops cleanly
before the budget is exceeded and a rerun with a larger budget goes on where it stopped. Estimates are upper
bounds (full ``max_tokens`` of output), so a run tends to stop a little early rather than late.
"""

from __future__ import annotations

import asyncio
import threading

__all__ = ["Budget"]


class Budget:
    """``limit`` in USD (None: no limit); ``spent`` what earlier runs of the same folder already paid."""

    def __init__(self, limit: float | None, spent: float = 0.0) -> None:
        self.limit = limit
        self.spent = spent
        self.reserved = 0.0
        self.in_flight = 0
        self.refused = 0
        self._lock = threading.Lock()

    def admit(self, estimate: float) -> bool:
        """Reserve ``estimate`` for a call about to start; False when it would not fit."""
        with self._lock:
            if self.limit is not None and self.spent + self.reserved + estimate > self.limit:
                self.refused += 1
                return False
            self.reserved += estimate
            self.in_flight += 1
            return True

    async def wait_admit(self, estimate: float) -> bool:
        """Like :meth:`admit`, but a call that would fit once the calls in flight settle (they reserve upper
        bounds and usually cost less) waits for them instead of being refused."""
        while True:
            with self._lock:
                if self.limit is None or self.spent + self.reserved + estimate <= self.limit:
                    self.reserved += estimate
                    self.in_flight += 1
                    return True
                # counted, not read off the float `reserved`, which settles to a rounding error, not to 0
                if self.spent + estimate > self.limit or self.in_flight == 0:
                    self.refused += 1
                    return False
            await asyncio.sleep(0.02)

    def record(self, actual: float) -> None:
        """Spending of a call this run did not admit (e.g. a provider batch an earlier run submitted)."""
        with self._lock:
            self.spent += actual

    def settle(self, estimate: float, actual: float) -> None:
        """A call admitted with ``estimate`` ended and cost ``actual``."""
        with self._lock:
            self.reserved -= estimate
            self.in_flight -= 1
            self.spent += actual

    @property
    def exhausted(self) -> bool:
        """True once any call was refused."""
        return self.refused > 0
