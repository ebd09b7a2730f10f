"""A third-party mmaip plugin: the ``shorter`` scorer, which prefers short answers.

Installed, it is found through its entry point in the ``mmaip`` group, listed by ``mmaip plugins``
and usable by name in any config (``scorer: {name: shorter, target_words: 5}``).
"""

from __future__ import annotations

from pydantic import Field

from mmaip_core import PluginOptions, ScorerSpec, ScoreScale, SimpleScorer, VideoQA, hookimpl


class ShorterOptions(PluginOptions):
    target_words: int = Field(default=10, ge=1, description="Answers this short or shorter get the top score.")
    scale: ScoreScale = Field(default_factory=ScoreScale, description="Score range.")


class ShorterScorer(SimpleScorer):
    """Full marks up to ``target_words`` words, then linearly less, reaching the minimum at 4x."""

    name = "shorter"

    def __init__(self, options: ShorterOptions) -> None:
        super().__init__(options, options.scale)
        self.target = options.target_words

    def rate(self, sample: VideoQA, answer: str) -> tuple[float, str]:
        words = len(answer.split())
        excess = min(max(words - self.target, 0) / (3 * self.target), 1.0)
        score = self.scale.max - excess * (self.scale.max - self.scale.min)
        return score, f"{words} words (target {self.target})"


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
