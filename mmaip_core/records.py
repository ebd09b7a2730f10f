"""The records every stage shares: typed, documented, JSON-serialisable (pydantic v2).

- ``VideoQA``: one video question, the input of every stage;
- ``FrameManifest``: exactly which frames of which video were used, and how they were decoded;
- ``Response``: one answer of one zoo model to one question;
- ``Judgement``: one scorer's verdict on one response;
- ``AnnotatedResponse``: a response with its judgements (a line of a build's ``responses.jsonl``);
- ``PreferencePair``: chosen/rejected answers to one question, with their scores and models;
- ``EvalRecord``: one evaluator's verdict on one prediction of a model under evaluation;
- ``RunManifest``: versions of mmaip, plugins and key libraries, and the resolved config.

Every response, judgement, pair and evaluation record carries the key of the frame manifest of the
frames it used (``frames``), so "the judge saw what the model saw" can be checked by comparing keys.
``mmaip schema NAME`` prints the JSON Schema of any record.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mmaip_core.errors import UnknownRecordError
from mmaip_core.store.hashing import stable_hash

__all__ = [
    "RECORDS",
    "AnnotatedResponse",
    "ErrorInfo",
    "EvalRecord",
    "FrameManifest",
    "ItemError",
    "Judgement",
    "ParseStatus",
    "PluginInfo",
    "PreferencePair",
    "Record",
    "Response",
    "RoundRecord",
    "RoundResult",
    "RunManifest",
    "ScoreScale",
    "TokenUsage",
    "TrainManifest",
    "TrainPair",
    "VideoQA",
    "record_schema",
]


def _now() -> datetime:
    return datetime.now(UTC)


class Record(BaseModel):
    """Base of every record: unknown fields are rejected, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class VideoQA(Record):
    """One video question, as a sample reader produces it."""

    id: str = Field(description="Unique id of the sample within its source.")
    video: str | None = Field(
        default=None,
        description="Path (absolute, or relative to the sample file) or URL of the video; None for a text-only question.",
    )
    question: str = Field(description="The question asked about the video.")
    alt_question: str | None = Field(
        default=None,
        description="A second phrasing of the question (Video-ChatGPT's consistency benchmark: Q2): an evaluation "
        "asks each model both, and its evaluators get both answers.",
    )
    answer: str | None = Field(default=None, description="Ground-truth answer, if known.")
    caption: str | None = Field(default=None, description="Detailed caption of the video, if known.")
    source: str | None = Field(default=None, description="Dataset the sample comes from.")
    metadata: dict[str, Any] = Field(default_factory=dict, description="Free metadata of the source.")
    categories: dict[str, str] = Field(
        default_factory=dict,
        description="What evaluation results are broken down by (question type, video length, task), by field.",
    )
    group: str | None = Field(
        default=None,
        description="Samples with the same group count as one question, correct only if all are (circular "
        "evaluation: the options rotated).",
    )


class FrameManifest(Record):
    """Which frames of which video were used, and how they were obtained.

    ``key`` identifies the frames themselves (video content, sampler, indices, output size); it does
    not depend on the decoding backend, which is recorded beside it.
    """

    video: str = Field(description="The video path as given.")
    video_sha256: str = Field(description="sha256 of the video file's bytes.")
    sampler: str = Field(description="Name of the frame sampler plugin.")
    sampler_params: dict[str, Any] = Field(description="The sampler's resolved options.")
    indices: list[int] = Field(description="0-based frame indices, in the order the frames are used.")
    timestamps: list[float] = Field(description="Presentation time of each frame, in seconds.")
    backend: str = Field(description="Decoding backend that produced the frames (decord or pyav).")
    fallback_from: str | None = Field(default=None, description="Backend that failed first, when a fallback was used.")
    fallback_reason: str | None = Field(default=None, description="Why the first backend failed.")
    source_fps: float = Field(description="Average frame rate of the video.")
    source_num_frames: int = Field(description="Number of frames in the video.")
    source_size: tuple[int, int] = Field(description="(width, height) of the video.")
    output_size: tuple[int, int] = Field(description="(width, height) of the frames produced.")
    max_side: int | None = Field(default=None, description="Resize limit for the longer side, if any.")

    @property
    def key(self) -> str:
        """Content key of the frames: equal keys mean identical pixels were used."""
        return stable_hash(
            {
                "video_sha256": self.video_sha256,
                "sampler": self.sampler,
                "sampler_params": self.sampler_params,
                "indices": self.indices,
                "output_size": self.output_size,
            }
        )


class TokenUsage(Record):
    """Token counts of one model call."""

    prompt_tokens: int = Field(default=0, description="Tokens of the prompt, frames included.")
    completion_tokens: int = Field(default=0, description="Tokens generated.")
    image_tokens: int | None = Field(
        default=None, description="Of the prompt tokens, those the frames account for (provider's rules), when known."
    )


class ErrorInfo(Record):
    """Why an item failed, after how many attempts."""

    error_class: str = Field(description="Class name of the final error, e.g. RateLimitError.")
    message: str = Field(description="The error's message.")
    attempts: int = Field(default=1, ge=1, description="Attempts made before giving up.")


class Response(Record):
    """One answer of one zoo model to one question (or the error that prevented it)."""

    id: str = Field(description="Content key of the generation call (see the ledger).")
    sample_id: str = Field(description="Id of the VideoQA answered.")
    model: str = Field(description="Zoo entry name, unique within a run.")
    model_id: str = Field(description="Model identifier: hub id, local path or API model name.")
    model_revision: str | None = Field(default=None, description="Model revision (commit, tag), if known.")
    generator: str = Field(description="Name of the generator plugin.")
    params: dict[str, Any] = Field(description="The exact generation parameters used.")
    sample_index: int = Field(default=0, ge=0, description="Which of the n answers of this model.")
    text: str | None = Field(default=None, description="The answer; None when the call failed.")
    usage: TokenUsage | None = Field(default=None, description="Token counts of the call.")
    latency_s: float | None = Field(default=None, ge=0, description="Seconds the call took (per answer).")
    frames: str | None = Field(
        default=None, description="Key of the FrameManifest of the frames the model saw (None: a text-only question)."
    )
    smoke: bool = Field(default=False, description="True for randomly initialised smoke models.")
    error: ErrorInfo | None = Field(default=None, description="Why the call failed, if it did.")
    created_at: datetime = Field(default_factory=_now, description="When the record was made (UTC).")

    @model_validator(mode="after")
    def _text_or_error(self) -> Response:
        if (self.text is None) == (self.error is None):
            raise ValueError("a Response has either text or an error, not both or neither")
        return self


class ScoreScale(Record):
    """An inclusive numeric range, e.g. 1–5."""

    min: float = Field(default=1.0, description="Lowest score.")  # floats, as a loaded config holds them: a
    max: float = Field(default=5.0, description="Highest score.")  # fingerprint hashing 1 and one hashing 1.0 differ

    @model_validator(mode="after")
    def _ordered(self) -> ScoreScale:
        if self.min >= self.max:
            raise ValueError(f"scale min ({self.min}) must be below max ({self.max})")
        return self

    def contains(self, value: float) -> bool:
        return self.min <= value <= self.max


class ParseStatus(StrEnum):
    """Outcome of reading a judge's reply. Only ``ok`` carries a score."""

    OK = "ok"
    PARSE_FAILURE = "parse_failure"
    OUT_OF_RANGE = "out_of_range"
    ERROR = "error"


class Judgement(Record):
    """One scorer's verdict on one response. A score exists only when ``status`` is ``ok``."""

    response_id: str = Field(description="Id of the Response judged.")
    sample_id: str = Field(description="Id of the VideoQA.")
    scorer: str = Field(description="Name of the scorer plugin.")
    fingerprint: str = Field(description="Hash of model id + prompt hash + parameters of the scorer.")
    score: float | None = Field(default=None, description="The score; only when status is ok.")
    scale: ScoreScale = Field(default_factory=ScoreScale, description="Range of the score.")
    criteria: dict[str, float] = Field(default_factory=dict, description="Per-criterion scores.")
    rationale: str | None = Field(default=None, description="The judge's reason.")
    raw_reply: str | None = Field(default=None, description="The judge's reply, verbatim.")
    status: ParseStatus = Field(default=ParseStatus.OK, description="ok, parse_failure, out_of_range or error.")
    attempts: int = Field(default=1, ge=1, description="Judge calls made (repair retries included).")
    model_id: str | None = Field(default=None, description="The judge model, for model-based scorers.")
    usage: TokenUsage | None = Field(default=None, description="Tokens spent on this judgement (all attempts).")
    latency_s: float | None = Field(
        default=None, ge=0, description="Seconds the judgement took (set by the core; none for batch-API calls)."
    )
    cost_usd: float | None = Field(
        default=None, ge=0, description="Cost, when the scorer prices it itself (an ensemble of API judges)."
    )
    frames: str | None = Field(
        default=None, description="FrameManifest key of the frames shown to the judge; None if none."
    )
    error: ErrorInfo | None = Field(default=None, description="Why judging failed, if it did.")
    created_at: datetime = Field(default_factory=_now, description="When the record was made (UTC).")

    @model_validator(mode="after")
    def _score_only_when_ok(self) -> Judgement:
        if self.status is ParseStatus.OK:
            if self.score is None:
                raise ValueError("a Judgement with status ok needs a score")
            if not self.scale.contains(self.score):
                raise ValueError(f"score {self.score} is outside the scale {self.scale.min}–{self.scale.max}")
        elif self.score is not None:
            raise ValueError(f"a Judgement with status {self.status.value} must not carry a score")
        return self


class PreferencePair(Record):
    """A chosen and a rejected answer to the same question, the chosen one scored strictly higher."""

    id: str = Field(description="Stable id of the pair.")
    sample_id: str = Field(description="Id of the VideoQA.")
    video: str | None = Field(default=None, description="The video, as in the sample (None: a text-only question).")
    question: str = Field(description="The question, as in the sample.")
    prompt: str = Field(description="The prompt as the trained model will see it (without frames).")
    chosen: str = Field(description="The preferred answer.")
    rejected: str = Field(description="The dispreferred answer.")
    chosen_score: float = Field(description="Score of the chosen answer.")
    rejected_score: float = Field(description="Score of the rejected answer.")
    chosen_model: str = Field(description="Zoo entry that wrote the chosen answer.")
    rejected_model: str = Field(description="Zoo entry that wrote the rejected answer.")
    chosen_response_id: str = Field(description="Id of the chosen Response.")
    rejected_response_id: str = Field(description="Id of the rejected Response.")
    strategy: str = Field(description="Name of the pair strategy plugin.")
    margin: float = Field(description="chosen_score - rejected_score.")
    label_source: str = Field(description="'human' or 'ai:<scorer fingerprint>'.")
    frames: str | None = Field(
        default=None,
        description="FrameManifest key of the frames the answers were generated from (None: a text-only question).",
    )
    answer: str | None = Field(default=None, description="Ground-truth answer of the sample.")
    caption: str | None = Field(default=None, description="Caption of the sample.")

    @model_validator(mode="after")
    def _strict_preference(self) -> PreferencePair:
        if not self.chosen_score > self.rejected_score:
            raise ValueError(f"chosen_score ({self.chosen_score}) must exceed rejected_score ({self.rejected_score})")
        if self.chosen_response_id == self.rejected_response_id:
            raise ValueError("chosen and rejected are the same response")
        return self


class AnnotatedResponse(Record):
    """A line of a build's ``responses.jsonl``: one response with every judgement of it."""

    response: Response = Field(description="The answer (or the error that prevented it).")
    judgements: list[Judgement] = Field(default_factory=list, description="Its judgements, one per scorer.")


class EvalRecord(Record):
    """One evaluator's verdict on one prediction. Failed parses carry no verdict and no score."""

    sample_id: str = Field(description="Id of the VideoQA.")
    video: str | None = Field(default=None, description="The video, for statistics clustered by video.")
    benchmark: str = Field(description="Benchmark (dataset) name.")
    model: str = Field(description="Name of the model under evaluation.")
    evaluator: str = Field(description="Name of the evaluator: its config entry's name (by default its plugin's).")
    fingerprint: str = Field(description="Evaluator fingerprint: judge model, prompt hash, frames policy.")
    question: str = Field(description="The question.")
    answer: str | None = Field(default=None, description="Ground-truth answer.")
    prediction: str = Field(description="The model's answer.")
    alt_question: str | None = Field(default=None, description="The second phrasing of the question, if any.")
    alt_prediction: str | None = Field(default=None, description="The model's answer to the second phrasing.")
    correct: bool | None = Field(default=None, description="yes/no verdict; only when status is ok.")
    score: float | None = Field(default=None, description="Score; only when status is ok.")
    scale: ScoreScale = Field(default_factory=lambda: ScoreScale(min=0, max=5), description="Range of the score.")
    rationale: str | None = Field(default=None, description="The evaluator's reason.")
    raw_reply: str | None = Field(default=None, description="The judge's reply, verbatim.")
    status: ParseStatus = Field(default=ParseStatus.OK, description="ok, parse_failure, out_of_range or error.")
    imputed: bool = Field(
        default=False, description="The verdict was imputed by the judge protocol's rule (lmms-eval: no, 0)."
    )
    frames: str | None = Field(default=None, description="FrameManifest key of the model's frames.")
    judge_frames: str | None = Field(default=None, description="FrameManifest key shown to the judge.")
    categories: dict[str, str] = Field(default_factory=dict, description="The sample's categories.")
    group: str | None = Field(default=None, description="The sample's group (circular evaluation).")
    model_id: str | None = Field(default=None, description="The judge model, for model-based evaluators.")
    usage: TokenUsage | None = Field(default=None, description="Tokens the verdict cost (all attempts).")
    created_at: datetime = Field(default_factory=_now, description="When the record was made (UTC).")

    @model_validator(mode="after")
    def _verdict_only_when_ok(self) -> EvalRecord:
        if self.status is ParseStatus.OK:
            if self.correct is None or self.score is None:
                raise ValueError("an EvalRecord with status ok needs a verdict and a score")
            if not self.scale.contains(self.score):
                raise ValueError(f"score {self.score} is outside the scale {self.scale.min}–{self.scale.max}")
        elif self.correct is not None or self.score is not None:
            raise ValueError(f"an EvalRecord with status {self.status.value} carries no verdict or score")
        return self


class PluginInfo(Record):
    """One registered plugin, as ``mmaip plugins`` lists it."""

    kind: str = Field(description="Plugin kind (generator, scorer, ...).")
    name: str = Field(description="Name users select it by.")
    package: str = Field(description="Distribution that provides the plugin.")
    version: str | None = Field(default=None, description="Version of that distribution.")
    module: str = Field(description="Module that registered it.")
    description: str = Field(description="One-line description.")


class RunManifest(Record):
    """What produced a run: versions, plugins, the resolved config and the command."""

    mmaip_version: str = Field(description="Version of mmaip.")
    python: str = Field(description="Python version.")
    platform: str = Field(description="Operating system and machine.")
    packages: dict[str, str | None] = Field(description="Versions of key libraries (None: not installed).")
    plugins: list[PluginInfo] = Field(description="Every plugin loaded, with its package and version.")
    config: dict[str, Any] = Field(description="The resolved run config.")
    command: list[str] = Field(default_factory=list, description="The command line that started the run.")
    created_at: datetime = Field(default_factory=_now, description="When the run started (UTC).")
    kind: Literal["run-manifest"] = Field(default="run-manifest", description="Marks the file's kind.")


class ItemError(Record):
    """An item of a run that failed (a line of ``errors.jsonl``)."""

    stage: str = Field(description="samples, frames, generation or judgement.")
    model: str | None = Field(
        default=None, description="The model label concerned (the zoo entry or the model evaluated), if any."
    )
    sample_id: str | None = Field(default=None, description="The sample concerned, if one was read.")
    item: str = Field(description="The sample id, row, video or call key concerned.")
    error_class: str
    message: str


class TrainPair(Record):
    """One preference pair as the trainer reads it: a line of a build's ``pairs.jsonl`` (a PreferencePair)
    or of a hand-written file (human preferences) with just these fields."""

    id: str = Field(description="Stable id of the pair.")
    video: str = Field(
        description="The video file (or folder of frames); relative paths are taken from the file's folder."
    )
    prompt: str = Field(description="The question as the trained model sees it (without frames).")
    chosen: str = Field(description="The preferred answer.")
    rejected: str = Field(description="The dispreferred answer.")
    label_source: str = Field(default="human", description="'human' or 'ai:<scorer fingerprint>'.")


class RoundResult(Record):
    """What one round of preference optimisation did (the trainer's report to the round loop)."""

    steps: int = Field(description="Optimizer steps taken.")
    skipped_steps: int = Field(default=0, description="Steps skipped for a non-finite loss or gradient.")
    pairs: int = Field(description="Pairs trained on.")
    skipped: list[ItemError] = Field(default_factory=list, description="Pairs left out, each with the cause.")
    curves: dict[str, list[float]] = Field(
        default_factory=dict, description="Per-step training curves: loss, margin, accuracy, rewards, logps."
    )
    vision_encodes: int = Field(default=0, description="Vision-tower forwards this round (cached videos: 0).")
    reference_forwards: int = Field(default=0, description="Sequences scored by the reference this round.")
    wall_s: float = Field(default=0.0, description="Wall time of the round in seconds.")
    resumed_from_step: int | None = Field(default=None, description="Step checkpoint the round resumed from.")
    eval: dict[str, float] = Field(
        default_factory=dict,
        description="Held-out pairs under the trained policy: loss, accuracy (reward accuracy), margin, pairs "
        "(empty without held-out pairs).",
    )


class RoundRecord(Record):
    """One round of Iter-W2S-RLAIF in ``manifest.json``: which checkpoints it used and wrote."""

    round: int = Field(description="1-based round number.")
    reference: str = Field(description="Folder of this round's reference.")
    init: str | None = Field(
        default=None, description="Folder the policy started from: the last round's model (None: the reference)."
    )
    policy: str = Field(description="Folder of the trained policy.")
    strong: str | None = Field(default=None, description="Folder of the extrapolated model (None when alpha = 0).")
    alpha: float = Field(description="ExPO alpha: strong = policy + alpha * (policy - anchor).")
    anchor: str = Field(description="Folder of the extrapolation anchor (this round's reference or the base).")
    reference_policy: str = Field(description="Reference-update policy plugin.")
    next_reference: str = Field(description="Folder of the next round's reference.")
    next_reference_weights: dict[str, float] = Field(description="The next reference as weights over checkpoints.")
    shard: int | None = Field(default=None, description="Data shard of this round (None: all pairs).")
    pairs_file: str = Field(description="The pairs this round trained on.")
    result: RoundResult = Field(description="The trainer's report.")


class TrainManifest(Record):
    """``OUT/manifest.json`` of ``mmaip train``: every round's checkpoints and curves, and the final model."""

    base: str = Field(description="Folder of the starting model as saved by the trainer.")
    trainer: str = Field(description="Trainer plugin.")
    trainer_fingerprint: str = Field(description="Hash of the trainer's options.")
    rounds_planned: int = Field(description="Rounds asked for.")
    rounds: list[RoundRecord] = Field(default_factory=list, description="Completed rounds, in order.")
    final: str | None = Field(default=None, description="Folder of the final model once every round is done.")
    keep: Literal["last", "best"] = Field(
        default="last", description="Which round's model is final: the last, or the best held-out reward accuracy."
    )
    final_round: int | None = Field(default=None, description="The round whose model is final.")
    run: RunManifest | None = Field(default=None, description="Versions, plugins, config and command.")
    kind: Literal["train-manifest"] = Field(default="train-manifest", description="Marks the file's kind.")


RECORDS: dict[str, type[Record]] = {
    cls.__name__: cls
    for cls in (
        VideoQA,
        FrameManifest,
        Response,
        Judgement,
        AnnotatedResponse,
        PreferencePair,
        EvalRecord,
        RunManifest,
        ItemError,
        TrainPair,
        RoundResult,
        RoundRecord,
        TrainManifest,
    )
}


def record_schema(name: str) -> dict[str, Any]:
    """JSON Schema of the record called ``name`` (case-insensitive)."""
    by_lower = {k.lower(): v for k, v in RECORDS.items()}
    cls = by_lower.get(name.lower())
    if cls is None:
        raise UnknownRecordError(name, list(RECORDS))
    return cls.model_json_schema()
