"""The ``reference`` scorer: semantic similarity of the answer to the ground truth, offline."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import Field

from mmaip_core import InputError, Judgement, PluginOptions, ScoreRequest, ScoreScale, SimpleScorer, VideoQA
from mmaip_plugins.embeddings import EMBEDDING_MODEL, cosine_to_truth

__all__ = ["ReferenceOptions", "ReferenceScorer"]


class ReferenceOptions(PluginOptions):
    scale: ScoreScale = Field(default_factory=ScoreScale, description="Score range (default 1–5).")
    floor: float = Field(
        default=0.2, ge=-1, lt=1, description="Cosine similarity at or below which an answer gets the minimum."
    )
    device: Literal["cpu", "cuda"] = Field(default="cpu", description="Where the embedding model runs.")


class ReferenceScorer(SimpleScorer):
    """Embeds answer and ground truth with all-MiniLM-L6-v2 and maps their cosine similarity onto the scale:
    ``score = min + clip((cos - floor) / (1 - floor), 0, 1) * (max - min)``.

    Needs no API and no GPU; samples without a ground truth get an error judgement, never a score.
    """

    name = "reference"
    runtime_options = frozenset({"device"})

    def __init__(self, options: ReferenceOptions) -> None:
        super().__init__(options, options.scale)
        self.floor = options.floor
        self.device = options.device
        self._similarity: dict[tuple[str, str], float] = {}

    def score(self, requests: Sequence[ScoreRequest]) -> list[Judgement]:
        pairs = [(r.response.text, r.sample.answer) for r in requests]
        todo = [(a, t) for a, t in pairs if a is not None and t is not None and (a, t) not in self._similarity]
        if todo:
            cosines = cosine_to_truth([a for a, _ in todo], [t for _, t in todo], self.device)
            self._similarity.update(zip(todo, cosines, strict=True))
        return super().score(requests)

    def rate(self, sample: VideoQA, answer: str) -> tuple[float, str]:
        if sample.answer is None:
            raise InputError("the sample has no ground truth")
        cosine = self._similarity.get((answer, sample.answer))
        if cosine is None:
            cosine = cosine_to_truth([answer], [sample.answer], self.device)[0]
        credit = min(max((cosine - self.floor) / (1 - self.floor), 0.0), 1.0)
        score = self.scale.min + credit * (self.scale.max - self.scale.min)
        return score, f"cosine {cosine:.3f} to the ground truth ({EMBEDDING_MODEL})"
