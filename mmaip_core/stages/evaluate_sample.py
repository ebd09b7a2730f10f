"""What an evaluation does with one benchmark question: frames -> every model's answer (and its answer to the
question's second phrasing, when the sample has one) -> every evaluator's verdict on it as soon as it exists. Outcomes are kept in the order of the verdicts file: by model, then by
evaluator, answered questions in reader order, then the questions the model failed to answer."""

from __future__ import annotations

import asyncio
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
    """One benchmark's evaluation: the evaluated models (as answerers of it), the evaluators, and where its frames
    come from."""

    answerers: list[Answerer]
    judges: list[Verdicts]
    frames: FrameSource
    window: Window

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
        """Model ``m``'s answers to ``sample``, and every evaluator's verdict on them (the frames are let go as
        soon as no call of it needs them)."""
        looks = any(judge.evaluator.uses_frames for judge in self.judges)
        release = held.releaser()
        try:
            answers = await self._answers(self.answerers[m], sample, held.frames)
            if not looks:
                release()
            given = [a for a in answers if a is not None]
            outcome.answers.extend(given)
            if len(given) == len(answers):  # no call was refused by the budget
                await self._verdicts(m, benchmark, sample, held.frames if looks else None, given, outcome)
        finally:
            release()

    @staticmethod
    async def _answers(answerer: Answerer, sample: VideoQA, frames: Frames | None) -> list[Response | None]:
        """The model's answer to ``sample``'s question and, when it has a second phrasing, to that one (keyed by
        its text, so cached like the first); None for a call the budget refused."""
        questions = [sample]
        if sample.alt_question is not None:
            questions.append(sample.model_copy(update={"question": sample.alt_question}))
        return list(await asyncio.gather(*(answerer.answer(answerer.request(q, frames, 0)) for q in questions)))

    async def _verdicts(
        self,
        m: int,
        benchmark: str,
        sample: VideoQA,
        frames: Frames | None,
        answers: list[Response],
        outcome: _Outcome,
    ) -> None:
        """Every evaluator's verdict on the answers (the first phrasing's, then the second's); a failed answer
        makes a failure to answer of every evaluator."""
        model, response = self.answerers[m].entry.name, answers[0]
        failed = next((a for a in answers if a.text is None), None)
        if failed is not None:
            request = EvalRequest(sample=sample, benchmark=benchmark, model=model, prediction=response.text or "")
            which = " to the second phrasing" if failed is not response else ""
            cause = f": {failed.error.error_class}: {failed.error.message}" if failed.error else ""
            for e, judge in enumerate(self.judges):
                outcome.records[(m, e)] = (False, judge.no_answer(request, f"no answer{which}{cause}", response.frames))
            return
        second = answers[1].text if len(answers) > 1 else None
        request = EvalRequest(
            sample=sample,
            benchmark=benchmark,
            model=model,
            prediction=response.text or "",
            frames=frames,
            alt_prediction=second,
        )
        verdicts = await asyncio.gather(*(judge.verdict(request, response.frames) for judge in self.judges))
        for e, verdict in enumerate(verdicts):
            outcome.records[(m, e)] = (True, verdict)
