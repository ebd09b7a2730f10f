"""The ``reference`` evaluator: embedding similarity of the prediction to the ground truth, offline."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import Field

from mmaip_core import EvalRecord, EvalRequest, ParseStatus, PluginOptions, ScoreScale, stable_hash
from mmaip_plugins.embeddings import EMBEDDING_MODEL, cosine_to_truth
from mmaip_plugins.evaluators.records import NO_TRUTH, eval_record

__all__ = ["ReferenceEvaluator", "ReferenceEvaluatorOptions"]


class ReferenceEvaluatorOptions(PluginOptions):
    threshold: float = Field(default=0.7, ge=-1, le=1, description="Cosine similarity at or above which it is correct.")
    floor: float = Field(default=0.2, ge=-1, lt=1, description="Cosine at or below which the score is the minimum.")
    scale: ScoreScale = Field(default_factory=lambda: ScoreScale(min=0, max=5), description="Score range.")
    device: Literal["cpu", "cuda"] = "cpu"


class ReferenceEvaluator:
    """correct = cosine >= threshold; score = min + clip((cosine - floor) / (1 - floor), 0, 1) * (max - min),
    with all-MiniLM-L6-v2 embeddings. For runs without an API; samples without ground truth are errors."""

    name = "reference"

    def __init__(self, options: ReferenceEvaluatorOptions) -> None:
        self.options = options
        self.scale = options.scale
        self.uses_frames = False
        self.fingerprint = stable_hash({"evaluator": self.name, **options.model_dump(mode="json", exclude={"device"})})[
            :16
        ]

    def evaluate(self, requests: Sequence[EvalRequest]) -> list[EvalRecord]:
        known = [r for r in requests if r.sample.answer is not None]
        cosines = dict(
            zip(
                [id(r) for r in known],
                cosine_to_truth(
                    [r.prediction for r in known], [r.sample.answer or "" for r in known], self.options.device
                ),
                strict=True,
            )
        )
        o, span = self.options, self.scale.max - self.scale.min
        records = []
        for r in requests:
            if id(r) not in cosines:
                records.append(
                    eval_record(
                        r, self.name, self.fingerprint, self.scale, status=ParseStatus.ERROR, rationale=NO_TRUTH
                    )
                )
                continue
            cosine = cosines[id(r)]
            credit = min(max((cosine - o.floor) / (1 - o.floor), 0.0), 1.0)
            records.append(
                eval_record(
                    r,
                    self.name,
                    self.fingerprint,
                    self.scale,
                    correct=cosine >= o.threshold,
                    score=round(self.scale.min + credit * span, 6),
                    rationale=f"cosine {cosine:.3f} to the ground truth ({EMBEDDING_MODEL})",
                )
            )
        return records
