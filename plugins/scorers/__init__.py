"""Scorers bundled with mmaip: offline ``exact-match`` and ``reference``."""

from __future__ import annotations

from mmaip_core import ScorerSpec, hookimpl
from mmaip_plugins.scorers.anthropic_judge import AnthropicJudge, AnthropicJudgeOptions
from mmaip_plugins.scorers.ensemble import EnsembleOptions, EnsembleScorer
from mmaip_plugins.scorers.exact_match import ExactMatchOptions, ExactMatchScorer
from mmaip_plugins.scorers.hf_judge import HFJudge, HFJudgeOptions
from mmaip_plugins.scorers.openai_judge import OpenAIJudge, OpenAIJudgeOptions
from mmaip_plugins.scorers.reference import ReferenceOptions, ReferenceScorer

__all__ = [
    "AnthropicJudge",
    "AnthropicJudgeOptions",
    "EnsembleOptions",
    "EnsembleScorer",
    "ExactMatchOptions",
    "ExactMatchScorer",
    "HFJudge",
    "HFJudgeOptions",
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
            name="ensemble",
            description="combines other scorers (mean, median, weighted) and records each member's score",
            options=EnsembleOptions,
            factory=EnsembleScorer,
            context=True,
        ),
        ScorerSpec(
            name="exact-match",
            description="offline: normalised match of the answer against the ground truth",
            options=ExactMatchOptions,
            factory=ExactMatchScorer,
        ),
        ScorerSpec(
            name="hf-judge",
            description="local Hugging Face VLM as judge (same prompt and parsing as the API judges)",
            options=HFJudgeOptions,
            factory=HFJudge,
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
