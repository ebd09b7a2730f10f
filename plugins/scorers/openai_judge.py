"""The ``openai-judge`` scorer: the paper's GPT-4o scoring function, on any OpenAI-compatible endpoint."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from mmaip_core import ScoreRequest, TokenUsage
from mmaip_plugins.apis.common import ClientCache
from mmaip_plugins.apis.openai_api import (
    OpenAIFrames,
    endpoint,
    image_parts,
    image_tokens,
    openai_client,
    translate_error,
    usage,
)
from mmaip_plugins.scorers.judge import ApiJudge, JudgeOptions, StructuredOutputRefused, judge_fingerprint, reply_schema

__all__ = ["OpenAIJudge", "OpenAIJudgeOptions"]


class OpenAIJudgeOptions(JudgeOptions, OpenAIFrames):
    model: str = Field(default="gpt-4o", description="Judge model.")


class OpenAIJudge(ApiJudge):
    """Structured output through ``response_format`` (JSON Schema) by default; an endpoint that refuses it
    makes the judge switch, with a warning, to plain-text 'Score: N' replies for the rest of the run."""

    name = "openai-judge"

    def __init__(self, options: OpenAIJudgeOptions) -> None:
        fingerprint = judge_fingerprint(self.name, endpoint(options), options.model, options, [options.max_frames, options.detail, options.jpeg_quality])
        super().__init__(options, options, options.model, fingerprint, ClientCache(lambda: openai_client(options)))
        self.connection = options

    def _image_tokens(self, request: ScoreRequest) -> int:
        return image_tokens(request.frames, self.connection) if request.frames is not None else 0

    def _conversation(self, request: ScoreRequest, system: str, user: str) -> tuple[str, list[dict[str, Any]]]:
        content: list[dict[str, Any]] = [{"type": "text", "text": user}]
        if self.uses_frames and request.frames is not None:
            content = [*image_parts(request.frames, self.connection), *content]
        return system, [{"role": "system", "content": system}, {"role": "user", "content": content}]

    async def _complete(
        self, system: str, messages: list[dict[str, Any]], structured: bool
    ) -> tuple[str, TokenUsage | None]:
        import openai

        kwargs: dict[str, Any] = {"temperature": self.options.temperature, "max_tokens": self.options.max_tokens}
        if structured:
            schema = {"name": "judgement", "schema": reply_schema(self.options), "strict": True}
            kwargs["response_format"] = {"type": "json_schema", "json_schema": schema}
        try:
            completion = await self._clients.get().chat.completions.create(
                model=self.model_id, messages=messages, **kwargs
            )
        except openai.BadRequestError as exc:
            if structured and "response_format" in str(exc):
                raise StructuredOutputRefused from exc
            raise
        except Exception as exc:
            raise translate_error(exc) from exc
        return completion.choices[0].message.content or "", usage(completion)
