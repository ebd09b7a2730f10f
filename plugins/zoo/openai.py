"""The ``openai`` generator: any OpenAI-compatible chat endpoint (OpenAI, vLLM, SGLang, ...), frames sent
as JPEG image parts."""

from __future__ import annotations

import time
from typing import Any

from pydantic import Field

from mmaip_core import GenerationRequest, Response, TokenUsage, stable_hash
from mmaip_plugins.apis.common import ClientCache
from mmaip_plugins.apis.images import text_tokens
from mmaip_plugins.apis.openai_api import (
    OpenAIFrames,
    endpoint,
    image_parts,
    image_tokens,
    openai_client,
    translate_error,
    usage,
)
from mmaip_plugins.zoo.api import ApiGenerationParams, ApiGenerator

__all__ = ["OpenAIGenerator", "OpenAIGeneratorOptions"]


class OpenAIGeneratorOptions(OpenAIFrames):
    model: str = Field(
        description="Model name as the endpoint knows it, e.g. gpt-4o-mini or Qwen/Qwen2-VL-7B-Instruct."
    )
    params: ApiGenerationParams = Field(default_factory=ApiGenerationParams)
    system_prompt: str | None = None


class OpenAIGenerator(ApiGenerator):
    """Answers each question with one chat completion: the frames as images, then the question."""

    plugin = "openai"

    def __init__(self, options: OpenAIGeneratorOptions) -> None:
        fingerprint = stable_hash(
            {
                "endpoint": endpoint(options),
                "model": options.model,
                "params": options.params.model_dump(mode="json"),
                "system_prompt": options.system_prompt,
                "frames": [options.max_frames, options.detail, options.jpeg_quality],
            }
        )[:16]
        super().__init__(
            options.model, options.params, options, fingerprint, ClientCache(lambda: openai_client(options))
        )
        self.options = options

    def _messages(self, request: GenerationRequest) -> list[dict[str, Any]]:
        content = [*image_parts(request.frames, self.options), {"type": "text", "text": request.sample.question}]
        system = [{"role": "system", "content": self.options.system_prompt}] if self.options.system_prompt else []
        return [*system, {"role": "user", "content": content}]

    def estimate(self, request: GenerationRequest) -> TokenUsage:
        prompt = text_tokens((self.options.system_prompt or "") + request.sample.question) + 10
        return TokenUsage(
            prompt_tokens=prompt + image_tokens(request.frames, self.options), completion_tokens=self.params.max_tokens
        )

    async def agenerate(self, request: GenerationRequest, *, model: str) -> Response:
        p = self.params
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
        spent = usage(completion)
        if spent is not None:
            spent.image_tokens = image_tokens(request.frames, self.options)
        return self._response(request, model, text=text, usage=spent, latency_s=time.perf_counter() - start)
