"""What every evaluator's record of a verdict repeats from its request: the question, the ground truth, the
prediction and the frames it was made on, beside who judged (evaluator, fingerprint, scale)."""

from __future__ import annotations

from typing import Any

from mmaip_core import EvalRecord, EvalRequest, ScoreScale

__all__ = ["NO_TRUTH", "eval_record"]

NO_TRUTH = "the sample has no ground truth"
"""The rationale of a verdict that could not be made: the sample has no answer to compare with."""


def eval_record(
    request: EvalRequest, evaluator: str, fingerprint: str, scale: ScoreScale, **verdict: Any
) -> EvalRecord:
    """The EvalRecord of ``evaluator``'s ``verdict`` fields (correct, score, status, rationale, ...) on ``request``."""
    return EvalRecord(
        sample_id=request.sample.id,
        video=request.sample.video,
        benchmark=request.benchmark,
        model=request.model,
        evaluator=evaluator,
        fingerprint=fingerprint,
        question=request.sample.question,
        answer=request.sample.answer,
        prediction=request.prediction,
        scale=scale,
        frames=request.frames.manifest.key if request.frames else None,
        **verdict,
    )
