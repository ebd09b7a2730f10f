"""The ``openai`` generator: any OpenAI-compatible chat endpoint (OpenAI, vLLM, SGLang, ...), or several
servers of one model (``base_urls``), frames sent as JPEG image parts (none for a text-only sample)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from pydantic import Field, model_validator

from mmaip_core import GenerationRequest, Response, TokenUsage, stable_hash
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
from mmaip_plugins.zoo.endpoints import EndpointPool

__all__ = ["OpenAIGenerator", "OpenAIGeneratorOptions"]


class OpenAIGeneratorOptions(OpenAIFrames):
    model: str = Field(
        description="Model name as the endpoint knows it, e.g. gpt-4o-mini or Qwen/Qwen2-VL-7B-Instruct."
    )
    base_urls: list[str] | None = Field(
        default=None,
        description="Several endpoints serving the same model (instead of base_url): each call goes to the least "
        "busy, each endpoint gets at most `concurrency` calls at once.",
    )
    params: ApiGenerationParams = Field(default_factory=ApiGenerationParams)
    system_prompt: str | None = None

    @model_validator(mode="after")
    def _one_way_to_endpoints(self) -> OpenAIGeneratorOptions:
        if self.base_urls is None:
            return self
        if self.base_url is not None:
            raise ValueError("give base_url (one endpoint) or base_urls (several), not both")
        if not self.base_urls:
            raise ValueError("base_urls: list at least one endpoint")
        if len(set(self.base_urls)) != len(self.base_urls):
            raise ValueError("base_urls: an endpoint is listed twice")
        return self


def _fingerprint(options: OpenAIGeneratorOptions) -> str:
    """What determines an answer. The endpoints are left out, so the same model behind a new address (or a server
    added to a pool) keeps every stored answer; ``fingerprint_endpoint`` puts them in."""
    key: dict[str, Any] = {}
    if options.fingerprint_endpoint:
        urls: list[str | None] = [*options.base_urls] if options.base_urls else [options.base_url]
        key["endpoint"] = sorted(endpoint(options.model_copy(update={"base_url": url})) for url in urls)
    key.update(
        model=options.model,
        params=options.params.model_dump(mode="json"),
        system_prompt=options.system_prompt,
        frames=[options.max_frames, options.detail, options.jpeg_quality],
    )
    return stable_hash(key)[:16]


def _client_factory(options: OpenAIGeneratorOptions, url: str | None) -> Callable[[], Any]:
    """Makes the client of one endpoint (``None``: $OPENAI_BASE_URL, else OpenAI's)."""
    return lambda: openai_client(options.model_copy(update={"base_url": url}))


class OpenAIGenerator(ApiGenerator):
    """Answers each question with one chat completion: the frames as images, then the question (the question
    alone for a text-only request). With ``base_urls`` the entry runs ``concurrency`` calls per endpoint."""

    plugin = "openai"

    def __init__(self, options: OpenAIGeneratorOptions) -> None:
        urls: list[str | None] = [*options.base_urls] if options.base_urls else [options.base_url]
        self._pool = EndpointPool([_client_factory(options, url) for url in urls], options)
        call_options = options.model_copy(update={"concurrency": options.concurrency * len(urls)})
        super().__init__(options.model, options.params, call_options, _fingerprint(options), self._pool)
        self.options = options

    def _messages(self, request: GenerationRequest) -> list[dict[str, Any]]:
        question = request.sample.question
        content: str | list[dict[str, Any]] = question
        if request.frames is not None:
            content = [*image_parts(request.frames, self.options), {"type": "text", "text": question}]
        system = [{"role": "system", "content": self.options.system_prompt}] if self.options.system_prompt else []
        return [*system, {"role": "user", "content": content}]

    def _image_tokens(self, request: GenerationRequest) -> int:
        return image_tokens(request.frames, self.options) if request.frames is not None else 0

    def estimate(self, request: GenerationRequest) -> TokenUsage:
        prompt = text_tokens((self.options.system_prompt or "") + request.sample.question) + 10
        return TokenUsage(prompt_tokens=prompt + self._image_tokens(request), completion_tokens=self.params.max_tokens)

    async def agenerate(self, request: GenerationRequest, *, model: str) -> Response:
        p = self.params
        kwargs: dict[str, Any] = {"temperature": p.temperature, "top_p": p.top_p, "max_tokens": p.max_tokens}
        if p.seed is not None:
            kwargs["seed"] = p.seed + request.sample_index
        if p.extra_body:
            kwargs["extra_body"] = p.extra_body
        start = time.perf_counter()
        async with self._pool.lease(request.id) as server:
            try:
                completion = await server.clients.get().chat.completions.create(
                    model=self.options.model, messages=self._messages(request), **kwargs
                )
            except Exception as exc:
                raise translate_error(exc) from exc
        text = completion.choices[0].message.content or ""
        spent = usage(completion)
        if spent is not None:
            spent.image_tokens = self._image_tokens(request)
        return self._response(request, model, text=text, usage=spent, latency_s=time.perf_counter() - start)
