"""The models of a streaming stage, each behind its own lane and the ledger (:mod:`mmaip_core.stages.cached`).

- :class:`Answerer`: one zoo entry (or evaluated model) answers questions;
- :class:`Judge`: a scorer rates answers (the build, ``compare-scorers``).

An API model's calls go through an :class:`~mmaip_core.calls.runner.ApiLane` (its own concurrency and rate
limit, retries, budget admission); a local model's through a :class:`~mmaip_core.calls.local.LocalLane`
(batches on the stage's local worker). Every result is committed to the ledger the moment it exists.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

from mmaip_core.calls.local import LocalLane, local_worker
from mmaip_core.calls.runner import ApiLane
from mmaip_core.config import ZooEntry
from mmaip_core.plugins.kinds import (
    AsyncResponseGenerator,
    AsyncScorer,
    BatchScorer,
    Frames,
    GenerationRequest,
    ResponseGenerator,
    Scorer,
    ScoreRequest,
)
from mmaip_core.records import ErrorInfo, Judgement, ParseStatus, Response, VideoQA
from mmaip_core.stages.cached import Admission, StreamedCalls
from mmaip_core.stages.run import StageRun, generation_key
from mmaip_core.stages.score import ProviderBatches, judgement_key

__all__ = ["SCORE_BATCH", "Answerer", "ApiCalls", "Judge", "ScoredAnswers", "score_answers"]

ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")

SCORE_BATCH = 32
"""Answers a local scorer rates in one call."""


@dataclass
class ApiCalls(Generic[ItemT, ResultT]):
    """An API model's calls: its lane, budget admission before each, and the record of a call that failed."""

    lane: ApiLane[ItemT, ResultT]
    admission: Admission[ItemT]
    failed: Callable[[ItemT, ErrorInfo], ResultT]

    async def run(self, item: ItemT) -> ResultT | None:
        """The result (or failure record) of ``item``'s call; None when the budget refused it."""
        outcome = await self.lane.run(item, self.admission.wait)
        if outcome is None:
            return None
        if outcome.result is not None:
            return outcome.result
        assert outcome.error is not None
        return self.failed(item, outcome.error)


class Answerer:
    """The answers of zoo entry ``entry`` (``generator`` made from it), through the ledger; ``calls``: those of
    another answerer of the same entry to count in (its answers under other settings: one progress, one count)."""

    def __init__(
        self,
        run: StageRun,
        entry: ZooEntry,
        generator: ResponseGenerator,
        worker: ThreadPoolExecutor,
        total: int,
        calls: StreamedCalls[Response] | None = None,
    ) -> None:
        self.run, self.entry, self.generator = run, entry, generator
        self.calls = (
            calls
            if calls is not None
            else StreamedCalls(run, "generation", f"generation {entry.name}", Response, total)
        )
        self.api: ApiCalls[GenerationRequest, Response] | None = None
        self.local: LocalLane[GenerationRequest, Response | None] | None = None
        if isinstance(generator, AsyncResponseGenerator):
            self.api = ApiCalls(
                ApiLane(self._agenerate, generator.call_options),
                Admission(
                    run.budget, lambda r: run.prices.cost(generator.model_id, generator.estimate(r)), lambda r: r.id
                ),
                lambda r, error: generator.failed(r, model=entry.name, error=error),
            )
        else:
            self.local = LocalLane(self._generate, generator.batch_size, worker)

    @property
    def in_flight(self) -> int:
        """Calls this model takes at once (API concurrency, or a local batch)."""
        return self.api.lane.options.concurrency if self.api else self.generator.batch_size

    def request(self, sample: VideoQA, frames: Frames | None, index: int) -> GenerationRequest:
        """The call for answer ``index`` to ``sample``, keyed by content."""
        generator, entry = self.generator, self.entry
        key = generation_key(sample, frames, entry.name, entry.plugin, generator.fingerprint, index)
        return GenerationRequest(id=key, sample=sample, frames=frames, sample_index=index)

    async def answer(self, request: GenerationRequest) -> Response | None:
        """The answer to ``request`` (from the ledger, or asked); None when the budget refused the call or the
        generator returned nothing for it."""

        async def ask() -> tuple[Response, bool, float] | None:
            response = await self._ask(request)
            if response is None:
                return None
            cost = self.run.prices.cost(response.model_id, response.usage) if self.api else 0.0
            if self.api:
                self.api.admission.settle(request.id, cost)
            return response, response.error is not None, cost

        return await self.calls.get(request.id, ask)

    async def _ask(self, request: GenerationRequest) -> Response | None:
        if self.local is not None:
            return await self.local.run(request)
        assert self.api is not None
        return await self.api.run(request)

    async def _agenerate(self, request: GenerationRequest) -> Response:
        assert isinstance(self.generator, AsyncResponseGenerator)
        return await self.generator.agenerate(request, model=self.entry.name)

    def _generate(self, requests: Sequence[GenerationRequest]) -> list[Response | None]:
        by_id = {r.id: r for r in self.generator.generate(requests, model=self.entry.name)}
        return [by_id.get(r.id) for r in requests]

    async def aclose(self) -> None:
        if isinstance(self.generator, AsyncResponseGenerator):
            await self.generator.aclose()


class Judge:
    """The judgements of ``scorer``, through the ledger (``label`` names it in the progress and the costs)."""

    def __init__(
        self, run: StageRun, scorer: Scorer, worker: ThreadPoolExecutor, total: int, label: str = "judgement"
    ) -> None:
        self.run, self.scorer = run, scorer
        self.calls = StreamedCalls(run, "judgement", label, Judgement, total)
        self.api: ApiCalls[ScoreRequest, Judgement] | None = None
        self.local: LocalLane[ScoreRequest, Judgement] | None = None
        self.batches: ProviderBatches | None = None
        if isinstance(scorer, BatchScorer) and scorer.batch:
            self.batches = ProviderBatches(run, scorer, self._store_batched)
        if isinstance(scorer, AsyncScorer):
            self.api = ApiCalls(
                ApiLane(self._ascore, scorer.call_options),
                Admission(run.budget, lambda r: run.prices.cost(scorer.model_id, scorer.estimate(r)), self.key),
                scorer.failed,
            )
        else:
            self.local = LocalLane(self._score, SCORE_BATCH, worker)

    @property
    def in_flight(self) -> int:
        return self.api.lane.options.concurrency if self.api else SCORE_BATCH

    @property
    def uses_frames(self) -> bool:
        """Whether the scorer looks at the video (else a sample's frames can go before it is judged)."""
        return self.scorer.uses_frames

    def key(self, request: ScoreRequest) -> str:
        assert request.response.text is not None
        return judgement_key(request.sample, request.response.text, self.scorer, request.frames)

    async def judge(self, request: ScoreRequest) -> Judgement | None:
        """The judgement of ``request``'s answer (which has text), stamped with its response id; None when the
        budget refused the call."""
        key = self.key(request)

        async def ask() -> tuple[Judgement, bool, float] | None:
            judgement = await self._ask(request)
            if judgement is None:
                return None
            listed = self.run.prices.cost(judgement.model_id, judgement.usage)
            if self.api:
                self.api.admission.settle(key, listed)
            cost = judgement.cost_usd if judgement.cost_usd is not None else listed
            return judgement, judgement.status is ParseStatus.ERROR, cost

        judged = await self.calls.get(key, ask)
        return judged.model_copy(update={"response_id": request.response.id}) if judged else None

    async def _ask(self, request: ScoreRequest) -> Judgement | None:
        if self.batches is not None:  # judged in a provider batch (or refused by the budget), never alone
            if not self.batches.collected:
                self.batches.add(self.key(request), request)
            return None
        if self.local is not None:
            return await self.local.run(request)
        assert self.api is not None
        return await self.api.run(request)

    def _store_batched(self, key: str, judgement: Judgement, price_share: float) -> None:
        listed = (
            judgement.cost_usd
            if judgement.cost_usd is not None
            else self.run.prices.cost(judgement.model_id, judgement.usage)
        )
        self.calls.store(key, judgement, judgement.status is ParseStatus.ERROR, listed * price_share)

    async def _ascore(self, request: ScoreRequest) -> Judgement:
        """One API judgement, timed (the attempt that answered)."""
        assert isinstance(self.scorer, AsyncScorer)
        start = time.perf_counter()
        judgement = await self.scorer.ascore(request)
        return judgement.model_copy(update={"latency_s": round(time.perf_counter() - start, 6)})

    def _score(self, requests: Sequence[ScoreRequest]) -> list[Judgement]:
        """Local judgements; each gets its share of the call's time."""
        start = time.perf_counter()
        judged = self.scorer.score(list(requests))
        latency = round((time.perf_counter() - start) / max(len(requests), 1), 6)
        return [j.model_copy(update={"latency_s": latency}) for j in judged]

    async def aclose(self) -> None:
        if isinstance(self.scorer, AsyncScorer):
            await self.scorer.aclose()


@dataclass
class ScoredAnswers:
    """The judgements of one scorer by response id (requests the budget refused are absent)."""

    judgements: dict[str, Judgement]
    reused: int
    new: int
    cost_usd: float
    """What these judgements cost, earlier runs included (0 for local scorers)."""


def score_answers(
    run: StageRun, scorer: Scorer, requests: Sequence[ScoreRequest], label: str = "judgement"
) -> ScoredAnswers:
    """One judgement per request with text, from ``run``'s ledger where possible, new ones asked of ``scorer``
    (through the provider's batch API when the scorer is set to, else concurrently or in local batches) and
    committed at once."""
    with local_worker() as worker:
        judge = Judge(run, scorer, worker, len(requests), label)
        with_text = [r for r in requests if r.response.text is not None]
        judged = asyncio.run(_judge_all(judge, with_text))
    judgements = {j.response_id: j for j in judged if j is not None and j.response_id is not None}
    new = sum(judge.key(r) in judge.calls.asked for r in with_text)
    return ScoredAnswers(judgements=judgements, reused=len(with_text) - new, new=new, cost_usd=judge.calls.cost)


async def _judge_all(judge: Judge, requests: Sequence[ScoreRequest]) -> list[Judgement | None]:
    """Every judgement, in one event loop (with provider batches: a first pass submits, then all is in the
    ledger)."""
    try:
        if judge.batches is not None:
            await asyncio.gather(*(judge.judge(r) for r in requests))
            judge.batches.collect()  # blocks the loop, which has nothing else to do
        return list(await asyncio.gather(*(judge.judge(r) for r in requests)))
    finally:
        await judge.aclose()
