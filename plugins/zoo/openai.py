"""The ``openai`` generator: any OpenAI-compatible chat endpoint (OpenAI, vLLM, SGLang, ...), frames sent
as JPEG image parts."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from pydantic import Field

from mmaip_core import ErrorInfo, GenerationRequest, PluginOptions, Response, run_generation_calls, stable_hash
from mmaip_plugins.apis.openai_api import ClientCache, OpenAIFrames, endpoint, image_parts, translate_error, usage

__all__ = ["ApiGenerationParams", "OpenAIGenerator", "OpenAIGeneratorOptions"]


class ApiGenerationParams(PluginOptions):
    temperature: float = Field(default=0.0, ge=0, le=2)
    top_p: float = Field(default=1.0, gt=0, le=1)
    max_tokens: int = Field(default=256, ge=1)
    seed: int | None = Field(default=0, description="Sent as seed + answer index (None: not sent).")
    extra_body: dict[str, Any] = Field(
        default_factory=dict, description="Extra request fields the server understands (e.g. top_k for vLLM)."
    )


class OpenAIGeneratorOptions(OpenAIFrames):
    model: str = Field(description="Model name as the endpoint knows it, e.g. gpt-4o-mini or Qwen/Qwen2-VL-7B-Instruct.")
    params: ApiGenerationParams = Field(default_factory=ApiGenerationParams)
    system_prompt: str | None = None


class OpenAIGenerator:
    """Answers each question with one chat completion: the frames as images, then the question."""

    plugin = "openai"

    def __init__(self, options: OpenAIGeneratorOptions) -> None:
        self.options = options
        self.call_options = options
        self.model_id = options.model
        self.fingerprint = stable_hash(
            {
                "endpoint": endpoint(options),
                "model": options.model,
                "params": options.params.model_dump(mode="json"),
                "system_prompt": options.system_prompt,
                "frames": [options.max_frames, options.detail, options.jpeg_quality],
            }
        )[:16]
        self._clients = ClientCache(options)

    def _messages(self, request: GenerationRequest) -> list[dict[str, Any]]:
        content = [*image_parts(request.frames, self.options), {"type": "text", "text": request.sample.question}]
        system = [{"role": "system", "content": self.options.system_prompt}] if self.options.system_prompt else []
        return [*system, {"role": "user", "content": content}]

    def _response(self, request: GenerationRequest, model: str, **fields: Any) -> Response:
        return Response(
            id=request.id,
            sample_id=request.sample.id,
            model=model,
            model_id=self.model_id,
            generator=self.plugin,
            params=self.options.params.model_dump(mode="json"),
            sample_index=request.sample_index,
            frames=request.frames.manifest.key,
            **fields,
        )

    async def agenerate(self, request: GenerationRequest, *, model: str) -> Response:
        p = self.options.params
        kwargs: dict[str, Any] = {"temperature": p.temperature, "top_p": p.top_p, "max_tokens": p.max_tokens}
        if p.seed is not None:
            kwargs["seed"] = p.seed + request.sample_index
        if p.extra_body:
            kwargs["extra_body"] = p.extra_body
        start = time.perf_counter()
        try:
            completion = await self._clients.get().chat.completions.create(
                model=self.options.model, messages=self._messages(request), **kwargs
            )
        except Exception as exc:
            raise translate_error(exc) from exc
        text = completion.choices[0].message.content or ""
        return self._response(
            request, model, text=text, usage=usage(completion), latency_s=time.perf_counter() - start
        )

    def failed(self, request: GenerationRequest, *, model: str, error: ErrorInfo) -> Response:
        return self._response(request, model, error=error)

    def generate(self, requests: Sequence[GenerationRequest], *, model: str) -> list[Response]:
        """The same calls, made concurrently, for callers outside the build stage."""
        results: dict[str, Response] = {}
        run_generation_calls(self, requests, model, lambda response: results.__setitem__(response.id, response))
        return [results[r.id] for r in requests]
