"""What the build does with one sample, and how its outcome reaches the run folder.

:class:`SampleBuilder` takes a sample through frames -> every zoo entry's answers -> a judgement of each answer
as soon as it exists -> the sample's pairs; :class:`BuildOutputs` appends each outcome (in reader order) to the
output files and counts it in the summary.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from mmaip_core.errors import VideoError
from mmaip_core.plugins.kinds import PairStrategy, Scored, ScoreRequest
from mmaip_core.records import (
    AnnotatedResponse,
    FrameManifest,
    Judgement,
    ParseStatus,
    PreferencePair,
    Response,
    VideoQA,
)
from mmaip_core.stages.models import Answerer, Judge
from mmaip_core.stages.run import StageRun, by_stage, count_errors
from mmaip_core.stages.stream import FrameSource, HeldFrames
from mmaip_core.store import layout
from mmaip_core.store.files import atomic_text

__all__ = ["NOT_ASKED", "Answered", "BuildOutputs", "SampleBuilder", "SampleOutcome", "pairs_of"]

NOT_ASKED = "calls not made (--max-cost)"
"""Why a question has no pair when some of its calls were not made because of the spending limit."""


@dataclass
class Answered:
    """One answer of a sample with its judgement (None: not judged) and the judgement's ledger key."""

    entry: Answerer
    response: Response
    judgement: Judgement | None = None
    judgement_key: str | None = None


@dataclass
class SampleOutcome:
    """Everything the build keeps of one sample once its calls are done (its frames are not kept)."""

    sample: VideoQA
    manifest: FrameManifest | None = None
    video_error: VideoError | None = None
    answers: list[Answered] = field(default_factory=list)
    pairs: list[PreferencePair] = field(default_factory=list)
    skipped: str | None = None


@dataclass
class SampleBuilder:
    """The build's models: the zoo's answerers, the judge and the pair strategy."""

    answerers: list[Answerer]
    judge: Judge
    pairing: PairStrategy
    frames: FrameSource

    @property
    def in_flight(self) -> int:
        """Calls the build's models take at once, together."""
        return self.judge.in_flight + sum(a.in_flight for a in self.answerers)

    async def build(self, sample: VideoQA) -> SampleOutcome:
        """Frames, answers, judgements and pairs of ``sample``."""
        outcome = SampleOutcome(sample)
        try:
            held = await self.frames.hold(sample)
        except VideoError as exc:
            outcome.video_error = exc
            return outcome
        outcome.manifest = held.manifest
        jobs = [self._answer(a, sample, held, i) for a in self.answerers for i in range(a.entry.n)]
        held.share(len(jobs))
        answers = await asyncio.gather(*jobs)
        outcome.answers = [answered for answered in answers if answered is not None]
        lines = [_line(answered) for answered in outcome.answers]
        outcome.pairs, outcome.skipped = pairs_of(self.pairing, sample, lines)
        if outcome.skipped and any(a is None or (a.response.text and a.judgement is None) for a in answers):
            outcome.skipped = NOT_ASKED  # not a finding about the answers: a rerun with more budget asks
        return outcome

    async def _answer(self, answerer: Answerer, sample: VideoQA, held: HeldFrames, index: int) -> Answered | None:
        """One answer, judged as soon as it exists (when it has text); the frames are let go as soon as this
        answer's calls no longer need them."""
        release = held.releaser()
        try:
            response = await answerer.answer(answerer.request(sample, held.frames, index))
            if not self.judge.uses_frames:
                release()
            if response is None:  # the budget refused the call: counted in both models' progress
                answerer.calls.skip()
            if response is None or response.text is None:
                self.judge.calls.skip()  # nothing to judge
                return None if response is None else Answered(answerer, response)
            frames = held.frames if self.judge.uses_frames else None
            request = ScoreRequest(sample=sample, response=response, frames=frames)
            answered = Answered(answerer, response, judgement_key=self.judge.key(request))
            answered.judgement = await self.judge.judge(request)
            batches = self.judge.batches
            if answered.judgement is None and (batches is None or batches.collected):
                self.judge.calls.skip()  # refused by the budget (a batch's first pass only submits)
            return answered
        finally:
            release()


def pairs_of(
    pairing: PairStrategy, sample: VideoQA, lines: Iterable[AnnotatedResponse]
) -> tuple[list[PreferencePair], str | None]:
    """The pairs of one sample from its successfully scored answers, and why there is none (None: there are)."""
    scored = []
    for line in lines:
        ok = [j for j in line.judgements if j.status is ParseStatus.OK]
        if line.response.text is not None and ok:
            scored.append(Scored(line.response, ok[0]))
    outcome = pairing.make_pairs(sample, scored, prompt=sample.question)
    return outcome.pairs, None if outcome.pairs else outcome.skipped or "no pair"


def _place(response: Response) -> tuple[str, str]:
    """The model and the sample an answer's error concerns."""
    return response.model, response.sample_id


def _line(answered: Answered) -> AnnotatedResponse:
    judgements = [answered.judgement] if answered.judgement is not None else []
    return AnnotatedResponse(response=answered.response, judgements=judgements)


class BuildOutputs:
    """The build's output files, written as outcomes arrive and put in place together by :meth:`close`."""

    NAMES = (layout.SAMPLES, layout.FRAMES, layout.RESPONSES, layout.PAIRS)

    def __init__(self, run: StageRun, out: Path, judge: Judge) -> None:
        self.run, self.judge = run, judge
        self.stack = ExitStack()
        self.files: dict[str, IO[Any]] = {
            name: self.stack.enter_context(atomic_text(out / name)) for name in self.NAMES
        }
        self.frame_keys: set[str] = set()
        self.counts: dict[str, Counter[str]] = {}
        self.judgements: Counter[str] = Counter()
        self.skipped: Counter[str] = Counter()

    def emit(self, outcome: SampleOutcome) -> None:
        """Append one sample's records and count them."""
        summary, sample = self.run.summary, outcome.sample
        summary.samples += 1
        self._write(layout.SAMPLES, sample.model_dump_json())
        if outcome.video_error is not None:
            error = outcome.video_error
            self.run.fail("frames", sample.id, type(error).__name__, str(error), sample_id=sample.id)
            summary.video_errors += 1
        if outcome.manifest is not None and outcome.manifest.key not in self.frame_keys:
            self.frame_keys.add(outcome.manifest.key)
            self._write(layout.FRAMES, outcome.manifest.model_dump_json())
        for answered in outcome.answers:
            self._write(layout.RESPONSES, _line(answered).model_dump_json())
            self._count(answered)
        for pair in outcome.pairs:
            self._write(layout.PAIRS, pair.model_dump_json())
        summary.pairs += len(outcome.pairs)
        if outcome.skipped:
            self.skipped[outcome.skipped] += 1

    def _write(self, name: str, line: str) -> None:
        self.files[name].write(line + "\n")

    def _count(self, answered: Answered) -> None:
        response, entry = answered.response, answered.entry
        counts = self.counts.setdefault(entry.entry.name, Counter())
        counts["new" if response.id in entry.calls.asked else "reused"] += 1
        counts["failed" if response.error else "done"] += 1
        if response.error:
            error = response.error
            self.run.fail("generation", response.id, error.error_class, error.message, *_place(response))
        judgement = answered.judgement
        if judgement is None:
            return
        self.judgements[judgement.status.value] += 1
        self.judgements["new" if answered.judgement_key in self.judge.calls.asked else "reused"] += 1
        if judgement.status is not ParseStatus.OK:
            cause = judgement.error.message if judgement.error else f"judge reply: {judgement.raw_reply!r}"
            self.run.fail("judgement", response.id, judgement.status.value, cause, *_place(response))

    def close(self, answerers: list[Answerer]) -> None:
        """Fill in the summary and put the files in place (a run that raised before never calls this)."""
        summary = self.run.summary
        for answerer in answerers:
            name = answerer.entry.name
            counts = self.counts.get(name, Counter())
            summary.responses[name] = dict(reused=counts["reused"], new=counts["new"])
            summary.responses[name].update({k: counts[k] for k in ("done", "failed") if counts[k]})
            summary.cost_by_stage[answerer.calls.label] = answerer.calls.cost
        summary.judgements = dict(reused=self.judgements["reused"], new=self.judgements["new"])
        summary.judgements.update({k: v for k, v in self.judgements.items() if k not in ("reused", "new")})
        summary.cost_by_stage[self.judge.calls.label] = self.judge.calls.cost
        summary.skipped = dict(self.skipped)
        summary.row_errors = sum(e.stage == "samples" for e in self.run.errors)
        summary.cost_usd = self.run.ledger.total_cost()
        summary.refused_by_budget = self.run.budget.refused
        self.run.errors = by_stage(self.run.errors)
        summary.errors = count_errors(self.run.errors)
        self.stack.close()
