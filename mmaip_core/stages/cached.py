"""The one ledger-backed call loop every stage uses (generation, judgement, evaluation)::

    content key -> ledger lookup -> what is left -> call (within the budget) -> store at once -> progress

Results the ledger already has as finished are reused, the rest are asked, and each result is committed the
moment it exists, so a killed run loses nothing and a rerun pays for nothing twice. :class:`StreamedCalls`
serves one key at a time, while a stage streams its samples (:mod:`mmaip_core.stages.stream`): a key asked
while its call is in flight waits for that call, and a call that failed in this run is not asked again
before the next run.
 :class:`Admission` reserves each API call's estimated cost in the run's budget before the call
starts and settles it with the actual cost when it ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Generic, TypeVar

from pydantic import BaseModel

from mmaip_core.store.ledger import DONE, FAILED, LedgerKind

if TYPE_CHECKING:
    from mmaip_core.calls.budget import Budget
    from mmaip_core.stages.run import StageRun

__all__ = ["Admission", "StreamedCalls"]

RecordT = TypeVar("RecordT", bound=BaseModel)
ItemT = TypeVar("ItemT")


class StreamedCalls(Generic[RecordT]):
    """The calls of one label (a zoo entry, a judge, an evaluator) while a stage streams.

    :meth:`get` serves a key from the ledger, from a call of this run (in flight, or failed), or asks it once.
    ``asked`` holds the keys this run called; ``cost`` sums what the keys served so far cost, once per key
    (earlier runs included). ``reuse(record)``: whether a finished result of the ledger is served (default: every
    one); one it refuses is asked again (``mmaip evaluate --retry-unreadable``)."""

    def __init__(
        self,
        run: StageRun,
        kind: LedgerKind,
        label: str,
        record: type[RecordT],
        total: int,
        reuse: Callable[[RecordT], bool] | None = None,
    ) -> None:
        self.run, self.kind, self.label, self.record, self.total = run, kind, label, record, total
        self.reuse = reuse
        self.in_flight: dict[str, asyncio.Future[RecordT | None]] = {}
        self.failed: dict[str, RecordT] = {}
        self.asked: set[str] = set()
        self.costed: set[str] = set()
        self.cost = 0.0
        self.served = 0
        self.skipped = 0

    async def get(self, key: str, ask: Callable[[], Awaitable[tuple[RecordT, bool, float] | None]]) -> RecordT | None:
        """The result of ``key``; ``ask()`` makes the call: (result, failed, cost), or None when it was not made
        (the budget refused it; then the result is None)."""
        if key in self.in_flight:
            shared = await asyncio.shield(self.in_flight[key])
            return self._served(key, shared, 0.0) if shared is not None else None
        if key in self.failed:
            return self._served(key, self.failed[key], 0.0)
        entry = self.run.ledger.get_many([key]).get(key)
        if entry is not None and entry.done:
            stored = self.record.model_validate(entry.record)
            if self.reuse is None or self.reuse(stored):
                return self._served(key, stored, entry.cost)
        future: asyncio.Future[RecordT | None] = asyncio.get_running_loop().create_future()
        self.in_flight[key] = future
        try:
            made = await ask()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: the waiting requests see it, and no warning is logged
            raise
        finally:
            del self.in_flight[key]
        result = self.store(key, *made) if made is not None else None
        future.set_result(result)
        return result

    def store(self, key: str, result: RecordT, failed: bool, cost: float) -> RecordT:
        """Commit the result of a call this run made (a failed one is asked again by the next run)."""
        self.run.ledger.put(key, self.kind, FAILED if failed else DONE, result.model_dump(mode="json"), cost)
        self.asked.add(key)
        if failed:
            self.failed[key] = result
        return self._served(key, result, cost)

    def skip(self) -> None:
        """Count an item of the total that gets no result (the budget refused its call, or the answer it was to
        judge failed), so that the progress ends at its total."""
        self.skipped += 1
        self._progress()

    def _progress(self) -> None:
        done = self.served + self.skipped
        self.run.progress(self.label, done, max(self.total, done), self.run.budget.spent)

    def _served(self, key: str, result: RecordT, cost: float) -> RecordT:
        if key not in self.costed:
            self.costed.add(key)
            self.cost += cost
        self.served += 1
        self._progress()
        return result


class Admission(Generic[ItemT]):
    """Budget admission for API calls: ``estimate(item)`` (USD) is reserved before the call starts and replaced
    by the actual cost in :meth:`settle` when it ends. ``key(item)`` names the item."""

    def __init__(self, budget: Budget, estimate: Callable[[ItemT], float], key: Callable[[ItemT], str]) -> None:
        self.budget, self.estimate, self.key = budget, estimate, key
        self.reserved: dict[str, float] = {}

    async def wait(self, item: ItemT) -> bool:
        """Admit ``item`` once it fits (waiting for calls in flight to settle); False when it never will."""
        estimate = self.estimate(item)
        if await self.budget.wait_admit(estimate):
            self.reserved[self.key(item)] = estimate
            return True
        return False

    def now(self, items: Sequence[ItemT]) -> list[ItemT]:
        """The items admitted at once, in order (for work submitted together, e.g. a provider batch)."""
        admitted = []
        for item in items:
            estimate = self.estimate(item)
            if self.budget.admit(estimate):
                self.reserved[self.key(item)] = estimate
                admitted.append(item)
        return admitted

    def settle(self, key: str, actual: float) -> None:
        """The call of ``key`` ended and cost ``actual`` (a call admitted by an earlier run only adds its cost)."""
        if key in self.reserved:
            self.budget.settle(self.reserved.pop(key), actual)
        else:
            self.budget.record(actual)
