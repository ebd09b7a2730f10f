"""Video-ChatGPT's generative performance benchmark (VCGBench) as evaluators: ``vcgbench-correctness``
(correctness of information), ``vcgbench-detail`` (detail orientation), ``vcgbench-context`` (contextual
understanding), ``vcgbench-temporal`` (temporal understanding) and ``vcgbench-consistency`` (consistency: the
model's answers to the two phrasings of a question, the sample's ``question`` and ``alt_question``, judged
together; a sample without a second phrasing is an error). Each is a text judge under its criterion's
protocol (:mod:`mmaip_plugins.judging.vcgbench`: the official prompts, ``{'score': N}`` replies read with
``ast.literal_eval``, ``int(score)``, asked again until read); the figure the benchmark reports is the mean score.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from pydantic import Field

from mmaip_core import EvaluatorSpec, PluginContext, PluginOptions, PluginSection
from mmaip_plugins.evaluators.judges import JudgeEvaluator, JudgeEvaluatorOptions, judge_evaluator

__all__ = ["VCGBENCH_CRITERIA", "GenerativeCriterionOptions", "generative_specs"]

VCGBENCH_CRITERIA = {
    "correctness": "correctness of information",
    "detail": "detail orientation",
    "context": "contextual understanding",
    "temporal": "temporal understanding",
    "consistency": "consistency",
}


class GenerativeCriterionOptions(PluginOptions):
    judge: Annotated[dict[str, Any], PluginSection("scorer")] = Field(
        default_factory=lambda: {"name": "openai-judge"},
        description="The judge scorer and its options; the benchmark's own settings (gpt-3.5-turbo, the API's "
        "default temperature, plain-text replies) apply where not given here.",
    )


def _factory(criterion: str) -> Callable[[GenerativeCriterionOptions, PluginContext], JudgeEvaluator]:
    name = f"vcgbench-{criterion}"

    def create(options: GenerativeCriterionOptions, context: PluginContext) -> JudgeEvaluator:
        judged = JudgeEvaluatorOptions.model_validate({"judge": options.judge, "protocol": name})
        return judge_evaluator(name, False, judged, context)

    create.__doc__ = f"VCGBench's {VCGBENCH_CRITERIA[criterion]} judge."
    return create


def generative_specs() -> list[EvaluatorSpec]:
    """The five criteria's evaluator specs."""
    return [
        EvaluatorSpec(
            name=f"vcgbench-{criterion}",
            description=f"Video-ChatGPT generative benchmark: {title}, a 0-5 score (its official judge prompt)",
            options=GenerativeCriterionOptions,
            factory=_factory(criterion),
            context=True,
        )
        for criterion, title in VCGBENCH_CRITERIA.items()
    ]
