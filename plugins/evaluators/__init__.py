"""Evaluators: ``vision-judge`` (the paper's scheme), ``text-judge`` (the Video-ChatGPT baseline), and the
offline ``reference`` and ``exact-match``, and ``multiple-choice`` (option letters, for Video-MME, MVBench,
EgoSchema, NExT-QA)."""

from __future__ import annotations

from mmaip_core import EvaluatorSpec, hookimpl
from mmaip_plugins.evaluators.exact_match import ExactMatchEvaluator, ExactMatchEvaluatorOptions
from mmaip_plugins.evaluators.generative import generative_specs
from mmaip_plugins.evaluators.judges import JudgeEvaluatorOptions, text_judge, vision_judge
from mmaip_plugins.evaluators.multiple_choice import MultipleChoiceEvaluator, MultipleChoiceOptions, multiple_choice
from mmaip_plugins.evaluators.reference import ReferenceEvaluator, ReferenceEvaluatorOptions

__all__ = ["ExactMatchEvaluator", "MultipleChoiceEvaluator", "ReferenceEvaluator", "text_judge", "vision_judge"]


@hookimpl
def mmaip_evaluators() -> list[EvaluatorSpec]:
    return [
        EvaluatorSpec(
            name="vision-judge",
            description="judge sees frames, question, ground truth and prediction: yes/no and 0-5 (the paper)",
            options=JudgeEvaluatorOptions,
            factory=vision_judge,
            context=True,
        ),
        EvaluatorSpec(
            name="text-judge",
            description="judge sees question, ground truth and prediction only (the Video-ChatGPT baseline)",
            options=JudgeEvaluatorOptions,
            factory=text_judge,
            context=True,
        ),
        EvaluatorSpec(
            name="reference",
            description="offline: embedding similarity (all-MiniLM-L6-v2) of the prediction to the ground truth",
            options=ReferenceEvaluatorOptions,
            factory=ReferenceEvaluator,
        ),
        EvaluatorSpec(
            name="exact-match",
            description="offline: normalised match of the prediction against the ground truth",
            options=ExactMatchEvaluatorOptions,
            factory=ExactMatchEvaluator,
        ),
        EvaluatorSpec(
            name="multiple-choice",
            description="option letter extracted from the prediction (VLMEvalKit's rules), an optional judge when none",
            options=MultipleChoiceOptions,
            factory=multiple_choice,
            context=True,
        ),
        *generative_specs(),  # vcgbench-correctness, -detail, -context, -temporal
    ]
