"""The ``vllm`` generator: a Hugging Face video MLLM run by vLLM's offline engine (``vllm.LLM``) on local GPUs.

Prompts are built with the model's own chat template (its Hugging Face processor's ``apply_chat_template``, as
the ``hf`` generator does); the frames go to vLLM as one video (``{"video": array}``) or as images
(``{"image": [PIL images]}``), a text-only request with none. Each batch the core hands over is one
``llm.generate`` call, and each answer is sampled with its own seed (``seed`` + answer index), so answers do not
depend on how requests are batched.

vLLM is an optional extra (``pip install "mmaip[vllm]"``, Linux with a CUDA GPU); it is imported when the plugin
is created, and the model is loaded on the first batch.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Annotated, Any, Literal, Protocol

from pydantic import Field

from mmaip_core import (
    ErrorInfo,
    Frames,
    GenerationRequest,
    HubOrFolder,
    ModelError,
    PluginOptions,
    Response,
    TokenUsage,
    UserError,
    stable_hash,
)
from mmaip_plugins.zoo.api import response_record
from mmaip_plugins.zoo.hf import GenerationParams, chat_prompt

__all__ = [
    "Completion",
    "Engine",
    "VLLMEngine",
    "VLLMGenerator",
    "VLLMOptions",
    "engine_args",
    "load_processor",
    "multimodal_data",
    "require_vllm",
    "sampling_args",
]

DEFAULT_MAX_IMAGES = 32
"""Frames per prompt vLLM makes room for with ``video_input: images`` unless ``limit_mm_per_prompt`` says."""


class VLLMOptions(PluginOptions):
    model: Annotated[str, HubOrFolder()] = Field(
        description="Hub id (e.g. Qwen/Qwen2.5-VL-7B-Instruct) or local folder."
    )
    revision: str | None = Field(default=None, description="Hub revision (branch, tag or commit).")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    max_model_len: int | None = Field(default=None, ge=1, description="Context length (default: the model's).")
    gpu_memory_utilization: float = Field(default=0.9, gt=0, le=1, description="Share of GPU memory vLLM takes.")
    tensor_parallel_size: int = Field(default=1, ge=1, description="GPUs one model is split over.")
    limit_mm_per_prompt: dict[str, int] | None = Field(
        default=None,
        description=f"Most items per prompt by modality (default: {{video: 1}}, or {{image: {DEFAULT_MAX_IMAGES}}} "
        "with video_input images).",
    )
    video_input: Literal["images", "video"] = Field(
        default="video", description="Pass frames as one video, or as images (for image-only models)."
    )
    system_prompt: str | None = None
    trust_remote_code: bool = False
    batch_size: int = Field(default=64, ge=1, le=4096, description="Requests per llm.generate() call.")
    params: GenerationParams = Field(default_factory=GenerationParams)


@dataclass(frozen=True)
class Completion:
    """One answer of the engine, with its token counts."""

    text: str
    prompt_tokens: int
    completion_tokens: int


class Engine(Protocol):
    """What the generator needs of an inference engine: answers to a batch of prompts, one call."""

    def generate(self, prompts: Sequence[dict[str, Any]], sampling: Sequence[dict[str, Any]]) -> list[Completion]:
        """The completion of every prompt (``{"prompt", "multi_modal_data"?}``), with its sampling arguments."""
        ...


def require_vllm() -> ModuleType:
    """The ``vllm`` module; a UserError naming the extra to install when it is missing."""
    try:
        return importlib.import_module("vllm")
    except ImportError as exc:
        raise UserError(
            f"generator 'vllm' needs vLLM, which is not installed ({exc}): pip install \"mmaip[vllm]\" "
            "(Linux with a CUDA GPU)"
        ) from exc


def engine_args(options: VLLMOptions) -> dict[str, Any]:
    """The keyword arguments of ``vllm.LLM`` for ``options``."""
    limits = options.limit_mm_per_prompt
    if limits is None:
        limits = {"video": 1} if options.video_input == "video" else {"image": DEFAULT_MAX_IMAGES}
    return {
        "model": options.model,
        "revision": options.revision,
        "dtype": options.dtype,
        "max_model_len": options.max_model_len,
        "gpu_memory_utilization": options.gpu_memory_utilization,
        "tensor_parallel_size": options.tensor_parallel_size,
        "limit_mm_per_prompt": limits,
        "trust_remote_code": options.trust_remote_code,
        "seed": options.params.seed,
    }


def sampling_args(params: GenerationParams, sample_index: int) -> dict[str, Any]:
    """The ``vllm.SamplingParams`` arguments of answer ``sample_index``: its own seed, ``seed + sample_index``
    (``temperature: 0`` is greedy)."""
    args: dict[str, Any] = {
        "temperature": params.temperature,
        "top_p": params.top_p,
        "max_tokens": params.max_new_tokens,
        "seed": params.seed + sample_index,
    }
    if params.top_k is not None:
        args["top_k"] = params.top_k
    if params.repetition_penalty is not None:
        args["repetition_penalty"] = params.repetition_penalty
    return args


def multimodal_data(frames: Frames | None, video_input: str) -> dict[str, Any]:
    """vLLM's ``multi_modal_data`` for ``frames``: one video (frames, height, width, 3), or one PIL image a
    frame; empty for a text-only request."""
    if frames is None:
        return {}
    if video_input == "video":
        return {"video": frames.array}
    from PIL import Image

    return {"image": [Image.fromarray(frame) for frame in frames.array]}


def _load_error(model: str, exc: Exception) -> ModelError:
    """``exc``, raised while loading ``model``, as a ModelError that names the model (first line of the cause)."""
    return ModelError(model, f"{type(exc).__name__}: {next(iter(str(exc).splitlines()), '')}")


class VLLMEngine:
    """:class:`Engine` over ``vllm.LLM``, loaded from ``options``; a load failure is a ModelError."""

    def __init__(self, options: VLLMOptions) -> None:
        self._vllm = require_vllm()
        try:
            self._llm = self._vllm.LLM(**engine_args(options))
        except (OSError, ValueError) as exc:
            raise _load_error(options.model, exc) from exc

    def generate(self, prompts: Sequence[dict[str, Any]], sampling: Sequence[dict[str, Any]]) -> list[Completion]:
        params = [self._vllm.SamplingParams(**args) for args in sampling]
        outputs = self._llm.generate(list(prompts), sampling_params=params, use_tqdm=False)
        return [
            Completion(
                text=output.outputs[0].text,
                prompt_tokens=len(output.prompt_token_ids or ()),
                completion_tokens=len(output.outputs[0].token_ids),
            )
            for output in outputs
        ]


def _fingerprint(options: VLLMOptions) -> str:
    """What determines an answer: model, revision, dtype, sampling and prompt options; not memory, parallelism,
    limits or batch size."""
    return stable_hash(
        {
            "model": options.model,
            "revision": options.revision,
            "dtype": options.dtype,  # bf16 and fp32 answers differ
            "params": options.params.model_dump(mode="json"),
            "system_prompt": options.system_prompt,
            "video_input": options.video_input,
        }
    )[:16]


def load_processor(options: VLLMOptions) -> Any:
    """The model's Hugging Face processor, for its chat template; a load failure is a ModelError."""
    from transformers import AutoProcessor

    try:
        return AutoProcessor.from_pretrained(
            options.model, revision=options.revision, trust_remote_code=options.trust_remote_code
        )
    except (OSError, ValueError) as exc:
        raise _load_error(options.model, exc) from exc


class VLLMGenerator:
    """Answers with vLLM's offline engine. ``engine`` replaces ``vllm.LLM`` (any :class:`Engine`); without it
    vLLM must be installed, and the model loads on the first batch."""

    plugin = "vllm"

    def __init__(self, options: VLLMOptions, *, engine: Engine | None = None) -> None:
        if engine is None:
            require_vllm()  # fail when the zoo is set up, not after the frames are decoded
        self.options = options
        self.model_id = options.model
        self.fingerprint = _fingerprint(options)
        self._engine = engine
        self._processor: Any = None

    @property
    def batch_size(self) -> int:
        return self.options.batch_size

    @property
    def max_output_tokens(self) -> int:
        return self.options.params.max_new_tokens

    def prompt(self, request: GenerationRequest) -> dict[str, Any]:
        """vLLM's input for ``request``: the chat-templated prompt and, when there are frames, their data."""
        if self._processor is None:
            self._processor = load_processor(self.options)
        system = [{"role": "system", "content": self.options.system_prompt}] if self.options.system_prompt else []
        messages = [*system, {"role": "user", "content": request.sample.question}]
        text = chat_prompt(self._processor, messages, request.frames, self.options.video_input)
        data = multimodal_data(request.frames, self.options.video_input)
        return {"prompt": text, "multi_modal_data": data} if data else {"prompt": text}

    def generate(self, requests: Sequence[GenerationRequest], *, model: str) -> list[Response]:
        """Answer every request with one ``llm.generate`` call; if it fails, every answer records the error."""
        if not requests:
            return []
        if self._engine is None:
            self._engine = VLLMEngine(self.options)
        start = time.perf_counter()
        try:
            prompts = [self.prompt(r) for r in requests]
            sampling = [sampling_args(self.options.params, r.sample_index) for r in requests]
            completions = self._engine.generate(prompts, sampling)
        except ModelError:
            raise  # the processor cannot be loaded: every batch would fail the same way
        except Exception as exc:  # one bad batch must not end the run: record and go on
            error = ErrorInfo(error_class=type(exc).__name__, message=str(exc))
            return [self._response(r, model, error=error) for r in requests]
        latency = (time.perf_counter() - start) / len(requests)
        return [
            self._response(
                request,
                model,
                text=done.text.strip(),
                usage=TokenUsage(prompt_tokens=done.prompt_tokens, completion_tokens=done.completion_tokens),
                latency_s=latency,
            )
            for request, done in zip(requests, completions, strict=True)
        ]

    def _response(self, request: GenerationRequest, model: str, **fields: Any) -> Response:
        return response_record(
            request,
            model=model,
            model_id=self.model_id,
            generator=self.plugin,
            params=self.options.params.model_dump(),
            model_revision=self.options.revision,
            **fields,
        )
