"""Streaming a stage over its samples in bounded memory, every model's calls at once::

    reader -> (--limit, --shard) -> at most `window` samples in flight -> per sample: frames -> calls -> outcome
           -> outcomes emitted in reader order (appended to the outputs) -> the sample's frames are released

A sample enters the window when one leaves it, so the frames held at once are those of at most ``window``
samples, whatever the size of the dataset; within the window every sample asks its models as soon as it can
(:mod:`mmaip_core.calls.runner` lanes for API models, :mod:`mmaip_core.calls.local` for local ones), so no
call waits for a stage to finish. Outcomes are emitted in the order the reader gave the samples, so the
outputs are the same however the calls interleave.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from mmaip_core.config import PluginChoice
from mmaip_core.errors import ConfigError
from mmaip_core.frames import FrameLoader, FrameSettings
from mmaip_core.plugins.kinds import Frames, RowError
from mmaip_core.records import VideoQA
from mmaip_core.stages.run import StageRun
from mmaip_core.store.hashing import stable_hash

__all__ = [
    "MIN_WINDOW",
    "WHOLE",
    "FrameSource",
    "HeldFrames",
    "Shard",
    "Window",
    "count_samples",
    "quiet",
    "stream_in_order",
    "stream_samples",
]

OutcomeT = TypeVar("OutcomeT")
MIN_WINDOW = 16
"""Fewest samples in flight: a stage's window is the larger of this and twice what its models take at once."""


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count``: the samples whose id hashes to ``index`` (``--shard I/N``, 0-based)."""

    index: int = 0
    count: int = 1

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"I/N"`` with 0 <= I < N."""
        try:
            index, count = (int(part) for part in text.split("/"))
        except ValueError:
            raise ConfigError([f"--shard {text!r}: expected I/N, e.g. 0/4"]) from None
        if not 0 <= index < count:
            raise ConfigError([f"--shard {text!r}: I must be at least 0 and below N"])
        return cls(index, count)

    @property
    def label(self) -> str:
        return f"{self.index}-of-{self.count}"

    def holds(self, sample_id: str) -> bool:
        """Whether the sample ``sample_id`` belongs to this shard (a stable hash, the same on every machine)."""
        return self.count == 1 or int(stable_hash(["shard", sample_id])[:12], 16) % self.count == self.index


WHOLE = Shard()
"""Every sample (no --shard)."""


def stream_samples(
    run: StageRun, choice: PluginChoice, limit: int | None = None, shard: Shard = WHOLE
) -> Iterator[VideoQA]:
    """The samples of ``choice`` one by one: the first ``limit`` readable ones, of them those of ``shard``.
    Bad rows and repeated ids are recorded as item errors (of every shard, so a merge sees each once) and
    skipped."""
    reader = run.manager.create("sample-reader", choice.plugin, choice.options)
    seen: set[str] = set()
    for item in reader.read():
        if isinstance(item, RowError):
            run.fail("samples", f"{item.source}:{item.row}", "RowError", item.cause)
        elif item.id in seen:
            run.fail("samples", item.id, "DuplicateId", "a sample with this id was read before; skipped", None, item.id)
        else:
            if limit is not None and len(seen) >= limit:
                return
            seen.add(item.id)
            if shard.holds(item.id):
                yield item


def count_samples(run: StageRun, choice: PluginChoice, limit: int | None, shard: Shard) -> int:
    """How many samples :func:`stream_samples` will give (read once more, for the progress bars' totals;
    the errors of this reading are not recorded)."""
    return sum(1 for _ in stream_samples(quiet(run), choice, limit, shard))


def quiet(run: StageRun) -> StageRun:
    """``run`` with its own (discarded) item errors: for a pass over the samples that another pass reports."""
    return StageRun(run.config, run.out, run.manager, run.ledger, run.progress, run.prices, run.budget)


@dataclass(frozen=True)
class Window:
    """How many samples a stage holds at once: ``samples`` in flight, of which at most ``frames`` hold their frames
    (a sample lets its frames go as soon as no call of it needs them, e.g. before a text-only judge)."""

    samples: int
    frames: int

    @classmethod
    def for_models(cls, in_flight: int) -> Window:
        """The window of models that take ``in_flight`` calls at once together: frames for twice that many
        samples (at least MIN_WINDOW), and four times as many samples in all."""
        frames = max(MIN_WINDOW, 2 * in_flight)
        return cls(samples=4 * frames, frames=frames)


class HeldFrames:
    """A sample's frames (None for a text-only sample) while ``users`` calls may still need them; the last
    :meth:`done` drops them and frees their slot."""

    def __init__(self, frames: Frames | None, release: Callable[[], None] | None) -> None:
        self.frames = frames
        self.manifest = frames.manifest if frames is not None else None
        self._release = release
        self._users = 0

    def share(self, users: int) -> None:
        """``users`` calls will each say :meth:`done` (none: the frames go at once)."""
        self._users = users
        if users == 0:
            self._drop()

    def done(self) -> None:
        self._users -= 1
        if self._users <= 0:
            self._drop()

    def releaser(self) -> Callable[[], None]:
        """One user's :meth:`done`, safe to call more than once (it counts the first call only)."""
        called = False

        def release() -> None:
            nonlocal called
            if not called:
                called = True
                self.done()

        return release

    def _drop(self) -> None:
        self.frames = None
        if self._release is not None:
            self._release()
            self._release = None


class FrameSource:
    """Frames of one sample at a time, decoded (or read from the frame cache) on ``worker``; at most ``slots``
    samples hold frames at once. A video that cannot be read raises VideoError. ``settings``: the frames (default:
    the run's ``frames`` section)."""

    def __init__(
        self, run: StageRun, worker: ThreadPoolExecutor, slots: int, settings: FrameSettings | None = None
    ) -> None:
        self.loader = FrameLoader(settings or run.config.frames, run.manager)
        self.worker = worker
        self.slots = asyncio.Semaphore(max(slots, 1))

    async def hold(self, sample: VideoQA) -> HeldFrames:
        """The frames of ``sample``, once a slot is free (a text-only sample needs none)."""
        if sample.video is None:
            return HeldFrames(None, None)
        await self.slots.acquire()
        try:
            loop = asyncio.get_running_loop()
            frames = await loop.run_in_executor(self.worker, self.loader.load, sample.video)
        except BaseException:
            self.slots.release()
            raise
        return HeldFrames(frames, self.slots.release)


async def stream_in_order(
    samples: Iterable[VideoQA],
    window: int,
    handle: Callable[[VideoQA], Awaitable[OutcomeT]],
    emit: Callable[[OutcomeT], None],
) -> None:
    """``handle(sample)`` for every sample, at most ``window`` at once; ``emit`` gets the outcomes in the order of
    ``samples``. The first exception of a handler cancels the others and is raised."""
    slots = asyncio.Semaphore(max(window, 1))
    finished: dict[int, OutcomeT] = {}
    next_out = 0

    async def one(index: int, sample: VideoQA) -> None:
        nonlocal next_out
        try:
            finished[index] = await handle(sample)
        finally:
            slots.release()
        while next_out in finished:
            emit(finished.pop(next_out))
            next_out += 1

    async with asyncio.TaskGroup() as group:
        for index, sample in enumerate(samples):
            await slots.acquire()
            group.create_task(one(index, sample))
