"""Asking a scorer about answers through the ledger: content keys, and the provider's batch API
(:class:`ProviderBatches`). The build judges its zoo's answers one by one as they arrive
and ``compare-scorers`` scores a list of answers with several scorers, both through
:class:`mmaip_core.stages.models.Judge`.

Every judgement is committed to the ledger the moment it exists, so a killed run loses nothing and a rerun
pays for nothing twice. The core times every new judgement (``Judgement.latency_s``: the attempt that
answered; for local scorers the chunk's time shared by its answers; none for batch-API calls).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace

from mmaip_core.calls.pricing import BATCH_DISCOUNT
from mmaip_core.errors import ProviderError
from mmaip_core.plugins.kinds import AsyncScorer, BatchScorer, Frames, Scorer, ScoreRequest
from mmaip_core.records import ErrorInfo, Judgement, VideoQA
from mmaip_core.stages.cached import Admission
from mmaip_core.stages.run import KEY_VERSION, StageRun
from mmaip_core.store.hashing import stable_hash

__all__ = ["ProviderBatches", "judgement_key"]

log = logging.getLogger(__name__)
BATCH_GROUP = 128
"""Calls submitted together as one provider batch while a build streams (their frames are held until then)."""
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


class ProviderBatches:
    """Judgements through the provider's batch API (BATCH_DISCOUNT of the list price).

    :meth:`add` collects the calls not in the ledger, submitting them BATCH_GROUP at a time within the budget
    (each batch recorded in the ledger the moment it exists; a call a killed run already submitted is not
    submitted again); :meth:`collect` waits for every open batch and stores its judgements through ``store``.
    A batch the provider does not know (404) is closed and its calls recorded as failed (a rerun asks again);
    other provider errors are retried, and after BATCH_ERRORS_BEFORE_STOP in a row the run stops with the batch
    still recorded for the next run.
    """

    def __init__(self, run: StageRun, scorer: BatchScorer, store: Callable[[str, Judgement, float], None]) -> None:
        self.run, self.scorer, self.store = run, scorer, store
        self.pending = run.ledger.open_batches(scorer.fingerprint)
        self.submitted = {key for keys in self.pending.values() for key in keys}
        self.group: list[tuple[str, ScoreRequest]] = []
        self.requests: dict[str, ScoreRequest] = {}
        self.collected = False
        self.admission = _admission(run, scorer, share=BATCH_DISCOUNT)

    def add(self, key: str, request: ScoreRequest) -> None:
        """Judge ``request`` (keyed ``key``) in a batch; its frames are let go once the batch is submitted."""
        if key in self.requests:
            return
        self.requests[key] = replace(request, frames=None)
        if key not in self.submitted:
            self.group.append((key, request))
            if len(self.group) >= BATCH_GROUP:
                self.flush()

    def flush(self) -> None:
        """Submit the calls collected so far (those the budget admits)."""
        fresh, self.group = self.admission.now(self.group), []
        if fresh:
            for batch_id, keys in self.scorer.submit_batch(fresh):
                self.run.ledger.put_batch(batch_id, self.scorer.fingerprint, keys)
                self.pending[batch_id] = keys
                self.submitted.update(keys)

    def collect(self) -> None:
        """Submit what is left, then wait for every open batch and store its judgements."""
        self.flush()
        self.collected = True
        errors: Counter[str] = Counter()
        while self.pending:
            for batch_id, keys in list(self.pending.items()):
                self._poll(batch_id, keys, errors)
            if self.pending:
                time.sleep(self.scorer.batch_poll_s)

    def _poll(self, batch_id: str, keys: list[str], errors: Counter[str]) -> None:
        wanted = {key: self.requests[key] for key in keys if key in self.requests}
        try:
            if self.scorer.batch_done(batch_id):
                self._finish(batch_id, self.scorer.collect_batch(batch_id, wanted))
            errors[batch_id] = 0
        except Exception as exc:  # the provider's trouble must not lose the other batches
            if getattr(exc, "status_code", None) == 404:
                log.warning(
                    "batch %s is unknown to the provider; its %d calls will be asked again", batch_id, len(keys)
                )
                error = ErrorInfo(error_class="BatchNotFound", message=f"batch {batch_id}: {exc}")
                self._finish(batch_id, [(key, self.scorer.failed(request, error)) for key, request in wanted.items()])
                return
            errors[batch_id] += 1
            log.warning("batch %s: %s: %s", batch_id, type(exc).__name__, exc)
            if errors[batch_id] >= BATCH_ERRORS_BEFORE_STOP:
                raise ProviderError(
                    f"batch {batch_id} failed {errors[batch_id]} times in a row ({type(exc).__name__}: {exc}); "
                    "it stays recorded: rerun the same command to collect it"
                ) from exc

    def _finish(self, batch_id: str, results: list[tuple[str, Judgement]]) -> None:
        for key, judgement in results:
            self.store(key, judgement, BATCH_DISCOUNT)
            self.admission.settle(key, self.run.prices.cost(judgement.model_id, judgement.usage) * BATCH_DISCOUNT)
        self.run.ledger.close_batch(batch_id)
        del self.pending[batch_id]


def _admission(run: StageRun, scorer: AsyncScorer | BatchScorer, share: float) -> Admission[tuple[str, ScoreRequest]]:
    """Budget admission of keyed score requests at ``share`` of the list price."""

    def estimate(item: tuple[str, ScoreRequest]) -> float:
        return run.prices.cost(scorer.model_id, scorer.estimate(item[1])) * share

    return Admission(run.budget, estimate, lambda item: item[0])
