"""The ``hf`` generator: any local or hub Hugging Face video MLLM, with its own processor and chat
template (Qwen2-VL / Qwen2.5-VL / Qwen3-VL, LLaVA-OneVision, LLaVA-NeXT-Video, ...). A text-only request (no
frames) gets the question alone: no video input, a chat template of text only."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from itertools import groupby
from typing import Annotated, Any, Literal

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
    stable_hash,
)
from mmaip_plugins.zoo.api import response_record
from mmaip_plugins.zoo.hub import local_files_only, model_folder

__all__ = [
    "GenerationParams",
    "HFGenerator",
    "HFOptions",
    "batches",
    "chat_messages",
    "chat_prompt",
    "load_pretrained",
    "processor_inputs",
]


class GenerationParams(PluginOptions):
    """Sampling parameters; ``temperature: 0`` means greedy decoding."""

    temperature: float = Field(default=0.0, ge=0)
    top_p: float = Field(default=1.0, gt=0, le=1)
    top_k: int | None = Field(default=None, ge=1)
    max_new_tokens: int = Field(default=256, ge=1, le=32768, description="At most 32768: the KV cache grows with it.")
    repetition_penalty: float | None = Field(default=None, gt=0)
    seed: int = Field(default=0, description="Seed of the sampler; with it, a rerun gives the same answers.")


class HFOptions(PluginOptions):
    model: Annotated[str, HubOrFolder()] = Field(
        description="Hub id (e.g. Qwen/Qwen2-VL-7B-Instruct) or local folder (relative: from the config's folder)."
    )
    revision: str | None = Field(default=None, description="Hub revision (branch, tag or commit).")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    device: str = Field(default="auto", description="cpu, cuda, cuda:1, ... or auto (cuda when available).")
    device_map: str | None = Field(default=None, description="Passed to from_pretrained (e.g. 'auto').")
    attn_implementation: str | None = Field(default=None, description="e.g. sdpa or flash_attention_2.")
    batch_size: int = Field(default=4, ge=1, le=1024, description="Questions per generate() call (greedy decoding).")
    frames_as: Literal["video", "images"] = Field(
        default="video", description="Pass frames as one video, or as images for image-only models."
    )
    system_prompt: str | None = None
    trust_remote_code: bool = False
    params: GenerationParams = Field(default_factory=GenerationParams)


class HFGenerator:
    """Answers with a Hugging Face image-text-to-text model; loads it on first use."""

    plugin = "hf"

    def __init__(self, options: HFOptions, *, smoke: bool = False, model_id: str | None = None) -> None:
        self.options = options
        self.smoke = smoke
        self.model_id = model_id or options.model
        self.fingerprint = stable_hash(
            {
                "model_id": self.model_id,
                "revision": options.revision,
                "dtype": options.dtype,  # bf16 and fp32 answers differ
                "params": options.params.model_dump(mode="json"),
                "system_prompt": options.system_prompt,
                "frames_as": options.frames_as,
            }
        )[:16]
        self._model: Any = None
        self._processor: Any = None

    @property
    def batch_size(self) -> int:
        """Questions per generate() call; the build stage commits results after each batch."""
        return self.options.batch_size

    @property
    def max_output_tokens(self) -> int:
        return self.options.params.max_new_tokens

    def _load(self) -> None:
        import torch

        o = self.options
        self._processor, model = load_pretrained(
            o.model,
            revision=o.revision,
            dtype=o.dtype,
            device_map=o.device_map,
            attn_implementation=o.attn_implementation,
            trust_remote_code=o.trust_remote_code,
        )
        self._processor.tokenizer.padding_side = "left"
        if not o.device_map:
            device = ("cuda" if torch.cuda.is_available() else "cpu") if o.device == "auto" else o.device
            model = model.to(device)
        self._model = model.eval()

    def _prompt(self, messages: Sequence[dict[str, Any]], frames: Frames | None) -> str:
        return chat_prompt(self._processor, messages, frames, self.options.frames_as)

    def _inputs(self, prompts: list[str], frames: Sequence[Frames | None]) -> Any:
        return processor_inputs(self._processor, prompts, frames, self.options.frames_as)

    def complete(
        self, chats: Sequence[tuple[Sequence[dict[str, Any]], Frames | None]], seed_key: Any = None
    ) -> list[tuple[str, TokenUsage]]:
        """Replies to text conversations (``{"role", "content": str}`` messages), each with optional frames,
        in one generate() call with this generator's parameters. Loads the model on first use."""
        import torch

        if self._model is None:
            self._load()
        p = self.options.params
        inputs = self._inputs([self._prompt(m, f) for m, f in chats], [f for _, f in chats]).to(self._model.device)
        kwargs: dict[str, Any] = {"max_new_tokens": p.max_new_tokens, "do_sample": p.temperature > 0}
        if p.temperature > 0:
            kwargs.update(temperature=p.temperature, top_p=p.top_p)
            if p.top_k is not None:
                kwargs["top_k"] = p.top_k
        if p.repetition_penalty is not None:
            kwargs["repetition_penalty"] = p.repetition_penalty
        tokenizer = self._processor.tokenizer
        with torch.random.fork_rng(devices=[]), torch.inference_mode():
            torch.manual_seed(int(stable_hash([p.seed, seed_key])[:8], 16))
            output = self._model.generate(**inputs, **kwargs, pad_token_id=tokenizer.pad_token_id)
        new_tokens = output[:, inputs["input_ids"].shape[1] :]
        texts = tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        stop = {tokenizer.pad_token_id, tokenizer.eos_token_id}
        return [
            (
                texts[i].strip(),
                TokenUsage(
                    prompt_tokens=int(inputs["attention_mask"][i].sum()),
                    completion_tokens=sum(1 for t in new_tokens[i].tolist() if t not in stop),
                ),
            )
            for i in range(len(chats))
        ]

    def _generate_batch(self, batch: Sequence[GenerationRequest], model: str) -> list[Response]:
        system = [{"role": "system", "content": self.options.system_prompt}] if self.options.system_prompt else []
        chats = [([*system, {"role": "user", "content": r.sample.question}], r.frames) for r in batch]
        start = time.perf_counter()
        replies = self.complete(chats, seed_key=[r.id for r in batch])  # the batch is 1 when sampling
        latency = (time.perf_counter() - start) / len(batch)
        return [
            self._response(request, model, text=text, usage=usage, latency_s=latency)
            for request, (text, usage) in zip(batch, replies, strict=True)
        ]

    def _response(self, request: GenerationRequest, model: str, **fields: Any) -> Response:
        return response_record(
            request,
            model=model,
            model_id=self.model_id,
            generator="smoke" if self.smoke else self.plugin,
            params=self.options.params.model_dump(),
            model_revision=self.options.revision,
            smoke=self.smoke,
            **fields,
        )

    def generate(self, requests: Sequence[GenerationRequest], *, model: str) -> list[Response]:
        """Answer every request, batch by batch; a batch that fails yields error responses.

        Greedy decoding is batched. With ``temperature > 0`` each answer is sampled on its own, seeded by
        (``seed``, call key), so an answer never depends on how requests happen to be batched.
        """
        if self._model is None:
            self._load()
        responses: list[Response] = []
        size = self.batch_size if self.options.params.temperature == 0 else 1
        for batch in batches(requests, size):
            try:
                responses.extend(self._generate_batch(batch, model))
            except Exception as exc:  # one bad batch must not end the run: record and go on
                error = ErrorInfo(error_class=type(exc).__name__, message=str(exc))
                responses.extend(self._response(r, model, error=error) for r in batch)
        return responses


def batches(requests: Sequence[GenerationRequest], size: int) -> Iterator[list[GenerationRequest]]:
    """``requests`` in order, in batches of at most ``size`` that are all with frames or all text-only (a
    processor takes no batch that mixes both)."""
    for _, run in groupby(requests, key=lambda r: r.frames is None):
        same = list(run)
        for start in range(0, len(same), size):
            yield same[start : start + size]


def load_pretrained(
    model: str,
    *,
    revision: str | None = None,
    dtype: str = "auto",
    device_map: str | None = None,
    attn_implementation: str | None = None,
    trust_remote_code: bool = False,
) -> tuple[Any, Any]:
    """``(processor, model)`` of a Hugging Face image-text-to-text model (hub id or folder), on the CPU
    unless ``device_map`` says otherwise; a load failure is a ModelError naming the model. A hub id comes from
    the local cache when the Hub cannot be reached (:mod:`mmaip_plugins.zoo.hub`)."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # mmaip's own progress bars report the work
    offline = model_folder(model) is None and local_files_only(model, revision)
    common: dict[str, Any] = {"revision": revision, "trust_remote_code": trust_remote_code, "local_files_only": offline}
    kwargs: dict[str, Any] = {**common, "dtype": dtype if dtype == "auto" else getattr(torch, dtype)}
    if device_map:
        kwargs["device_map"] = device_map
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    try:
        processor = AutoProcessor.from_pretrained(model, **common)
        loaded = AutoModelForImageTextToText.from_pretrained(model, **kwargs)
    except (OSError, ValueError) as exc:
        raise ModelError(model, f"{type(exc).__name__}: {str(exc).splitlines()[0]}") from exc
    return processor, loaded


def chat_messages(
    messages: Sequence[dict[str, Any]], frames: Frames | None, frames_as: str = "video"
) -> list[dict[str, Any]]:
    """Text messages (``{"role", "content": str}``) in the processor's chat format; the frames go before
    the first user text, as one video or as images."""
    visual: list[dict[str, Any]] = []
    if frames is not None:
        visual = [{"type": "video"}] if frames_as == "video" else [{"type": "image"}] * len(frames.array)
    converted = []
    for message in messages:
        content: list[dict[str, Any]] = [{"type": "text", "text": message["content"]}]
        if message["role"] == "user" and visual:
            content, visual = [*visual, *content], []
        converted.append({"role": message["role"], "content": content})
    return converted


def chat_prompt(
    processor: Any, messages: Sequence[dict[str, Any]], frames: Frames | None, frames_as: str = "video"
) -> str:
    """The model's chat template applied to ``messages``, ending with the assistant's turn opening."""
    converted = chat_messages(messages, frames, frames_as)
    return str(processor.apply_chat_template(converted, add_generation_prompt=True, tokenize=False))


def processor_inputs(
    processor: Any, prompts: list[str], frames: Sequence[Frames | None], frames_as: str = "video"
) -> Any:
    """The processor's model inputs for ``prompts`` with their frames (already sampled by mmaip)."""
    from transformers.video_utils import VideoMetadata

    shown = [f for f in frames if f is not None]
    if not shown:
        return processor(text=prompts, padding=True, return_tensors="pt")
    if len(shown) != len(frames):
        raise ValueError("a batch mixes requests with and without frames")
    if frames_as == "images":
        return processor(text=prompts, images=[list(f.array) for f in shown], padding=True, return_tensors="pt")
    metadata = [
        VideoMetadata(
            total_num_frames=m.source_num_frames,
            fps=m.source_fps,
            width=m.source_size[0],
            height=m.source_size[1],
            frames_indices=m.indices,
        )
        for m in (f.manifest for f in shown)
    ]
    # Frames are already sampled by mmaip's frame layer: processors must not sample again.
    return processor(
        text=prompts,
        videos=[f.array for f in shown],
        video_metadata=metadata,
        do_sample_frames=False,
        padding=True,
        return_tensors="pt",
    )
