"""The ``openai-judge`` scorer: the paper's GPT-4o scoring function, on any OpenAI-compatible endpoint."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from pydantic import Field

from mmaip_core import Judgement, ScoreRequest, TokenUsage
from mmaip_plugins.apis.common import ClientCache, batch_error, split_batches
from mmaip_plugins.apis.openai_api import (
    OpenAIFrames,
    fingerprinted_endpoint,
    image_parts,
    image_tokens,
    openai_client,
    translate_error,
    usage,
)
from mmaip_plugins.judging import (
    ApiJudge,
    JudgeOptions,
    StructuredOutputRefused,
    batch_results,
    judge_fingerprint,
    reply_schema,
)

__all__ = ["OpenAIJudge", "OpenAIJudgeOptions"]


class OpenAIJudgeOptions(JudgeOptions, OpenAIFrames):
    model: str = Field(default="gpt-4o", description="Judge model.")


class OpenAIJudge(ApiJudge):
    """Structured output through ``response_format`` (JSON Schema) by default; an endpoint that refuses it
    makes the judge switch, with a warning, to plain-text 'Score: N' replies for the rest of the run."""

    name = "openai-judge"

    def __init__(self, options: OpenAIJudgeOptions) -> None:
        fingerprint = judge_fingerprint(
            self.name,
            fingerprinted_endpoint(options),
            options.model,
            options,
            [options.max_frames, options.detail, options.jpeg_quality],
        )
        super().__init__(options, options, options.model, fingerprint, ClientCache(lambda: openai_client(options)))
        self.connection = options
        self.max_frames = options.max_frames

    def _image_tokens(self, request: ScoreRequest) -> int:
        return image_tokens(request.frames, self.connection) if request.frames is not None else 0

    def _conversation(self, request: ScoreRequest, system: str, user: str) -> tuple[str, list[dict[str, Any]]]:
        content: list[dict[str, Any]] = [{"type": "text", "text": user}]
        if self.uses_frames and request.frames is not None:
            content = [*image_parts(request.frames, self.connection), *content]
        return system, [{"role": "system", "content": system}, {"role": "user", "content": content}]

    def _body(self, messages: list[dict[str, Any]], structured: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model_id,
            "messages": messages,
            "temperature": self.options.temperature,
            "max_tokens": self.options.max_tokens,
        }
        if structured:
            schema = {"name": "judgement", "schema": reply_schema(self.options), "strict": True}
            body["response_format"] = {"type": "json_schema", "json_schema": schema}
        return body

    async def _complete(
        self, system: str, messages: list[dict[str, Any]], structured: bool
    ) -> tuple[str, TokenUsage | None]:
        import openai

        try:
            completion = await self._clients.get().chat.completions.create(**self._body(messages, structured))
        except openai.BadRequestError as exc:
            if structured and "response_format" in str(exc):
                raise StructuredOutputRefused from exc
            raise
        except Exception as exc:
            raise translate_error(exc) from exc
        return completion.choices[0].message.content or "", usage(completion)

    # --- the OpenAI Batch API --------------------------------------------------------------------------

    def submit_batch(self, items: Sequence[tuple[str, ScoreRequest]]) -> Iterator[tuple[str, list[str]]]:
        client = openai_client(self.connection, sync=True)
        lines = []
        for key, request in items:
            _, messages = self.messages(request, self.structured)
            line = {
                "custom_id": key,
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": self._body(messages, self.structured),
            }
            lines.append((key, json.dumps(line).encode() + b"\n"))
        for chunk in split_batches(lines, max_count=50_000, max_bytes=190 * 2**20):
            upload = client.files.create(
                file=("mmaip-judgements.jsonl", b"".join(d for _, d in chunk)), purpose="batch"
            )
            batch = client.batches.create(
                input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h"
            )
            yield batch.id, [key for key, _ in chunk]

    def batch_done(self, batch_id: str) -> bool:
        status = openai_client(self.connection, sync=True).batches.retrieve(batch_id).status
        return status in ("completed", "failed", "expired", "cancelled")

    def collect_batch(self, batch_id: str, requests: Mapping[str, ScoreRequest]) -> list[tuple[str, Judgement]]:
        client = openai_client(self.connection, sync=True)
        batch = client.batches.retrieve(batch_id)
        rows = [
            json.loads(line)
            for file_id in (batch.output_file_id, batch.error_file_id)
            if file_id
            for line in client.files.content(file_id).text.splitlines()
            if line.strip()
        ]
        results: dict[str, Judgement] = {}
        for row in rows:
            request = requests.get(row.get("custom_id", ""))
            if request is None:
                continue
            response = row.get("response") or {}
            body = response.get("body") or {}
            if response.get("status_code") == 200 and body.get("choices"):
                used = body.get("usage") or {}
                spent = TokenUsage(
                    prompt_tokens=used.get("prompt_tokens", 0), completion_tokens=used.get("completion_tokens", 0)
                )
                reply = body["choices"][0]["message"].get("content") or ""
                results[row["custom_id"]] = self.read_reply(request, reply, spent, 1, self.structured)[0]
            else:
                detail = json.dumps(row.get("error") or body.get("error") or response)
                results[row["custom_id"]] = self.failed(request, batch_error(detail))
        return batch_results(batch_id, batch.status, requests, results, self.failed)
