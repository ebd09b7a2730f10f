"""What each kind of plugin is: the objects a plugin's factory returns, and the typed spec records
through which plugins register them.

A plugin registers a *spec* (name, one-line description, pydantic options model, factory). The core
validates the user's options against the options model and calls ``factory(options)`` to obtain the
object that does the work: a :class:`FrameSampler`, :class:`SampleReader`, :class:`ResponseGenerator`,
:class:`Scorer`, :class:`PairStrategy`, :class:`ReferencePolicy`, :class:`Evaluator` or
:class:`PolicyTrainer`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, Protocol, TypeVar, runtime_checkable

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from mmaip_core.records import (
    EvalRecord,
    FrameManifest,
    Judgement,
    PreferencePair,
    Response,
    RoundResult,
    ScoreScale,
    TokenUsage,
    TrainPair,
    VideoQA,
)

if TYPE_CHECKING:
    from pathlib import Path

    from numpy.typing import NDArray

    from mmaip_core.calls.pricing import PriceTable
    from mmaip_core.calls.runner import CallOptions
    from mmaip_core.plugins.manager import PluginManager
    from mmaip_core.records import ErrorInfo

__all__ = [
    "PLUGIN_KINDS",
    "AsyncResponseGenerator",
    "AsyncScorer",
    "BatchScorer",
    "CheckpointName",
    "EvalRequest",
    "Evaluator",
    "EvaluatorSpec",
    "FrameSampler",
    "FrameSamplerSpec",
    "FrameSource",
    "Frames",
    "GenerationRequest",
    "GeneratorSpec",
    "HubOrFolder",
    "PairStrategy",
    "PairStrategySpec",
    "PairingOutcome",
    "PluginContext",
    "PluginOptions",
    "PluginSection",
    "PluginSpec",
    "PolicyTrainer",
    "ReferencePolicy",
    "ReferencePolicySpec",
    "ReferenceUpdate",
    "ResponseGenerator",
    "RoundRequest",
    "RowError",
    "SampleReader",
    "SampleReaderSpec",
    "ScoreRequest",
    "Scored",
    "Scorer",
    "ScorerSpec",
    "TrainerSpec",
    "VideoInfo",
]

_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]*$")


class PluginOptions(BaseModel):
    """Base of every plugin's options model: unknown keys are errors. Defaults are validated like given values,
    so a default written ``1`` for a float field is ``1.0``, as the same value read back from a resolved config
    is: fingerprints hash values, not how a default was written."""

    model_config = ConfigDict(extra="forbid", validate_default=True)


@dataclass(frozen=True)
class HubOrFolder:
    """Marks an option naming a model by hub id or local folder (``Annotated[str, HubOrFolder()]``): like every
    path of a config, a relative folder is taken from the config file's folder: one that exists there, or one
    written as a path (``./ckpt``, ``../runs/final``, ``runs/train/final``: more than one ``/``). Anything else
    (``Qwen/Qwen2-VL-2B-Instruct``) stays a hub id."""


@dataclass(frozen=True)
class PluginSection:
    """Marks an option that holds another plugin's section (or a list of them): the plugin's name under
    ``selector``, its options beside it, e.g. ``judge: {name: openai-judge, max_frames: 8}``. Declared as
    ``Annotated[dict[str, Any], PluginSection("scorer")]``; the config check validates each such section with
    that plugin's own options model and names every problem by its path (``evaluators.1.judge.max_frames``)."""

    kind: str
    selector: str = "name"


PluginT = TypeVar("PluginT")


@dataclass(frozen=True)
class PluginContext:
    """What a plugin whose spec sets ``context`` receives beside its options, instead of reaching for globals:
    the plugin manager that creates it (to create its member or judge plugins, with the same ``prices``) and the
    run's price table (the config's ``prices`` over the built-in list)."""

    manager: PluginManager
    prices: PriceTable


class PluginSpec(BaseModel, Generic[PluginT]):
    """A selectable plugin: what users name in configs and on the command line."""

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)
    kind: ClassVar[str] = "plugin"

    name: str = Field(description="Lower-case name, words joined by '-'.")
    description: str = Field(description="One line shown by `mmaip plugins`.")
    options: type[PluginOptions] = Field(default=PluginOptions, description="Options model.")
    factory: Callable[..., PluginT] = Field(
        description="Builds the plugin: factory(options), or factory(options, context) when `context` is true."
    )
    context: bool = Field(
        default=False,
        description="The factory also takes a PluginContext: for plugins that create other plugins (an ensemble, "
        "a judge evaluator) or price calls.",
    )

    @field_validator("name", mode="before")
    @classmethod
    def _normalise(cls, value: str) -> str:
        name = str(value).strip().lower().replace("_", "-")
        if not _NAME.match(name):
            raise ValueError(f"plugin name {value!r} must be letters, digits, '-' or '.'")
        return name


# --- frames ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VideoInfo:
    """What a decoder knows about a video before decoding frames."""

    path: str
    num_frames: int
    fps: float
    width: int
    height: int

    @property
    def duration(self) -> float:
        return self.num_frames / self.fps if self.fps > 0 else 0.0


class FrameSource(Protocol):
    """Random access to a video's frames, for samplers that look at pixels."""

    info: VideoInfo

    def read(self, indices: Sequence[int], size: tuple[int, int] | None = None) -> NDArray[np.uint8]:
        """Frames at ``indices`` as an array (k, height, width, 3); ``size`` = (width, height) shrinks
        each frame as it is decoded (cheap full-video scans)."""
        ...


@dataclass(frozen=True)
class Frames:
    """Decoded frames and the manifest that says exactly which ones they are."""

    manifest: FrameManifest
    array: NDArray[np.uint8] = field(repr=False)


@runtime_checkable
class FrameSampler(Protocol):
    """Chooses which frames of a video to use."""

    def select(self, info: VideoInfo, source: FrameSource) -> list[int]:
        """Return 0-based frame indices in the order the frames are to be used."""
        ...


class FrameSamplerSpec(PluginSpec[FrameSampler]):
    kind: ClassVar[str] = "frame-sampler"


# --- samples --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RowError:
    """A row a reader could not turn into a sample; the run goes on with the other rows."""

    source: str
    row: str
    cause: str

    def __str__(self) -> str:
        return f"{self.source} row {self.row}: {self.cause}"


@runtime_checkable
class SampleReader(Protocol):
    """Reads a dataset into :class:`VideoQA` samples."""

    def read(self) -> Iterator[VideoQA | RowError]:
        """Yield every sample, or a RowError for a row that cannot be read; raise SamplesFileError for a file
        that cannot be read as a table at all (missing, empty, no rows)."""
        ...


class SampleReaderSpec(PluginSpec[SampleReader]):
    kind: ClassVar[str] = "sample-reader"


# --- the zoo --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GenerationRequest:
    """Ask for answer number ``sample_index`` to ``sample`` given ``frames``; ``id`` is the call key.
    ``frames`` is None for a text-only sample (no video): the question is asked on its own."""

    id: str
    sample: VideoQA
    frames: Frames | None
    sample_index: int = 0


@runtime_checkable
class ResponseGenerator(Protocol):
    """A model of the zoo: answers video questions.

    ``fingerprint`` hashes everything that determines an answer (model id and revision, generation
    parameters, prompt options) and nothing else (not batch size or device): it is part of every
    generation's ledger key. Sampling parameters are the option ``params``, which takes ``max_new_tokens``,
    ``temperature`` and ``top_p`` under these names: an evaluation benchmark's ``generation`` settings go there.
    """

    model_id: str
    fingerprint: str

    @property
    def batch_size(self) -> int:
        """Requests per :meth:`generate` call (the stage commits after each); 1 for API generators."""
        ...

    @property
    def max_output_tokens(self) -> int:
        """The most tokens one answer can have: what a cost plan assumes before the answers exist."""
        ...

    def generate(self, requests: Sequence[GenerationRequest], *, model: str) -> list[Response]:
        """Answer every request, in order. ``model`` is the zoo entry name to record."""
        ...


@runtime_checkable
class AsyncResponseGenerator(ResponseGenerator, Protocol):
    """A generator that answers one request per API call. The build stage runs its calls concurrently
    under ``call_options`` (see :mod:`mmaip_core.calls.runner`) and stores each answer the moment it arrives."""

    call_options: CallOptions

    async def agenerate(self, request: GenerationRequest, *, model: str) -> Response:
        """Answer one request; raise :class:`~mmaip_core.calls.runner.TransientError` for a failure worth retrying."""
        ...

    def failed(self, request: GenerationRequest, *, model: str, error: ErrorInfo) -> Response:
        """The Response that records a call which failed for good."""
        ...

    def estimate(self, request: GenerationRequest) -> TokenUsage:
        """An upper bound of the tokens the call will use (for cost estimates and spending limits)."""
        ...

    async def aclose(self) -> None:
        """Close what the calls opened (connections), inside the event loop that ran them."""
        ...


class GeneratorSpec(PluginSpec[ResponseGenerator]):
    kind: ClassVar[str] = "generator"


# --- scorers --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScoreRequest:
    """Score ``response`` to ``sample``; ``frames`` are offered to scorers that look at the video;
    ``alt_prediction``: the same model's answer to ``sample.alt_question``, for judges that compare the two."""

    sample: VideoQA
    response: Response
    frames: Frames | None = None
    alt_prediction: str | None = None


@runtime_checkable
class Scorer(Protocol):
    """An external scoring function: rates answers on a numeric scale.

    ``fingerprint`` hashes model id, prompt and parameters; ``uses_frames`` says whether the scorer looks
    at the video (then the frames' key is part of each judgement's ledger key).
    """

    fingerprint: str
    scale: ScoreScale
    uses_frames: bool

    @property
    def model_id(self) -> str | None:
        """The model behind the scores, to price its calls (None for a scorer that calls no priced model)."""
        ...

    def score(self, requests: Sequence[ScoreRequest]) -> list[Judgement]:
        """Return one Judgement per request, in order; failures are judgements with a failed status."""
        ...


@runtime_checkable
class AsyncScorer(Scorer, Protocol):
    """A scorer that judges one answer per API call, run concurrently like :class:`AsyncResponseGenerator`."""

    call_options: CallOptions

    async def ascore(self, request: ScoreRequest) -> Judgement:
        """Judge one answer; raise :class:`~mmaip_core.calls.runner.TransientError` for a failure worth retrying."""
        ...

    def failed(self, request: ScoreRequest, error: ErrorInfo) -> Judgement:
        """The Judgement (status error) that records a call which failed for good."""
        ...

    def estimate(self, request: ScoreRequest) -> TokenUsage:
        """An upper bound of the tokens one judgement will use (repairs not counted)."""
        ...

    async def aclose(self) -> None:
        """Close what the calls opened (connections), inside the event loop that ran them."""
        ...


@runtime_checkable
class BatchScorer(AsyncScorer, Protocol):
    """A scorer that can send its calls through a provider's batch API (cheaper, asynchronous).

    The build stage submits the calls not yet in the ledger, records each batch id at once, waits, and
    collects; a restarted run collects the recorded batches instead of submitting again.
    """

    batch: bool
    batch_poll_s: float

    def submit_batch(self, items: Sequence[tuple[str, ScoreRequest]]) -> Iterator[tuple[str, list[str]]]:
        """Submit the keyed requests, split to the provider's limits; yield (batch id, keys) as each batch is
        created, so the caller records it before the next one is sent."""
        ...

    def batch_done(self, batch_id: str) -> bool:
        """True once the provider has finished the batch (completed, failed, expired or cancelled)."""
        ...

    def collect_batch(self, batch_id: str, requests: Mapping[str, ScoreRequest]) -> list[tuple[str, Judgement]]:
        """The judgement of every key of a finished batch; failed rows become error judgements."""
        ...


class ScorerSpec(PluginSpec[Scorer]):
    kind: ClassVar[str] = "scorer"


# --- pair strategies ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scored:
    """A response and its (successful) judgement."""

    response: Response
    judgement: Judgement

    @property
    def score(self) -> float:
        assert self.judgement.score is not None
        return self.judgement.score


@dataclass(frozen=True)
class PairingOutcome:
    """The pairs made for one question, or why none were made."""

    pairs: list[PreferencePair]
    skipped: str | None = None


@runtime_checkable
class PairStrategy(Protocol):
    """Turns the scored answers to one question into preference pairs."""

    def make_pairs(self, sample: VideoQA, scored: Sequence[Scored], *, prompt: str) -> PairingOutcome:
        """Pairs for ``sample``; ``scored`` holds only successfully scored answers."""
        ...


class PairStrategySpec(PluginSpec[PairStrategy]):
    kind: ClassVar[str] = "pair-strategy"


# --- reference-update policies --------------------------------------------------------------------

CheckpointName = Literal["base", "reference", "policy", "strong"]


class ReferenceUpdate(BaseModel):
    """The next round's reference as a linear combination of this round's checkpoints.

    ``base`` is the model training started from, ``reference`` this round's reference, ``policy``
    the model DPO produced this round and ``strong`` its extrapolation. Weights sum to 1.
    """

    model_config = ConfigDict(frozen=True)
    weights: dict[CheckpointName, float]

    @field_validator("weights")
    @classmethod
    def _sum_to_one(cls, weights: dict[CheckpointName, float]) -> dict[CheckpointName, float]:
        if (
            not weights
            or not all(math.isfinite(w) for w in weights.values())
            or abs(sum(weights.values()) - 1.0) > 1e-6
        ):
            raise ValueError(f"reference weights must sum to 1, got {weights}")
        return {k: v for k, v in weights.items() if v != 0.0}

    @property
    def single(self) -> CheckpointName | None:
        """The one checkpoint that becomes the reference unchanged, if the update is a plain copy."""
        if len(self.weights) == 1:
            ((name, _),) = self.weights.items()
            return name
        return None


@runtime_checkable
class ReferencePolicy(Protocol):
    """Decides the reference model of the next round of iterative DPO."""

    def next_reference(self, round_index: int) -> ReferenceUpdate:
        """The reference for round ``round_index + 1`` after round ``round_index`` (1-based)."""
        ...


class ReferencePolicySpec(PluginSpec[ReferencePolicy]):
    kind: ClassVar[str] = "reference-policy"


# --- evaluators -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvalRequest:
    """Judge ``prediction`` of ``model`` on ``sample`` of ``benchmark``; ``alt_prediction``: the model's answer to
    ``sample.alt_question`` (the second phrasing), given when the sample has one."""

    sample: VideoQA
    benchmark: str
    model: str
    prediction: str
    frames: Frames | None = None
    alt_prediction: str | None = None


@runtime_checkable
class Evaluator(Protocol):
    """Judges predictions against the ground truth (yes/no and a score). ``uses_frames``: whether it looks at
    the video (then the frames' key is part of each verdict's ledger key)."""

    fingerprint: str
    scale: ScoreScale
    uses_frames: bool

    def evaluate(self, requests: Sequence[EvalRequest]) -> list[EvalRecord]:
        """One EvalRecord per request, in order."""
        ...


@runtime_checkable
class AsyncEvaluator(Evaluator, Protocol):
    """An evaluator whose verdicts are API calls. The core asks each verdict the moment its answer exists,
    concurrently within ``call_options`` (see :mod:`mmaip_core.calls.runner`), and retries it there."""

    call_options: CallOptions

    async def aevaluate(self, request: EvalRequest) -> EvalRecord:
        """The verdict on one request (a failure the call should retry raises TransientError)."""
        ...

    def failed(self, request: EvalRequest, error: ErrorInfo) -> EvalRecord:
        """The record of a verdict whose call failed for good (status error, the error as its rationale)."""
        ...

    async def aclose(self) -> None:
        """Close what the calls opened (connections), inside the event loop that ran them."""
        ...


class EvaluatorSpec(PluginSpec[Evaluator]):
    kind: ClassVar[str] = "evaluator"


# --- trainers ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RoundRequest:
    """One round of preference optimisation: start from ``init`` (a checkpoint folder; None: ``reference``),
    train on ``pairs`` against the frozen ``reference`` (a checkpoint folder), and write the policy to ``out``.
    ``eval_pairs``: held-out pairs the trainer scores with the trained policy (``RoundResult.eval``).

    ``out`` must be written completely or not at all (see :mod:`mmaip_core.store.checkpoints`). ``work`` is this
    round's scratch folder (step checkpoints, reference log-probs); with ``resume`` the trainer continues
    from the last complete step checkpoint found there. ``cache`` is shared by every round (e.g. vision
    features of a frozen tower). ``frames(video)`` returns the training frames of a pair's video; it reads the
    frame cache, so a trainer calls it whenever it needs them instead of keeping every video's frames.
    """

    round: int
    reference: Path
    pairs: Sequence[TrainPair]
    out: Path
    work: Path
    cache: Path
    frames: Callable[[str], Frames]
    init: Path | None = None
    eval_pairs: Sequence[TrainPair] = ()
    resume: bool = False
    progress: Callable[[str, int, int], None] | None = None

    @property
    def start(self) -> Path:
        """The checkpoint the policy starts from: ``init``, or the reference when there is none."""
        return self.init if self.init is not None else self.reference


@runtime_checkable
class PolicyTrainer(Protocol):
    """Trains a policy on preference pairs, one round at a time (the round loop lives in the core)."""

    fingerprint: str

    def save_base(self, out: Path) -> None:
        """Write the model training starts from as a complete checkpoint folder ``out``."""
        ...

    def train_round(self, request: RoundRequest) -> RoundResult:
        """Run one round; the policy ends up in ``request.out``."""
        ...


class TrainerSpec(PluginSpec[PolicyTrainer]):
    kind: ClassVar[str] = "trainer"


PLUGIN_KINDS: dict[str, type[PluginSpec[Any]]] = {
    spec.kind: spec
    for spec in (
        GeneratorSpec,
        ScorerSpec,
        PairStrategySpec,
        ReferencePolicySpec,
        EvaluatorSpec,
        FrameSamplerSpec,
        SampleReaderSpec,
        TrainerSpec,
    )
}
