"""The evaluated models and frames as each benchmark has them: a benchmark's ``generation`` settings go over
every model's ``params`` and its ``frames`` over the run's ``frames`` section (:class:`~mmaip_core.config.
BenchmarkConfig`). A model answers through one generator per distinct settings, made from its options with them,
shared by the benchmarks that agree and let go once a benchmark needs other ones (benchmarks run one after
another, so a local model is loaded again only when its settings change). Answers under other settings or frames
have other ledger keys (the generator's fingerprint and the frames' key are part of them): they are cached apart,
and identical settings share them."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from mmaip_core.config import BenchmarkConfig, ZooEntry
from mmaip_core.records import EvalRecord, Response
from mmaip_core.stages.cached import StreamedCalls
from mmaip_core.stages.evaluate_sample import SampleEvaluation
from mmaip_core.stages.models import Answerer
from mmaip_core.stages.run import StageRun
from mmaip_core.stages.stream import FrameSource, Shard, Window
from mmaip_core.store.hashing import stable_hash

if TYPE_CHECKING:
    from mmaip_core.stages.evaluate import Verdicts

__all__ = ["BenchmarkAnswerers", "evaluate_benchmarks"]


class BenchmarkAnswerers:
    """Every model's answerer for one benchmark at a time; ``total``: the questions of all benchmarks (each
    model's progress counts its answers under every setting)."""

    def __init__(self, run: StageRun, worker: ThreadPoolExecutor, total: int) -> None:
        self.run, self.worker, self.total = run, worker, total
        self.calls: dict[str, StreamedCalls[Response]] = {}
        self.held: dict[str, Answerer] = {}

    async def of(self, benchmark: BenchmarkConfig) -> list[Answerer]:
        """The models as they answer ``benchmark``, in config order; the answerers of settings it does not use
        are closed."""
        keyed = [self._answerer(benchmark.model_entry(entry)) for entry in self.run.config.models]
        wanted = {key for key, _ in keyed}
        for key in [key for key in self.held if key not in wanted]:
            await self.held.pop(key).aclose()
        return [answerer for _, answerer in keyed]

    def _answerer(self, entry: ZooEntry) -> tuple[str, Answerer]:
        key = stable_hash(entry.model_dump(mode="json"))
        if key not in self.held:
            generator = self.run.manager.create("generator", entry.plugin, entry.options)
            answerer = Answerer(self.run, entry, generator, self.worker, self.total, self.calls.get(entry.name))
            self.calls.setdefault(entry.name, answerer.calls)
            self.held[key] = answerer
        return key, self.held[key]

    async def aclose(self) -> None:
        for answerer in self.held.values():
            await answerer.aclose()
        self.held.clear()


async def evaluate_benchmarks(
    run: StageRun, answerers: BenchmarkAnswerers, judges: Sequence[Verdicts], limit: int | None, shard: Shard
) -> list[EvalRecord]:
    """Every verdict on every benchmark, one benchmark after another in one event loop, each with its models'
    settings and its frames; every model and evaluator is closed at the end."""
    records: list[EvalRecord] = []
    try:
        for benchmark in run.config.benchmarks:
            models = await answerers.of(benchmark)
            window = Window.for_models(sum(a.in_flight for a in models) + sum(j.in_flight for j in judges))
            frames = FrameSource(run, answerers.worker, window.frames, benchmark.frame_settings(run.config.frames))
            evaluation = SampleEvaluation(models, list(judges), frames, window)
            records.extend(await evaluation.benchmark(run, benchmark, limit, shard))
    finally:
        await answerers.aclose()
        for judge in judges:
            await judge.aclose()
    return records
