"""What the API generators (openai, anthropic) share: sampling parameters, records, the sync wrapper."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar, Protocol

from pydantic import Field, model_validator

from mmaip_core import (
    CallOptions,
    ErrorInfo,
    GenerationRequest,
    PluginOptions,
    Response,
    TokenUsage,
    run_generation_calls,
)

__all__ = ["ApiGenerationParams", "ApiGenerator", "Connections", "response_record"]


def response_record(
    request: GenerationRequest, *, model: str, model_id: str, generator: str, params: dict[str, Any], **fields: Any
) -> Response:
    """The Response to ``request`` (any generator): ids, model, parameters and frame key filled in
    (None for a text-only request)."""
    return Response(
        id=request.id,
        sample_id=request.sample.id,
        model=model,
        model_id=model_id,
        generator=generator,
        params=params,
        sample_index=request.sample_index,
        frames=request.frames.manifest.key if request.frames is not None else None,
        **fields,
    )


class ApiGenerationParams(PluginOptions):
    temperature: float = Field(default=0.0, ge=0, le=2)
    top_p: float = Field(default=1.0, gt=0, le=1)
    max_tokens: int = Field(default=256, ge=1, description="Most tokens of an answer; max_new_tokens sets it too.")
    seed: int | None = Field(default=0, description="Sent as seed + answer index where the API takes one.")
    extra_body: dict[str, Any] = Field(
        default_factory=dict, description="Extra request fields the server understands (e.g. top_k for vLLM)."
    )

    @model_validator(mode="before")
    @classmethod
    def _max_new_tokens(cls, data: Any) -> Any:
        """``max_new_tokens`` (the local generators' name, which a benchmark's ``generation`` uses for every
        model) sets ``max_tokens``, over a ``max_tokens`` beside it."""
        if isinstance(data, dict) and "max_new_tokens" in data:
            data = {**data, "max_tokens": data["max_new_tokens"]}
            del data["max_new_tokens"]
        return data


class Connections(Protocol):
    """What an API generator opens for its calls (SDK clients) and must close when they end."""

    async def aclose(self) -> None:
        """Close the connections of the running event loop."""
        ...


class ApiGenerator(ABC):
    """One API call per answer; subclasses implement :meth:`agenerate`."""

    plugin: ClassVar[str]
    batch_size = 1  # one answer per call; the calls run concurrently

    def __init__(
        self,
        model_id: str,
        params: ApiGenerationParams,
        call_options: CallOptions,
        fingerprint: str,
        connections: Connections,
    ) -> None:
        self._connections = connections
        self.model_id = model_id
        self.params = params
        self.call_options = call_options
        self.fingerprint = fingerprint

    @property
    def max_output_tokens(self) -> int:
        return self.params.max_tokens

    def _response(self, request: GenerationRequest, model: str, **fields: Any) -> Response:
        params = self.params.model_dump(mode="json")
        return response_record(
            request, model=model, model_id=self.model_id, generator=self.plugin, params=params, **fields
        )

    async def aclose(self) -> None:
        """Close connections when a batch of calls ends (see :func:`mmaip_core.run_calls`)."""
        await self._connections.aclose()

    @abstractmethod
    async def agenerate(self, request: GenerationRequest, *, model: str) -> Response:
        """Answer one request; raise TransientError for failures worth retrying."""

    @abstractmethod
    def estimate(self, request: GenerationRequest) -> TokenUsage:
        """An upper bound of the tokens the call will use (cost estimates and spending limits)."""

    def failed(self, request: GenerationRequest, *, model: str, error: ErrorInfo) -> Response:
        return self._response(request, model, error=error)

    def generate(self, requests: Sequence[GenerationRequest], *, model: str) -> list[Response]:
        """The same calls, made concurrently, for callers outside the build stage."""
        results: dict[str, Response] = {}
        run_generation_calls(self, requests, model, lambda response: results.__setitem__(response.id, response))
        return [results[r.id] for r in requests]
