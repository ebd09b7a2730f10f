"""A third-party mmaip plugin: the ``shorter`` scorer, which prefers short answers.

Installed, it is found through its entry point in the ``mmaip`` group, listed by ``mmaip plugins``
and usable by name in any config (``scorer: {name: shorter, target_words: 5}``).
"""

from __future__ import annotations

from collections.abc import Sequence

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


class ShorterOptions(PluginOptions):
    target_words: int = Field(default=10, ge=1, description="Answers this short or shorter get the top score.")
    scale: ScoreScale = Field(default_factory=ScoreScale, description="Score range.")


class ShorterScorer:
    """Full marks up to ``target_words`` words, then linearly less, reaching the minimum at 4x."""

    def __init__(self, options: ShorterOptions) -> None:
        self.options = options
        self.scale = options.scale
        self.fingerprint = stable_hash({"scorer": "shorter", **options.model_dump(mode="json")})[:16]

    def _one(self, request: ScoreRequest) -> Judgement:
        common = {
            "response_id": request.response.id,
            "sample_id": request.sample.id,
            "scorer": "shorter",
            "fingerprint": self.fingerprint,
            "scale": self.scale,
        }
        text = request.response.text
        if text is None:
            error = ErrorInfo(error_class="MissingInput", message="the response has no text")
            return Judgement(**common, status=ParseStatus.ERROR, error=error)
        words, target = len(text.split()), self.options.target_words
        excess = min(max(words - target, 0) / (3 * target), 1.0)
        score = self.scale.max - excess * (self.scale.max - self.scale.min)
        return Judgement(**common, score=round(score, 6), rationale=f"{words} words (target {target})")

    def score(self, requests: Sequence[ScoreRequest]) -> list[Judgement]:
        return [self._one(r) for r in requests]


@hookimpl
def mmaip_scorers() -> list[ScorerSpec]:
    return [
        ScorerSpec(
            name="shorter",
            description="example third-party scorer: prefers shorter answers",
            options=ShorterOptions,
            factory=ShorterScorer,
        )
    ]
