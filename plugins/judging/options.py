"""What a judge is asked and how: the options every judge scorer (API or local) starts from."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mmaip_core import PluginOptions, ScoreScale

__all__ = ["DEFAULT_CRITERIA", "JudgeOptions"]

DEFAULT_CRITERIA = ["relevance", "accuracy", "clarity", "completeness"]


class JudgeOptions(PluginOptions):
    """What the judge is asked."""

    task: Literal["rate", "verdict"] = Field(
        default="rate",
        description="rate: score an answer on the criteria (building pairs); verdict: yes/no correctness and "
        "a score against the ground truth (evaluation, as the Video-ChatGPT protocol).",
    )

    criteria: list[str] = Field(default_factory=lambda: list(DEFAULT_CRITERIA), min_length=1)
    scale: ScoreScale = Field(default_factory=ScoreScale, description="Integer score range (default 1–5).")
    vision: bool = Field(default=False, description="Also show the judge the frames the model saw.")
    structured: bool = Field(
        default=True,
        description="Ask for JSON through the API's structured output (response_format); false: plain text "
        "'Score: N' replies, for endpoints without structured output.",
    )
    max_repairs: int = Field(default=2, ge=0, le=5, description="Re-asks after an unusable reply.")
    temperature: float = Field(default=0.0, ge=0, le=2)
    max_tokens: int = Field(default=512, ge=16)
    batch: bool = Field(
        default=False,
        description="Send the judgements through the provider's batch API (about half the price, results "
        "within 24 h). Replies are not repaired in batch mode: an unusable one is recorded as it is.",
    )
    batch_poll_s: float = Field(default=30.0, gt=0, description="Seconds between checks of a submitted batch.")
