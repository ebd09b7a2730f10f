"""Offline scorers bundled with mmaip: ``exact-match`` (answer against the ground truth)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import Field

from mmaip_core import (
    ErrorInfo,
    Judgement,
    ParseStatus,
    PluginOptions,
    ScoreRequest,
    ScorerSpec,
    ScoreScale,
    hookimpl,
    stable_hash,
)
from mmaip_plugins.matching import contains, normalise, token_f1

__all__ = ["ExactMatchOptions", "ExactMatchScorer"]


class ExactMatchOptions(PluginOptions):
    scale: ScoreScale = Field(default_factory=ScoreScale, description="Score range (default 1–5).")
    partial: Literal["none", "contains", "f1"] = Field(
        default="f1",
        description="Credit for answers that are not an exact match: none; full credit when the truth "
        "occurs in the answer (contains); or token F1 against the truth (f1).",
    )


class ExactMatchScorer:
    """Scores an answer by how well it matches the ground truth after normalisation.

    ``score = min + credit * (max - min)`` with credit 1 for an exact match and, otherwise, the
    ``partial`` credit. Samples without a ground-truth answer get an error judgement, never a score.
    """

    name = "exact-match"

    def __init__(self, options: ExactMatchOptions) -> None:
        self.options = options
        self.scale = options.scale
        self.fingerprint = stable_hash({"scorer": self.name, **options.model_dump(mode="json")})[:16]

    def _credit(self, answer: str, truth: str) -> float:
        if normalise(answer) == normalise(truth):
            return 1.0
        if self.options.partial == "contains":
            return 1.0 if contains(answer, truth) else 0.0
        return token_f1(answer, truth) if self.options.partial == "f1" else 0.0

    def _judgement(self, request: ScoreRequest) -> Judgement:
        response, truth = request.response, request.sample.answer
        base = {
            "response_id": response.id,
            "sample_id": request.sample.id,
            "scorer": self.name,
            "fingerprint": self.fingerprint,
            "scale": self.scale,
        }
        if response.text is None or truth is None:
            cause = "the response has no text" if response.text is None else "the sample has no ground truth"
            return Judgement(
                **base, status=ParseStatus.ERROR, error=ErrorInfo(error_class="MissingInput", message=cause)
            )
        credit = self._credit(response.text, truth)
        score = self.scale.min + credit * (self.scale.max - self.scale.min)
        return Judgement(**base, score=round(score, 6), rationale=f"match credit {credit:.3f} against {truth!r}")

    def score(self, requests: Sequence[ScoreRequest]) -> list[Judgement]:
        return [self._judgement(r) for r in requests]


@hookimpl
def mmaip_scorers() -> list[ScorerSpec]:
    return [
        ScorerSpec(
            name="exact-match",
            description="offline: normalised match of the answer against the ground truth",
            options=ExactMatchOptions,
            factory=ExactMatchScorer,
        )
    ]
