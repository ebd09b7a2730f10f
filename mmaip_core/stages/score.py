"""Asking a scorer about many answers through the ledger: content keys, the provider's batch API, concurrent
API calls within the budget, or chunks for local scorers. The build scores its zoo's answers with it, and
``compare-scorers`` scores the same answers with several scorers.

Every judgement is committed to the ledger the moment it exists, so a killed run loses nothing and a rerun
pays for nothing twice. The core times every new judgement (``Judgement.latency_s``: the attempt that
answered; for local scorers the chunk's time shared by its answers; none for batch-API calls).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from mmaip_core.calls.pricing import BATCH_DISCOUNT
from mmaip_core.calls.runner import run_scoring_calls
from mmaip_core.errors import ProviderError
from mmaip_core.plugins.kinds import AsyncScorer, BatchScorer, Frames, Scorer, ScoreRequest
from mmaip_core.records import ErrorInfo, Judgement, ParseStatus, VideoQA
from mmaip_core.stages.cached import Admission, CachedCalls
from mmaip_core.stages.run import KEY_VERSION, StageRun, chunks
from mmaip_core.store.hashing import stable_hash

__all__ = ["ScoredAnswers", "judgement_key", "score_answers"]

log = logging.getLogger(__name__)
SCORE_CHUNK = 32
BATCH_ERRORS_BEFORE_STOP = 10


def judgement_key(sample: VideoQA, answer: str, scorer: Scorer, frames: Frames | None) -> str:
    """Content key of one judgement: scorer fingerprint, what the scorer reads (question, ground truth,
    caption, answer) and, for scorers that look at the video, the frames' key."""
    return stable_hash(
        {
            "v": KEY_VERSION,
            "kind": "judgement",
            "scorer": scorer.fingerprint,
            "question": sample.question,
            "answer_truth": sample.answer,
            "caption": sample.caption,
            "answer": answer,
            "frames": frames.manifest.key if frames is not None and scorer.uses_frames else None,
        }
    )


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
    (batch API, concurrent calls within the budget, or chunks) and committed at once."""
    keyed = [
        (judgement_key(r.sample, r.response.text, scorer, r.frames), r) for r in requests if r.response.text is not None
    ]
    calls = CachedCalls(run, "judgement", label, (k for k, _ in keyed), Judgement)
    todo = calls.todo(keyed)

    def store(key: str, judgement: Judgement, price_share: float = 1.0) -> None:
        listed = (
            judgement.cost_usd
            if judgement.cost_usd is not None
            else run.prices.cost(judgement.model_id, judgement.usage)
        )
        calls.store(key, judgement, failed=judgement.status is ParseStatus.ERROR, cost=listed * price_share)

    if isinstance(scorer, BatchScorer) and scorer.batch:
        _score_in_batches(run, scorer, todo, store)
    elif isinstance(scorer, AsyncScorer):
        admission = _admission(run, scorer, share=1.0)

        def settle(key: str, judgement: Judgement) -> None:
            store(key, judgement)
            admission.settle(key, run.prices.cost(judgement.model_id, judgement.usage))

        run_scoring_calls(scorer, todo, settle, admission.wait)
    else:
        for chunk in chunks(todo, SCORE_CHUNK):
            start = time.perf_counter()
            judged = scorer.score([r for _, r in chunk])
            latency = round((time.perf_counter() - start) / max(len(chunk), 1), 6)
            for (key, _), judgement in zip(chunk, judged, strict=True):
                store(key, judgement.model_copy(update={"latency_s": latency}))
    judgements = {
        request.response.id: calls.results[key].model_copy(update={"response_id": request.response.id})
        for key, request in keyed
        if key in calls.results
    }
    return ScoredAnswers(judgements=judgements, reused=len(keyed) - len(todo), new=len(todo), cost_usd=calls.cost())


def _admission(run: StageRun, scorer: AsyncScorer | BatchScorer, share: float) -> Admission[tuple[str, ScoreRequest]]:
    """Budget admission of keyed score requests at ``share`` of the list price."""

    def estimate(item: tuple[str, ScoreRequest]) -> float:
        return run.prices.cost(scorer.model_id, scorer.estimate(item[1])) * share

    return Admission(run.budget, estimate, lambda item: item[0])


def _score_in_batches(
    run: StageRun,
    scorer: BatchScorer,
    todo: list[tuple[str, ScoreRequest]],
    store: Callable[[str, Judgement, float], None],
) -> None:
    """Judge through the provider's batch API: collect the batches a killed run left, submit the rest within
    the budget (each batch recorded the moment it exists), wait, collect. Batch calls cost BATCH_DISCOUNT of
    the list price. A batch the provider does not know (404) is closed and its calls recorded as failed (a
    rerun asks again); other provider errors are retried, and after BATCH_ERRORS_BEFORE_STOP in a row the run
    stops with the batch still recorded for the next run."""
    requests = dict(todo)
    pending = run.ledger.open_batches(scorer.fingerprint)
    submitted = {key for keys in pending.values() for key in keys}
    admission = _admission(run, scorer, share=BATCH_DISCOUNT)
    fresh = admission.now([(key, request) for key, request in todo if key not in submitted])
    if fresh:
        for batch_id, keys in scorer.submit_batch(fresh):
            run.ledger.put_batch(batch_id, scorer.fingerprint, keys)
            pending[batch_id] = keys
    errors: Counter[str] = Counter()

    def finish(batch_id: str, results: list[tuple[str, Judgement]]) -> None:
        for key, judgement in results:
            store(key, judgement, BATCH_DISCOUNT)
            admission.settle(key, run.prices.cost(judgement.model_id, judgement.usage) * BATCH_DISCOUNT)
        run.ledger.close_batch(batch_id)
        del pending[batch_id]

    while pending:
        for batch_id, keys in list(pending.items()):
            wanted = {key: requests[key] for key in keys if key in requests}
            try:
                if scorer.batch_done(batch_id):
                    finish(batch_id, scorer.collect_batch(batch_id, wanted))
                errors[batch_id] = 0
            except Exception as exc:  # the provider's trouble must not lose the other batches
                if getattr(exc, "status_code", None) == 404:
                    log.warning(
                        "batch %s is unknown to the provider; its %d calls will be asked again", batch_id, len(keys)
                    )
                    error = ErrorInfo(error_class="BatchNotFound", message=f"batch {batch_id}: {exc}")
                    finish(batch_id, [(key, scorer.failed(request, error)) for key, request in wanted.items()])
                    continue
                errors[batch_id] += 1
                log.warning("batch %s: %s: %s", batch_id, type(exc).__name__, exc)
                if errors[batch_id] >= BATCH_ERRORS_BEFORE_STOP:
                    raise ProviderError(
                        f"batch {batch_id} failed {errors[batch_id]} times in a row ({type(exc).__name__}: {exc}); "
                        "it stays recorded: rerun the same command to collect it"
                    ) from exc
        if pending:
            time.sleep(scorer.batch_poll_s)
