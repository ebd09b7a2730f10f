"""The ``hf`` generator: any local or hub Hugging Face video MLLM, with its own processor and chat
template (Qwen2-VL / Qwen2.5-VL / Qwen3-VL, LLaVA-OneVision, LLaVA-NeXT-Video, ...)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import Field

from mmaip_core import (
    ErrorInfo,
    GenerationRequest,
    ModelError,
    PluginOptions,
    Response,
    TokenUsage,
    VideoQA,
    stable_hash,
)
from mmaip_plugins.zoo.api import response_record

__all__ = ["GenerationParams", "HFGenerator", "HFOptions"]


class GenerationParams(PluginOptions):
    """Sampling parameters; ``temperature: 0`` means greedy decoding."""

    temperature: float = Field(default=0.0, ge=0)
    top_p: float = Field(default=1.0, gt=0, le=1)
    top_k: int | None = Field(default=None, ge=1)
    max_new_tokens: int = Field(default=256, ge=1)
    repetition_penalty: float | None = Field(default=None, gt=0)
    seed: int = Field(default=0, description="Seed of the sampler; with it, a rerun gives the same answers.")


class HFOptions(PluginOptions):
    model: str = Field(description="Hub id (e.g. Qwen/Qwen2-VL-7B-Instruct) or local folder.")
    revision: str | None = Field(default=None, description="Hub revision (branch, tag or commit).")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    device: str = Field(default="auto", description="cpu, cuda, cuda:1, ... or auto (cuda when available).")
    device_map: str | None = Field(default=None, description="Passed to from_pretrained (e.g. 'auto').")
    attn_implementation: str | None = Field(default=None, description="e.g. sdpa or flash_attention_2.")
    batch_size: int = Field(default=4, ge=1, description="Questions per generate() call (greedy decoding).")
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

    def _load(self) -> None:
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # mmaip's own progress bars report the work
        o = self.options
        common: dict[str, Any] = {"revision": o.revision, "trust_remote_code": o.trust_remote_code}
        kwargs: dict[str, Any] = {**common, "dtype": o.dtype if o.dtype == "auto" else getattr(torch, o.dtype)}
        if o.device_map:
            kwargs["device_map"] = o.device_map
        if o.attn_implementation:
            kwargs["attn_implementation"] = o.attn_implementation
        try:
            self._processor = AutoProcessor.from_pretrained(o.model, **common)
            model = AutoModelForImageTextToText.from_pretrained(o.model, **kwargs)
        except (OSError, ValueError) as exc:
            raise ModelError(o.model, f"{type(exc).__name__}: {str(exc).splitlines()[0]}") from exc
        self._processor.tokenizer.padding_side = "left"
        if not o.device_map:
            device = ("cuda" if torch.cuda.is_available() else "cpu") if o.device == "auto" else o.device
            model = model.to(device)
        self._model = model.eval()

    def _prompt(self, sample: VideoQA, num_frames: int) -> str:
        visual = [{"type": "video"}] if self.options.frames_as == "video" else [{"type": "image"}] * num_frames
        messages: list[dict[str, Any]] = []
        if self.options.system_prompt:
            messages.append({"role": "system", "content": [{"type": "text", "text": self.options.system_prompt}]})
        messages.append({"role": "user", "content": [*visual, {"type": "text", "text": sample.question}]})
        return str(self._processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False))

    def _inputs(self, batch: Sequence[GenerationRequest]) -> Any:
        from transformers.video_utils import VideoMetadata

        prompts = [self._prompt(r.sample, len(r.frames.array)) for r in batch]
        if self.options.frames_as == "images":
            images = [list(r.frames.array) for r in batch]
            return self._processor(text=prompts, images=images, padding=True, return_tensors="pt")
        metadata = [
            VideoMetadata(
                total_num_frames=m.source_num_frames,
                fps=m.source_fps,
                width=m.source_size[0],
                height=m.source_size[1],
                frames_indices=m.indices,
            )
            for m in (r.frames.manifest for r in batch)
        ]
        # Frames are already sampled by mmaip's frame layer: processors must not sample again.
        return self._processor(
            text=prompts,
            videos=[r.frames.array for r in batch],
            video_metadata=metadata,
            do_sample_frames=False,
            padding=True,
            return_tensors="pt",
        )

    def _generate_batch(self, batch: Sequence[GenerationRequest], model: str) -> list[Response]:
        import torch

        p = self.options.params
        inputs = self._inputs(batch).to(self._model.device)
        kwargs: dict[str, Any] = {"max_new_tokens": p.max_new_tokens, "do_sample": p.temperature > 0}
        if p.temperature > 0:
            kwargs.update(temperature=p.temperature, top_p=p.top_p)
            if p.top_k is not None:
                kwargs["top_k"] = p.top_k
        if p.repetition_penalty is not None:
            kwargs["repetition_penalty"] = p.repetition_penalty
        tokenizer = self._processor.tokenizer
        start = time.perf_counter()
        with torch.random.fork_rng(devices=[]), torch.inference_mode():
            torch.manual_seed(int(stable_hash([p.seed, [r.id for r in batch]])[:8], 16))  # batch is 1 when sampling
            output = self._model.generate(**inputs, **kwargs, pad_token_id=tokenizer.pad_token_id)
        latency = (time.perf_counter() - start) / len(batch)
        new_tokens = output[:, inputs["input_ids"].shape[1] :]
        texts = tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        stop = {tokenizer.pad_token_id, tokenizer.eos_token_id}
        responses = []
        for i, request in enumerate(batch):
            produced = [t for t in new_tokens[i].tolist() if t not in stop]
            usage = TokenUsage(
                prompt_tokens=int(inputs["attention_mask"][i].sum()),
                completion_tokens=len(produced),
            )
            responses.append(self._response(request, model, text=texts[i].strip(), usage=usage, latency_s=latency))
        return responses

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
        for start in range(0, len(requests), size):
            batch = requests[start : start + size]
            try:
                responses.extend(self._generate_batch(batch, model))
            except Exception as exc:  # one bad batch must not end the run: record and go on
                error = ErrorInfo(error_class=type(exc).__name__, message=str(exc))
                responses.extend(self._response(r, model, error=error) for r in batch)
        return responses
