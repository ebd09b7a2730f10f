"""The ``exact-match`` scorer: the answer against the ground truth, after normalisation."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mmaip_core import InputError, PluginOptions, ScoreScale, SimpleScorer, VideoQA
from mmaip_plugins.matching import contains, normalise, token_f1

__all__ = ["ExactMatchOptions", "ExactMatchScorer"]


class ExactMatchOptions(PluginOptions):
    scale: ScoreScale = Field(default_factory=ScoreScale, description="Score range (default 1–5).")
    partial: Literal["none", "contains", "f1"] = Field(
        default="f1",
        description="Credit for answers that are not an exact match: none; full credit when the truth "
        "occurs in the answer (contains); or token F1 against the truth (f1).",
    )


class ExactMatchScorer(SimpleScorer):
    """Scores an answer by how well it matches the ground truth after normalisation.

    ``score = min + credit * (max - min)`` with credit 1 for an exact match and, otherwise, the
    ``partial`` credit. Samples without a ground-truth answer get an error judgement, never a score.
    """

    name = "exact-match"

    def __init__(self, options: ExactMatchOptions) -> None:
        super().__init__(options, options.scale)
        self.partial = options.partial

    def _credit(self, answer: str, truth: str) -> float:
        if normalise(answer) == normalise(truth):
            return 1.0
        if self.partial == "contains":
            return 1.0 if contains(answer, truth) else 0.0
        return token_f1(answer, truth) if self.partial == "f1" else 0.0

    def rate(self, sample: VideoQA, answer: str) -> tuple[float, str]:
        if sample.answer is None:
            raise InputError("the sample has no ground truth")
        credit = self._credit(answer, sample.answer)
        score = self.scale.min + credit * (self.scale.max - self.scale.min)
        return score, f"match credit {credit:.3f} against {sample.answer!r}"
