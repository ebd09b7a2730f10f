"""The ``vision-judge`` and ``text-judge`` evaluators: a judge model gives a yes/no verdict and a score.

``vision-judge`` is the paper's scheme: the judge sees the frames of the video, the question, the ground
truth and the prediction. ``text-judge`` is the Video-ChatGPT baseline the paper criticises: question, ground
truth and prediction only. Both use any judge scorer (``openai-judge`` by default, ``anthropic-judge``,
``hf-judge``) asked for a verdict instead of a rating, with its parsing, repairs and retries: the prompt and
the reading of a verdict are in :mod:`mmaip_plugins.judging` (``prompts``, ``parsing``), and ``protocol`` picks
a published protocol's prompt, reading and judge settings (:mod:`mmaip_plugins.judging.protocols`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import Field

from mmaip_core import (
    AsyncScorer,
    ConfigError,
    ErrorInfo,
    EvalRecord,
    EvalRequest,
    Judgement,
    ParseStatus,
    PluginContext,
    PluginOptions,
    PluginSection,
    Response,
    Scorer,
    ScoreRequest,
    ScoreScale,
    stable_hash,
)
from mmaip_plugins.evaluators.records import eval_record
from mmaip_plugins.judging import CORRECT
from mmaip_plugins.judging.options import PromptTemplate
from mmaip_plugins.judging.protocols import ProtocolName, protocol

__all__ = [
    "ApiJudgeEvaluator",
    "JudgeEvaluator",
    "JudgeEvaluatorOptions",
    "judge_evaluator",
    "text_judge",
    "vision_judge",
]


class JudgeEvaluatorOptions(PluginOptions):
    judge: Annotated[dict[str, Any], PluginSection("scorer")] = Field(
        default_factory=lambda: {"name": "openai-judge"},
        description="The judge: a judge scorer's name and its options, e.g. {name: anthropic-judge, model: ...}; "
        "options given here win over the protocol's judge settings (openai-judge's default model: gpt-4o).",
    )
    scale: ScoreScale = Field(default_factory=lambda: ScoreScale(min=0, max=5), description="Score range (0–5).")
    protocol: ProtocolName = Field(
        default="mmaip",
        description="mmaip (JSON with a reason, repaired), video-chatgpt or lmms-eval (text-judge), vision "
        "(vision-judge), vcgbench-* (text-judge, score only): the published protocol's prompt, reply reading and "
        "judge settings (docs/evaluation.md).",
    )
    prompt_template: PromptTemplate | None = Field(
        default=None,
        description="Your own judge prompt: {user: ..., system: ...} with fields {question}, {answer}, "
        "{prediction}, {caption}, {low}, {high}; the protocol's reply format and reading are kept.",
    )


class JudgeEvaluator:
    """Turns each prediction into a request to ``judge`` and each verdict into an EvalRecord; ``vision``: the
    judge sees the frames."""

    def __init__(
        self, name: str, vision: bool, judge: Scorer, scale: ScoreScale, impute: bool = False, second: bool = False
    ) -> None:
        self.name, self.vision, self.judge, self.scale = name, vision, judge, scale
        self.impute = impute
        """An unreadable verdict counts as 'no' with the lowest score, marked imputed (the lmms-eval rule)."""
        self.second = second
        """The judge compares the answers to two phrasings: a request without the second answer is an error."""
        self.uses_frames = vision
        self.fingerprint = stable_hash({"evaluator": name, "judge": judge.fingerprint})[:16]

    def _score_request(self, index: int, request: EvalRequest) -> ScoreRequest:
        frames = request.frames
        prediction = Response(
            id=f"{request.benchmark}:{request.model}:{request.sample.id}:{index}",
            sample_id=request.sample.id,
            model=request.model,
            model_id=request.model,
            generator="evaluation",
            params={},
            text=request.prediction,
            frames=frames.manifest.key if frames else "-",
        )
        return ScoreRequest(
            sample=request.sample,
            response=prediction,
            frames=frames if self.vision else None,
            alt_prediction=request.alt_prediction,
        )

    def _unjudged(self, request: EvalRequest) -> EvalRecord | None:
        """The error record of a request this judge cannot judge (no second phrasing), else None."""
        if not self.second or request.alt_prediction is not None:
            return None
        why = "the sample has no second phrasing of its question (alt_question) to judge consistency on"
        return eval_record(request, self.name, self.fingerprint, self.scale, status=ParseStatus.ERROR, rationale=why)

    def _imputed(self, verdict: Judgement) -> Judgement:
        """An unreadable verdict as the lmms-eval rule counts it: 'no' with the lowest score, the problem kept."""
        problem = verdict.rationale or (verdict.error.message if verdict.error else "no reply")
        return verdict.model_copy(
            update={
                "status": ParseStatus.OK,
                "score": self.scale.min,
                "criteria": {CORRECT: 0.0},
                "rationale": f"imputed as no, {self.scale.min:g} ({verdict.status.value}: {problem})",
            }
        )

    def _record(self, request: EvalRequest, verdict: Judgement) -> EvalRecord:
        imputed = self.impute and verdict.status is not ParseStatus.OK
        if imputed:
            verdict = self._imputed(verdict)
        ok = verdict.status is ParseStatus.OK
        return eval_record(
            request,
            self.name,
            self.fingerprint,
            self.scale,
            correct=verdict.criteria.get(CORRECT) == 1.0 if ok else None,
            score=verdict.score if ok else None,
            rationale=verdict.rationale or (verdict.error.message if verdict.error else None),
            raw_reply=verdict.raw_reply,
            status=verdict.status,
            imputed=imputed,
            judge_frames=verdict.frames,
            model_id=verdict.model_id,
            usage=verdict.usage,
        )

    def evaluate(self, requests: Sequence[EvalRequest]) -> list[EvalRecord]:
        unjudged = [self._unjudged(r) for r in requests]
        asked = [r for r, u in zip(requests, unjudged, strict=True) if u is None]
        verdicts = iter(self.judge.score([self._score_request(i, r) for i, r in enumerate(asked)]))
        return [u or self._record(r, next(verdicts)) for r, u in zip(requests, unjudged, strict=True)]


class ApiJudgeEvaluator(JudgeEvaluator):
    """A judge evaluator over an API judge: the core asks one verdict per call, each as soon as its answer
    exists, concurrently within the judge's ``call_options``."""

    judge: AsyncScorer

    def __init__(
        self, name: str, vision: bool, judge: AsyncScorer, scale: ScoreScale, impute: bool = False, second: bool = False
    ) -> None:
        super().__init__(name, vision, judge, scale, impute, second)
        self.call_options = judge.call_options

    async def aevaluate(self, request: EvalRequest) -> EvalRecord:
        unjudged = self._unjudged(request)
        if unjudged is not None:
            return unjudged
        return self._record(request, await self.judge.ascore(self._score_request(0, request)))

    def failed(self, request: EvalRequest, error: ErrorInfo) -> EvalRecord:
        return self._record(request, self.judge.failed(self._score_request(0, request), error))

    async def aclose(self) -> None:
        await self.judge.aclose()


def judge_evaluator(name: str, vision: bool, options: JudgeEvaluatorOptions, context: PluginContext) -> JudgeEvaluator:
    """A judge evaluator ``name`` whose judge is asked under ``options.protocol``: the protocol's judge settings,
    overridden by the config's ``judge`` options; a ConfigError when the protocol fixes the other ``vision``."""
    proto = protocol(options.protocol)
    if proto.vision is not None and proto.vision != vision:
        other = "vision-judge" if proto.vision else "text-judge"
        raise ConfigError([f"{name}: protocol '{proto.name}' is for {other}; use {other} or another protocol"])
    values = {**proto.judge, **{k: v for k, v in options.judge.items() if k != "name"}}
    values.update(task="verdict", vision=vision, scale=options.scale.model_dump(), protocol=proto.name)
    if options.prompt_template is not None:
        values["prompt_template"] = options.prompt_template.model_dump()
    judge: Scorer = context.manager.create("scorer", str(options.judge.get("name", "")), values, prices=context.prices)
    if isinstance(judge, AsyncScorer):
        return ApiJudgeEvaluator(name, vision, judge, options.scale, proto.impute, proto.second_answer)
    return JudgeEvaluator(name, vision, judge, options.scale, proto.impute, proto.second_answer)


def vision_judge(options: JudgeEvaluatorOptions, context: PluginContext) -> JudgeEvaluator:
    """The paper's judge: it sees the frames, the question, the ground truth and the prediction."""
    return judge_evaluator("vision-judge", True, options, context)


def text_judge(options: JudgeEvaluatorOptions, context: PluginContext) -> JudgeEvaluator:
    """The Video-ChatGPT baseline: question, ground truth and prediction only."""
    return judge_evaluator("text-judge", False, options, context)
