"""The ``exact-match`` evaluator: the prediction against the ground truth, after normalisation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import Field

from mmaip_core import (
    EvalRecord,
    EvalRequest,
    ParseStatus,
    PluginOptions,
    ScoreScale,
    stable_hash,
)
from mmaip_plugins.evaluators.records import NO_TRUTH, eval_record
from mmaip_plugins.matching import contains, normalise, token_f1

__all__ = ["ExactMatchEvaluator", "ExactMatchEvaluatorOptions"]


class ExactMatchEvaluatorOptions(PluginOptions):
    match: Literal["exact", "contains"] = Field(
        default="contains",
        description="A prediction is correct when its normalised text equals the truth (exact) or "
        "contains it as whole words (contains).",
    )
    scale: ScoreScale = Field(default_factory=lambda: ScoreScale(min=0, max=5), description="Score range.")


class ExactMatchEvaluator:
    """Verdict by normalised matching; score = max for a correct prediction, else token F1 × max.

    Samples without a ground-truth answer are recorded with status ``error`` and no verdict.
    """

    name = "exact-match"
    uses_frames = False

    def __init__(self, options: ExactMatchEvaluatorOptions) -> None:
        self.options = options
        self.scale = options.scale
        self.fingerprint = stable_hash({"evaluator": self.name, **options.model_dump(mode="json")})[:16]

    def _record(self, request: EvalRequest) -> EvalRecord:
        truth, prediction = request.sample.answer, request.prediction
        if truth is None:
            return eval_record(
                request, self.name, self.fingerprint, self.scale, status=ParseStatus.ERROR, rationale=NO_TRUTH
            )
        if self.options.match == "exact":
            correct = normalise(prediction) == normalise(truth)
        else:
            correct = contains(prediction, truth)
        span = self.scale.max - self.scale.min
        score = self.scale.max if correct else self.scale.min + token_f1(prediction, truth) * span
        return eval_record(request, self.name, self.fingerprint, self.scale, correct=correct, score=round(score, 6))

    def evaluate(self, requests: Sequence[EvalRequest]) -> list[EvalRecord]:
        return [self._record(r) for r in requests]
