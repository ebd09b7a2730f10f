"""Scorers bundled with mmaip: offline ``exact-match`` and ``reference``."""

from __future__ import annotations

from mmaip_core import ScorerSpec, hookimpl
from mmaip_plugins.scorers.anthropic_judge import AnthropicJudge, AnthropicJudgeOptions
from mmaip_plugins.scorers.exact_match import ExactMatchOptions, ExactMatchScorer
from mmaip_plugins.scorers.openai_judge import OpenAIJudge, OpenAIJudgeOptions
from mmaip_plugins.scorers.reference import ReferenceOptions, ReferenceScorer

__all__ = [
    "AnthropicJudge",
    "AnthropicJudgeOptions",
    "ExactMatchOptions",
    "ExactMatchScorer",
    "OpenAIJudge",
    "OpenAIJudgeOptions",
    "ReferenceOptions",
    "ReferenceScorer",
]


@hookimpl
def mmaip_scorers() -> list[ScorerSpec]:
    return [
        ScorerSpec(
            name="anthropic-judge",
            description="LLM judge with a Claude model (same prompt and parsing as openai-judge); vision optional",
            options=AnthropicJudgeOptions,
            factory=AnthropicJudge,
        ),
        ScorerSpec(
            name="exact-match",
            description="offline: normalised match of the answer against the ground truth",
            options=ExactMatchOptions,
            factory=ExactMatchScorer,
        ),
        ScorerSpec(
            name="openai-judge",
            description="LLM judge on an OpenAI-compatible endpoint (the paper's GPT-4o scorer); vision optional",
            options=OpenAIJudgeOptions,
            factory=OpenAIJudge,
        ),
        ScorerSpec(
            name="reference",
            description="offline: embedding similarity (all-MiniLM-L6-v2) of the answer to the ground truth",
            options=ReferenceOptions,
            factory=ReferenceScorer,
        ),
    ]
