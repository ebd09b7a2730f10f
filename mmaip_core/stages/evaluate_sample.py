"""What an evaluation does with one benchmark question: frames -> every model's answer -> every evaluator's
verdict on it as soon as it exists. Outcomes are kept in the order of the verdicts file: by model, then by
evaluator, answered questions in reader order, then the questions the model failed to answer."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mmaip_core.config import BenchmarkConfig
from mmaip_core.errors import VideoError
from mmaip_core.plugins.kinds import EvalRequest, Frames
from mmaip_core.records import EvalRecord, Response, VideoQA
from mmaip_core.stages.models import Answerer
from mmaip_core.stages.run import StageRun
from mmaip_core.stages.stream import FrameSource, HeldFrames, Shard, Window, stream_in_order, stream_samples

if TYPE_CHECKING:
    from mmaip_core.stages.evaluate import Verdicts

__all__ = ["SampleEvaluation"]


@dataclass
class _Outcome:
    """One question's records by (model, evaluator) index: answered ones, and failures to answer."""

    sample: VideoQA
    video_error: VideoError | None = None
    answers: list[Response] = field(default_factory=list)
    records: dict[tuple[int, int], tuple[bool, EvalRecord]] = field(default_factory=dict)


@dataclass
class SampleEvaluation:
    """The evaluated models (as answerers), the evaluators, and where frames come from."""

    answerers: list[Answerer]
    judges: list[Verdicts]
    frames: FrameSource
    window: Window

    async def benchmarks(
        self, run: StageRun, benchmarks: Sequence[BenchmarkConfig], limit: int | None, shard: Shard
    ) -> list[EvalRecord]:
        """Every verdict on every benchmark, in one event loop."""
        records: list[EvalRecord] = []
        try:
            for benchmark in benchmarks:
                records.extend(await self.benchmark(run, benchmark, limit, shard))
        finally:
            models: list[Answerer | Verdicts] = [*self.answerers, *self.judges]
            for model in models:
                await model.aclose()
        return records

    async def benchmark(
        self, run: StageRun, benchmark: BenchmarkConfig, limit: int | None, shard: Shard
    ) -> list[EvalRecord]:
        """Every verdict on ``benchmark``, its questions streamed."""
        name = benchmark.name
        groups: dict[tuple[int, int], tuple[list[EvalRecord], list[EvalRecord]]] = {k: ([], []) for k in self._keys()}

        def emit(outcome: _Outcome) -> None:
            if outcome.video_error is not None:
                error = outcome.video_error
                run.fail("frames", outcome.sample.id, type(error).__name__, str(error), sample_id=outcome.sample.id)
            for response in outcome.answers:
                if response.error:
                    failure = response.error
                    cause = (failure.error_class, failure.message, response.model, response.sample_id)
                    run.fail("generation", response.id, *cause)
            for key, (answered, record) in outcome.records.items():
                groups[key][0 if answered else 1].append(record)

        async def one(sample: VideoQA) -> _Outcome:
            return await self._sample(name, sample)

        await stream_in_order(stream_samples(run, benchmark, limit, shard), self.window.samples, one, emit)
        return [record for key in self._keys() for part in groups[key] for record in part]

    def _keys(self) -> list[tuple[int, int]]:
        return [(m, e) for m in range(len(self.answerers)) for e in range(len(self.judges))]

    async def _sample(self, benchmark: str, sample: VideoQA) -> _Outcome:
        outcome = _Outcome(sample)
        try:
            held = await self.frames.hold(sample)
        except VideoError as exc:
            outcome.video_error = exc
            return outcome
        held.share(len(self.answerers))
        await asyncio.gather(*(self._model(m, benchmark, sample, held, outcome) for m in range(len(self.answerers))))
        return outcome

    async def _model(self, m: int, benchmark: str, sample: VideoQA, held: HeldFrames, outcome: _Outcome) -> None:
        """Model ``m``'s answer to ``sample``, and every evaluator's verdict on it (the frames are let go as soon
        as no call of it needs them)."""
        looks = any(judge.evaluator.uses_frames for judge in self.judges)
        release = held.releaser()
        try:
            answerer = self.answerers[m]
            response = await answerer.answer(answerer.request(sample, held.frames, 0))
            if not looks:
                release()
            if response is not None:
                outcome.answers.append(response)
                await self._verdicts(m, benchmark, sample, held.frames if looks else None, response, outcome)
        finally:
            release()

    async def _verdicts(
        self, m: int, benchmark: str, sample: VideoQA, frames: Frames | None, response: Response, outcome: _Outcome
    ) -> None:
        model = self.answerers[m].entry.name
        if response.text is None:
            request = EvalRequest(sample=sample, benchmark=benchmark, model=model, prediction="")
            why = (
                f"no answer: {response.error.error_class}: {response.error.message}" if response.error else "no answer"
            )
            for e, judge in enumerate(self.judges):
                outcome.records[(m, e)] = (False, judge.no_answer(request, why, response.frames))
            return
        request = EvalRequest(sample=sample, benchmark=benchmark, model=model, prediction=response.text, frames=frames)
        verdicts = await asyncio.gather(*(judge.verdict(request, response.frames) for judge in self.judges))
        for e, verdict in enumerate(verdicts):
            outcome.records[(m, e)] = (True, verdict)
