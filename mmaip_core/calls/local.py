"""The calls of a model in this process (a Hugging Face model, a local scorer) while a stage streams.

Requests that arrive while the model is busy are run together as its next batch (up to ``batch_size``), so a
local model batches as it would over a list, without waiting for a stage to collect one. Every local lane of a
stage runs its batches on one shared worker thread, one batch at a time: local models share the device, and a
sampler seeded through torch's global generator must not interleave with another model's draws. (API models
have :class:`mmaip_core.calls.runner.ApiLane`.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

__all__ = ["LocalLane", "local_worker"]

ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")


def local_worker() -> ThreadPoolExecutor:
    """The one thread on which a stage runs its local models' batches (and nothing else)."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="mmaip-local")


class LocalLane(Generic[ItemT, ResultT]):
    """The calls of one local model: ``run_batch(items)`` (one result per item, in order) on ``worker``."""

    def __init__(
        self, run_batch: Callable[[Sequence[ItemT]], Sequence[ResultT]], batch_size: int, worker: ThreadPoolExecutor
    ) -> None:
        self.run_batch, self.batch_size, self.worker = run_batch, max(batch_size, 1), worker
        self.pending: list[tuple[ItemT, asyncio.Future[ResultT]]] = []
        self.task: asyncio.Task[None] | None = None

    async def run(self, item: ItemT) -> ResultT:
        """The result of ``item``, computed in the next batch the model runs."""
        future: asyncio.Future[ResultT] = asyncio.get_running_loop().create_future()
        self.pending.append((item, future))
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self.pending:
            await asyncio.sleep(0)  # requests made in the same step of the event loop join this batch
            batch, self.pending = self.pending[: self.batch_size], self.pending[self.batch_size :]
            try:
                results = await loop.run_in_executor(self.worker, self.run_batch, [item for item, _ in batch])
                if len(results) != len(batch):
                    raise RuntimeError(f"a local model returned {len(results)} results for {len(batch)} requests")
            except Exception as exc:  # the model's failure is every waiting request's failure
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)
