"""The ``openai-judge`` scorer: the paper's GPT-4o scoring function, on any OpenAI-compatible endpoint."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from pydantic import Field

from mmaip_core import (
    ErrorInfo,
    Judgement,
    ParseStatus,
    ScoreRequest,
    TokenUsage,
    run_scoring_calls,
    stable_hash,
)
from mmaip_plugins.apis.openai_api import ClientCache, OpenAIFrames, endpoint, image_parts, translate_error, usage
from mmaip_plugins.scorers.judge import (
    JudgeOptions,
    Parsed,
    build_prompt,
    parse_reply,
    prompt_hash,
    repair_message,
    reply_schema,
)

__all__ = ["OpenAIJudge", "OpenAIJudgeOptions"]

log = logging.getLogger(__name__)


class OpenAIJudgeOptions(JudgeOptions, OpenAIFrames):
    model: str = Field(default="gpt-4o", description="Judge model.")


class OpenAIJudge:
    """Rates each answer with one chat completion (plus at most ``max_repairs`` re-asks after an unusable
    reply). Structured output (JSON Schema through ``response_format``) by default; an endpoint that refuses
    it makes the judge switch, with a warning, to the plain-text format for the rest of the run."""

    name = "openai-judge"

    def __init__(self, options: OpenAIJudgeOptions) -> None:
        self.options = options
        self.call_options = options
        self.scale = options.scale
        self.uses_frames = options.vision
        self.model_id = options.model
        self.structured = options.structured
        self.fingerprint = stable_hash(
            {
                "scorer": self.name,
                "endpoint": endpoint(options),
                "model": options.model,
                "prompt": prompt_hash(options),
                "params": [options.structured, options.temperature, options.max_tokens, options.max_repairs],
                "frames": [options.vision, options.max_frames, options.detail, options.jpeg_quality],
            }
        )[:16]
        self._clients = ClientCache(options)

    def _messages(self, request: ScoreRequest, structured: bool) -> list[dict[str, Any]]:
        assert request.response.text is not None
        system, user = build_prompt(self.options, request.sample, request.response.text, structured)
        content: list[dict[str, Any]] = [{"type": "text", "text": user}]
        if self.options.vision and request.frames is not None:
            content = [*image_parts(request.frames, self.options), *content]
        return [{"role": "system", "content": system}, {"role": "user", "content": content}]

    async def _completion(self, messages: list[dict[str, Any]], structured: bool) -> Any:
        import openai

        kwargs: dict[str, Any] = {"temperature": self.options.temperature, "max_tokens": self.options.max_tokens}
        if structured:
            schema = {"name": "judgement", "schema": reply_schema(self.options), "strict": True}
            kwargs["response_format"] = {"type": "json_schema", "json_schema": schema}
        try:
            return await self._clients.get().chat.completions.create(
                model=self.options.model, messages=messages, **kwargs
            )
        except openai.BadRequestError as exc:
            if structured and "response_format" in str(exc):
                if self.structured:
                    log.warning("%s refuses structured output; the judge now asks for text replies", self.model_id)
                self.structured = False
                raise _StructuredOutputRefused from exc
            raise
        except Exception as exc:
            raise translate_error(exc) from exc

    def _judgement(self, request: ScoreRequest, **fields: Any) -> Judgement:
        return Judgement(
            response_id=request.response.id,
            sample_id=request.sample.id,
            scorer=self.name,
            fingerprint=self.fingerprint,
            scale=self.scale,
            model_id=self.model_id,
            frames=request.frames.manifest.key if self.uses_frames and request.frames else None,
            **fields,
        )

    async def ascore(self, request: ScoreRequest) -> Judgement:
        if request.response.text is None:
            return self.failed(request, ErrorInfo(error_class="InputError", message="the response has no text"))
        try:
            return await self._judge(request, self.structured)
        except _StructuredOutputRefused:
            return await self._judge(request, structured=False)

    async def _judge(self, request: ScoreRequest, structured: bool) -> Judgement:
        """Ask, and re-ask at most ``max_repairs`` times while the reply cannot be used."""
        messages = self._messages(request, structured)
        spent = TokenUsage()
        for attempt in range(1, self.options.max_repairs + 2):
            completion = await self._completion(messages, structured)
            if (used := usage(completion)) is not None:
                spent = TokenUsage(
                    prompt_tokens=spent.prompt_tokens + used.prompt_tokens,
                    completion_tokens=spent.completion_tokens + used.completion_tokens,
                )
            reply = completion.choices[0].message.content or ""
            parsed: Parsed = parse_reply(reply, self.options, structured)
            if parsed.status is ParseStatus.OK:
                return self._judgement(
                    request, score=parsed.score, criteria=parsed.criteria, rationale=parsed.rationale,
                    raw_reply=reply, attempts=attempt, usage=spent,
                )
            messages = [
                *messages,
                {"role": "assistant", "content": reply},
                {"role": "user", "content": repair_message(parsed, structured)},
            ]
        return self._judgement(
            request, status=parsed.status, raw_reply=reply, attempts=attempt, usage=spent, rationale=parsed.problem
        )

    def failed(self, request: ScoreRequest, error: ErrorInfo) -> Judgement:
        return self._judgement(request, status=ParseStatus.ERROR, error=error, attempts=error.attempts)

    def score(self, requests: Sequence[ScoreRequest]) -> list[Judgement]:
        """The same calls, made concurrently, for callers outside the build stage."""
        results: dict[int, Judgement] = {}
        keyed = [(str(i), r) for i, r in enumerate(requests)]
        run_scoring_calls(self, keyed, lambda key, judgement: results.__setitem__(int(key), judgement))
        return [results[i] for i in range(len(requests))]


class _StructuredOutputRefused(Exception):
    """The endpoint refused ``response_format``: the judgement is asked again in plain text."""
