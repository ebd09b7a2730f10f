"""What a judge is asked and how: the options every judge scorer (API or local) starts from."""

from __future__ import annotations

from string import Formatter
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mmaip_core import PluginOptions, ScoreScale
from mmaip_plugins.judging.protocols import ProtocolName

__all__ = ["DEFAULT_CRITERIA", "TEMPLATE_FIELDS", "JudgeOptions", "PromptTemplate"]

DEFAULT_CRITERIA = ["relevance", "accuracy", "clarity", "completeness"]

TEMPLATE_FIELDS = ("question", "answer", "prediction", "caption", "low", "high")
"""The named fields a prompt template may use."""


def _check_fields(template: str) -> str:
    """``template`` when every {field} in it is one of TEMPLATE_FIELDS; else a ValueError naming the others."""
    try:
        names = {name for _, name, _, _ in Formatter().parse(template) if name is not None}
    except ValueError as exc:
        raise ValueError(f"not a valid template ({exc}); write a literal brace as {{{{ or }}}}") from None
    unknown = sorted(n for n in names if n not in TEMPLATE_FIELDS)
    if unknown:
        raise ValueError(f"unknown template fields: {', '.join(unknown)}; allowed: {', '.join(TEMPLATE_FIELDS)}")
    return template


class PromptTemplate(BaseModel):
    """A user-supplied judge prompt: the user message (and optionally the system message) with named fields
    {question}, {answer}, {prediction}, {caption}, {low}, {high}. The reply format and its reading stay the
    protocol's, so say in the template how to reply (or keep the protocol's system message, which does)."""

    model_config = ConfigDict(extra="forbid")

    user: str = Field(description="User message template.")
    system: str | None = Field(default=None, description="System message template (default: the protocol's).")

    @field_validator("user", "system")
    @classmethod
    def _known_fields(cls, value: str | None) -> str | None:
        return None if value is None else _check_fields(value)


class JudgeOptions(PluginOptions):
    """What the judge is asked."""

    task: Literal["rate", "verdict"] = Field(
        default="rate",
        description="rate: score an answer on the criteria (building pairs); verdict: yes/no correctness and "
        "a score against the ground truth (evaluation, as the Video-ChatGPT protocol).",
    )

    protocol: ProtocolName = Field(
        default="mmaip",
        description="How a verdict is asked and read: mmaip, video-chatgpt, lmms-eval or vision (see "
        "docs/evaluation.md); set by the evaluator's own protocol option.",
    )
    prompt_template: PromptTemplate | None = Field(
        default=None, description="Your own prompt with named fields (the protocol's reply format is kept)."
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

    @model_validator(mode="after")
    def _protocol_for_verdicts(self) -> JudgeOptions:
        if self.protocol != "mmaip" and self.task != "verdict":
            raise ValueError(
                f"protocol '{self.protocol}' is a way of asking verdicts: set it on a judge evaluator "
                "(text-judge, vision-judge), not on a scorer that rates answers"
            )
        return self
