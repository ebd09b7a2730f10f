"""The ``anthropic-judge`` scorer: the same judge as ``openai-judge``, asked of a Claude model."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from mmaip_core import ScoreRequest, TokenUsage
from mmaip_plugins.apis.anthropic_api import (
    AnthropicFrames,
    anthropic_client,
    endpoint,
    image_blocks,
    image_tokens,
    reply_text,
    translate_error,
    usage,
)
from mmaip_plugins.apis.common import ClientCache
from mmaip_plugins.scorers.judge import ApiJudge, JudgeOptions, StructuredOutputRefused, judge_fingerprint, reply_schema

__all__ = ["AnthropicJudge", "AnthropicJudgeOptions"]


class AnthropicJudgeOptions(JudgeOptions, AnthropicFrames):
    model: str = Field(default="claude-sonnet-4-20250514", description="Judge model.")


class AnthropicJudge(ApiJudge):
    """Structured output through ``output_config.format`` (JSON Schema) by default, with the plain-text
    fallback of ``openai-judge`` when the endpoint refuses it. Temperature goes in the request body."""

    name = "anthropic-judge"

    def __init__(self, options: AnthropicJudgeOptions) -> None:
        fingerprint = judge_fingerprint(self.name, endpoint(options), options.model, options, [options.max_frames, options.jpeg_quality])
        super().__init__(options, options, options.model, fingerprint, ClientCache(lambda: anthropic_client(options)))
        self.connection = options

    def _image_tokens(self, request: ScoreRequest) -> int:
        return image_tokens(request.frames, self.connection) if request.frames is not None else 0

    def _conversation(self, request: ScoreRequest, system: str, user: str) -> tuple[str, list[dict[str, Any]]]:
        content: list[dict[str, Any]] = [{"type": "text", "text": user}]
        if self.uses_frames and request.frames is not None:
            content = [*image_blocks(request.frames, self.connection), *content]
        return system, [{"role": "user", "content": content}]

    async def _complete(
        self, system: str, messages: list[dict[str, Any]], structured: bool
    ) -> tuple[str, TokenUsage | None]:
        import anthropic

        kwargs: dict[str, Any] = {"extra_body": {"temperature": self.options.temperature}}
        if structured:
            kwargs["output_config"] = {"format": {"type": "json_schema", "schema": reply_schema(self.options)}}
        try:
            message = await self._clients.get().messages.create(
                model=self.model_id, max_tokens=self.options.max_tokens, system=system, messages=messages, **kwargs
            )
        except anthropic.BadRequestError as exc:
            if structured and "output_config" in str(exc):
                raise StructuredOutputRefused from exc
            raise
        except Exception as exc:
            raise translate_error(exc) from exc
        return reply_text(message), usage(message)
