"""The one ledger-backed call loop every stage uses (generation, judgement, evaluation)::

    content key -> ledger lookup -> what is left -> call (within the budget) -> store at once -> progress

:class:`CachedCalls` holds one stage's keys: results the ledger already has as finished are reused, the rest
are asked by the caller (locally in chunks, concurrently through :mod:`mmaip_core.calls.runner`, or through a batch
API), and each result is committed the moment it exists, so a killed run loses nothing and a rerun pays for
nothing twice. :class:`Admission` reserves each API call's estimated cost in the run's budget before the call
starts and settles it with the actual cost when it ends.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Generic, TypeVar

from pydantic import BaseModel

from mmaip_core.store.ledger import DONE, FAILED, LedgerKind

if TYPE_CHECKING:
    from mmaip_core.calls.budget import Budget
    from mmaip_core.stages.run import StageRun

__all__ = ["Admission", "CachedCalls"]

RecordT = TypeVar("RecordT", bound=BaseModel)
ItemT = TypeVar("ItemT")


class CachedCalls(Generic[RecordT]):
    """The calls of one stage, keyed by content (``keys`` may repeat: one call serves every repetition)."""

    def __init__(self, run: StageRun, kind: LedgerKind, label: str, keys: Iterable[str], record: type[RecordT]) -> None:
        self.run, self.kind, self.label = run, kind, label
        self.keys = list(dict.fromkeys(keys))
        stored = run.ledger.get_many(self.keys)
        self.results: dict[str, RecordT] = {k: record.model_validate(e.record) for k, e in stored.items() if e.done}
        self.reused = len(self.results)
        run.progress(label, self.reused, len(self.keys), run.budget.spent)

    def todo(self, items: Iterable[tuple[str, ItemT]]) -> list[tuple[str, ItemT]]:
        """What is left to ask: one item per key without a finished result (keys in first-seen order)."""
        left: dict[str, ItemT] = {}
        for key, item in items:
            if key not in self.results:
                left[key] = item
        return list(left.items())

    def store(self, key: str, result: RecordT, failed: bool, cost: float = 0.0) -> None:
        """Commit ``result`` of ``key`` (a failed call is asked again by a rerun) and report progress."""
        status = FAILED if failed else DONE
        self.run.ledger.put(key, self.kind, status, result.model_dump(mode="json"), cost)
        self.results[key] = result
        self.run.progress(self.label, len(self.results), len(self.keys), self.run.budget.spent)

    def cost(self) -> float:
        """What this stage's results cost, earlier runs included."""
        return sum(entry.cost for entry in self.run.ledger.get_many(self.keys).values())


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
