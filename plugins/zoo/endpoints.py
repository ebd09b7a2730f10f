"""Several servers of one model behind one zoo entry (``base_urls``): each call goes to the least busy.

Each endpoint has its own SDK client and at most ``concurrency`` calls in flight; the core runs up to
``concurrency`` x endpoints calls of the entry at once, so some endpoint always has room. A call that fails
with a :class:`~mmaip_core.TransientError` (lost connection, 5xx, 429) or runs out of time is retried by the
core on another endpoint, never on the one that just failed it, and rests that endpoint for a backoff that
doubles with each failure in a row (``backoff_s`` up to ``max_backoff_s``): while it rests, calls go to the
other endpoints, and wait for room there rather than go to it; when the rest ends, one call at a time tries
it again, and one success ends its failures. When no endpoint is free of failures, calls go on as if none had
failed (the core's own backoff spaces them), so a single endpoint behaves exactly as without a pool.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from mmaip_core import CallOptions, TransientError
from mmaip_plugins.apis.common import ClientCache

__all__ = ["Endpoint", "EndpointPool"]

WAIT_S = 0.01
"""How often a call that waits for room on a working endpoint looks again."""


@dataclass
class Endpoint:
    """One server: its client, its calls in flight, its failures in a row and when its rest ends."""

    clients: ClientCache
    in_flight: int = 0
    failures: int = 0
    rest_until: float = 0.0

    def room(self, limit: int, now: float) -> int:
        """Calls it may have in flight now: ``limit`` without failures; after failures, none while it rests,
        then one (a probe)."""
        if self.failures == 0:
            return limit
        return 1 if self.rest_until <= now else 0


class EndpointPool:
    """Hands each call the endpoint with the fewest calls in flight (ties: round robin) among those with room,
    failing endpoints aside (see the module)."""

    def __init__(self, clients: Sequence[Callable[[], Any]], options: CallOptions) -> None:
        if not clients:
            raise ValueError("an endpoint pool needs at least one endpoint")
        self.endpoints = [Endpoint(ClientCache(factory)) for factory in clients]
        self.limit = options.concurrency
        self._backoff_s, self._max_backoff_s = options.backoff_s, options.max_backoff_s
        self._next = 0  # where the round robin over tied endpoints starts
        self._failed: dict[str, Endpoint] = {}  # call key -> the endpoint its last attempt failed on

    def pick(self, avoid: Endpoint | None = None) -> Endpoint | None:
        """The endpoint the next call goes to, or None when it should wait for room. ``avoid`` (where the call's
        last attempt failed) is taken only when it is the only endpoint, or when every endpoint failed last and
        no other has room."""
        now = time.monotonic()
        every = self.endpoints[self._next :] + self.endpoints[: self._next]
        ring = [e for e in every if e is not avoid] or every
        if any(e.failures == 0 for e in ring):
            candidates = [e for e in ring if e.in_flight < e.room(self.limit, now)]
        else:  # every endpoint failed last: the core's backoff has spaced this call already
            candidates = [e for e in ring if e.in_flight < self.limit] or [e for e in every if e.in_flight < self.limit]
        if not candidates:
            return None
        chosen = min(candidates, key=lambda e: e.in_flight)  # the first of equals: round robin
        self._next = (self.endpoints.index(chosen) + 1) % len(self.endpoints)
        return chosen

    @asynccontextmanager
    async def lease(self, key: str) -> AsyncIterator[Endpoint]:
        """An endpoint for one attempt of call ``key``, counted in flight until the block ends; a TransientError
        (or a cancellation) rests it, and the call's next attempt goes elsewhere."""
        while (endpoint := self.pick(self._failed.get(key))) is None:
            await asyncio.sleep(WAIT_S)
        endpoint.in_flight += 1
        try:
            yield endpoint
        except (TransientError, asyncio.CancelledError):  # cancelled: the core's timeout ran out
            endpoint.failures += 1
            rest = min(self._backoff_s * 2 ** (endpoint.failures - 1), self._max_backoff_s)
            endpoint.rest_until = time.monotonic() + rest
            self._failed[key] = endpoint
            raise
        else:
            endpoint.failures, endpoint.rest_until = 0, 0.0
            self._failed.pop(key, None)
        finally:
            endpoint.in_flight -= 1

    async def aclose(self) -> None:
        """Close every endpoint's client of the running event loop; forget where calls failed."""
        self._failed.clear()
        for endpoint in self.endpoints:
            await endpoint.clients.aclose()
