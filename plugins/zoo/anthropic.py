"""The ``anthropic`` generator: Claude models, frames sent as image blocks (none for a text-only sample)."""

from __future__ import annotations

import time
from typing import Any

from pydantic import Field

from mmaip_core import GenerationRequest, Response, TokenUsage, stable_hash
from mmaip_plugins.apis.anthropic_api import (
    AnthropicFrames,
    anthropic_client,
    fingerprinted_endpoint,
    image_blocks,
    image_tokens,
    reply_text,
    translate_error,
    usage,
)
from mmaip_plugins.apis.common import ClientCache
from mmaip_plugins.apis.images import text_tokens
from mmaip_plugins.zoo.api import ApiGenerationParams, ApiGenerator

__all__ = ["AnthropicGenerator", "AnthropicGeneratorOptions"]


class AnthropicGeneratorOptions(AnthropicFrames):
    model: str = Field(description="Claude model, e.g. claude-sonnet-4-20250514.")
    params: ApiGenerationParams = Field(default_factory=ApiGenerationParams)
    system_prompt: str | None = None


class AnthropicGenerator(ApiGenerator):
    """Answers each question with one Messages API call: the frames as images, then the question (the question
    alone for a text-only request).

    The SDK's ``messages.create`` takes no ``temperature``/``top_p`` arguments; they are sent in the request
    body (``extra_body``), which the API reads; ``top_p`` only when below 1. ``seed`` does not exist in this
    API and is not sent.
    """

    plugin = "anthropic"

    def __init__(self, options: AnthropicGeneratorOptions) -> None:
        fingerprint = stable_hash(
            {
                "endpoint": fingerprinted_endpoint(options),
                "model": options.model,
                "params": options.params.model_dump(mode="json", exclude={"seed"}),
                "system_prompt": options.system_prompt,
                "frames": [options.max_frames, options.jpeg_quality],
            }
        )[:16]
        self._clients = ClientCache(lambda: anthropic_client(options))
        super().__init__(options.model, options.params, options, fingerprint, self._clients)
        self.options = options

    def _image_tokens(self, request: GenerationRequest) -> int:
        return image_tokens(request.frames, self.options) if request.frames is not None else 0

    def _content(self, request: GenerationRequest) -> str | list[dict[str, Any]]:
        """The user turn: the frames' image blocks, then the question; the question alone without frames."""
        if request.frames is None:
            return request.sample.question
        return [*image_blocks(request.frames, self.options), {"type": "text", "text": request.sample.question}]

    def estimate(self, request: GenerationRequest) -> TokenUsage:
        prompt = text_tokens((self.options.system_prompt or "") + request.sample.question) + 10
        return TokenUsage(prompt_tokens=prompt + self._image_tokens(request), completion_tokens=self.params.max_tokens)

    async def agenerate(self, request: GenerationRequest, *, model: str) -> Response:
        p = self.params
        # Recent Claude models refuse temperature and top_p together: top_p is sent only when it was set.
        sampling = {"temperature": p.temperature, **({"top_p": p.top_p} if p.top_p < 1 else {})}
        kwargs: dict[str, Any] = {"extra_body": {**sampling, **p.extra_body}}
        if self.options.system_prompt:
            kwargs["system"] = self.options.system_prompt
        start = time.perf_counter()
        try:
            message = await self._clients.get().messages.create(
                model=self.options.model,
                max_tokens=p.max_tokens,
                messages=[{"role": "user", "content": self._content(request)}],
                **kwargs,
            )
        except Exception as exc:
            raise translate_error(exc) from exc
        spent = usage(message)
        if spent is not None:
            spent.image_tokens = self._image_tokens(request)
        return self._response(
            request, model, text=reply_text(message), usage=spent, latency_s=time.perf_counter() - start
        )
