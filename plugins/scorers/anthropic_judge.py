"""The ``anthropic-judge`` scorer: the same judge as ``openai-judge``, asked of a Claude model."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from pydantic import Field

from mmaip_core import Judgement, ScoreRequest, TokenUsage
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
from mmaip_plugins.apis.common import ClientCache, batch_error, split_batches
from mmaip_plugins.judging import (
    ApiJudge,
    JudgeOptions,
    StructuredOutputRefused,
    batch_results,
    judge_fingerprint,
    reply_schema,
)

__all__ = ["AnthropicJudge", "AnthropicJudgeOptions"]


class AnthropicJudgeOptions(JudgeOptions, AnthropicFrames):
    model: str = Field(default="claude-sonnet-4-20250514", description="Judge model.")


class AnthropicJudge(ApiJudge):
    """Structured output through ``output_config.format`` (JSON Schema) by default, with the plain-text
    fallback of ``openai-judge`` when the endpoint refuses it. Temperature goes in the request body."""

    name = "anthropic-judge"

    def __init__(self, options: AnthropicJudgeOptions) -> None:
        fingerprint = judge_fingerprint(
            self.name,
            fingerprinted_endpoint(options),
            options.model,
            options,
            [options.max_frames, options.jpeg_quality],
        )
        super().__init__(options, options, options.model, fingerprint, ClientCache(lambda: anthropic_client(options)))
        self.connection = options
        self.max_frames = options.max_frames

    def _image_tokens(self, request: ScoreRequest) -> int:
        return image_tokens(request.frames, self.connection) if request.frames is not None else 0

    def _conversation(self, request: ScoreRequest, system: str, user: str) -> tuple[str, list[dict[str, Any]]]:
        content: list[dict[str, Any]] = [{"type": "text", "text": user}]
        if self.uses_frames and request.frames is not None:
            content = [*image_blocks(request.frames, self.connection), *content]
        return system, [{"role": "user", "content": content}]

    def _body(self, system: str, messages: list[dict[str, Any]], structured: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model_id,
            "max_tokens": self.options.max_tokens,
            "system": system,
            "messages": messages,
            "temperature": self.options.temperature,
        }
        if structured:
            body["output_config"] = {"format": {"type": "json_schema", "schema": reply_schema(self.options)}}
        return body

    async def _complete(
        self, system: str, messages: list[dict[str, Any]], structured: bool
    ) -> tuple[str, TokenUsage | None]:
        import anthropic

        body = self._body(system, messages, structured)
        temperature = body.pop("temperature")  # messages.create has no such argument in this SDK: send it raw
        try:
            message = await self._clients.get().messages.create(**body, extra_body={"temperature": temperature})
        except anthropic.BadRequestError as exc:
            if structured and "output_config" in str(exc):
                raise StructuredOutputRefused from exc
            raise
        except Exception as exc:
            raise translate_error(exc) from exc
        return reply_text(message), usage(message)

    # --- the Anthropic Message Batches API -------------------------------------------------------------

    def submit_batch(self, items: Sequence[tuple[str, ScoreRequest]]) -> Iterator[tuple[str, list[str]]]:
        client = anthropic_client(self.connection, sync=True)
        entries = []
        for key, request in items:
            system, messages = self.messages(request, self.structured)
            entry: dict[str, Any] = {"custom_id": key, "params": self._body(system, messages, self.structured)}
            entries.append((entry, json.dumps(entry).encode()))
        for chunk in split_batches(entries, max_count=100_000, max_bytes=250 * 2**20):
            batch = client.messages.batches.create(requests=[entry for entry, _ in chunk])
            yield batch.id, [entry["custom_id"] for entry, _ in chunk]

    def batch_done(self, batch_id: str) -> bool:
        batch = anthropic_client(self.connection, sync=True).messages.batches.retrieve(batch_id)
        return bool(batch.processing_status == "ended")

    def collect_batch(self, batch_id: str, requests: Mapping[str, ScoreRequest]) -> list[tuple[str, Judgement]]:
        client = anthropic_client(self.connection, sync=True)
        results: dict[str, Judgement] = {}
        for row in client.messages.batches.results(batch_id):
            request = requests.get(row.custom_id)
            if request is None:
                continue
            if row.result.type == "succeeded":
                message = row.result.message
                results[row.custom_id] = self.read_reply(
                    request, reply_text(message), usage(message) or TokenUsage(), 1, self.structured
                )[0]
            else:
                detail = f"{row.result.type}: {getattr(row.result, 'error', '')}"
                results[row.custom_id] = self.failed(request, batch_error(detail))
        return batch_results(batch_id, "ended", requests, results, self.failed)
