"""Judges behind an API (``openai-judge``, ``anthropic-judge``): one request per answer, repaired while its reply
cannot be used, a plain-text fallback when the endpoint refuses structured output, the cost estimate of the dry
run, and the results of a provider's batch API."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

from mmaip_core import (
    CallOptions,
    ErrorInfo,
    Judgement,
    ParseStatus,
    ScoreRequest,
    TokenUsage,
    call_again,
    run_scoring_calls,
)
from mmaip_plugins.apis.common import ClientCache
from mmaip_plugins.apis.images import text_tokens
from mmaip_plugins.judging.base import JudgeBase, add_usage
from mmaip_plugins.judging.options import JudgeOptions
from mmaip_plugins.judging.parsing import repair_turn
from mmaip_plugins.judging.prompts import build_prompt

__all__ = ["ApiJudge", "StructuredOutputRefused", "batch_results"]

log = logging.getLogger(__name__)


class StructuredOutputRefused(Exception):
    """The endpoint refused structured output: the judgement is asked again in plain text."""


def batch_results(
    batch_id: str,
    status: str,
    requests: Mapping[str, ScoreRequest],
    results: dict[str, Judgement],
    failed: Callable[[ScoreRequest, ErrorInfo], Judgement],
) -> list[tuple[str, Judgement]]:
    """Every requested key's judgement; a key the provider returned nothing for becomes an error."""
    for key, request in requests.items():
        if key not in results:
            error = ErrorInfo(error_class="BatchError", message=f"no result in batch {batch_id} (status {status})")
            results[key] = failed(request, error)
    return list(results.items())


class ApiJudge(JudgeBase, ABC):
    """An LLM judge behind an API: one request per answer, re-asked at most ``max_repairs`` times while its
    reply cannot be used. Subclasses build the provider's request and make the call."""

    def __init__(
        self, options: JudgeOptions, call_options: CallOptions, model_id: str, fingerprint: str, clients: ClientCache
    ) -> None:
        super().__init__(options, model_id, fingerprint)
        self._clients = clients
        self.call_options = call_options
        self.batch = options.batch
        self.batch_poll_s = options.batch_poll_s

    @abstractmethod
    async def _complete(
        self, system: str, messages: list[dict[str, Any]], structured: bool
    ) -> tuple[str, TokenUsage | None]:
        """One call: the reply text and its usage. Raise TransientError for failures worth retrying and
        StructuredOutputRefused when the endpoint does not take structured output."""

    async def aclose(self) -> None:
        """Close connections when a batch of calls ends (see :func:`mmaip_core.run_calls`)."""
        await self._clients.aclose()

    @abstractmethod
    def _image_tokens(self, request: ScoreRequest) -> int:
        """Tokens the frames shown to the judge will be billed as (0 without vision)."""

    def estimate(self, request: ScoreRequest) -> TokenUsage:
        """Upper bound over the first call and every repair (each resends the conversation so far)."""
        text = request.response.text or ""
        system, user = build_prompt(self.options, request.sample, text, self.structured, request.alt_prediction)
        prompt = text_tokens(system + user) + (self._image_tokens(request) if self.uses_frames else 0)
        calls, turn = self.options.max_repairs + 1, self.options.max_tokens + 60
        return TokenUsage(
            prompt_tokens=calls * prompt + turn * calls * (calls - 1) // 2,
            completion_tokens=calls * self.options.max_tokens,
        )

    def _refused(self) -> None:
        if self.structured:
            log.warning("%s refuses structured output; the judge now asks for text replies", self.model_id)
        self.structured = False

    async def ascore(self, request: ScoreRequest) -> Judgement:
        """The judgement of one answer; in plain text from then on if the endpoint refuses structured output."""
        if request.response.text is None:
            return self.failed(request, ErrorInfo(error_class="InputError", message="the response has no text"))
        try:
            return await self._judge(request, self.structured)
        except StructuredOutputRefused:
            self._refused()
            return await self._judge(request, structured=False)

    async def _judge(self, request: ScoreRequest, structured: bool) -> Judgement:
        """Ask, then re-ask while the reply cannot be used: with a repair turn, or under a protocol that asks
        again from scratch (Video-ChatGPT's "retry until read"), the first request again. A re-ask that meets a
        rate limit or a server error is retried like a first call; if it still fails, the calls already paid
        are kept in the error's judgement."""
        system, first = self.messages(request, structured)
        messages, spent = first, TokenUsage()
        for attempt in range(1, self.options.max_repairs + 2):
            if attempt == 1:  # nothing paid yet: the call layer retries the whole judgement
                reply, used = await self._complete(system, messages, structured)
            else:
                outcome = await call_again(partial(self._complete, system, messages, structured), self.call_options)
                if outcome.result is None:
                    assert outcome.error is not None
                    error = outcome.error.model_copy(update={"message": f"repair call failed: {outcome.error.message}"})
                    return self._judgement(
                        request, status=ParseStatus.ERROR, error=error, raw_reply=reply, attempts=attempt, usage=spent
                    )
                reply, used = outcome.result
            spent = add_usage(spent, used)
            judgement, parsed = self.read_reply(request, reply, spent, attempt, structured)
            if parsed.status is ParseStatus.OK:
                break
            messages = first if self.protocol.reask == "fresh" else [*messages, *repair_turn(reply, parsed, structured)]
        return judgement

    def score(self, requests: Sequence[ScoreRequest]) -> list[Judgement]:
        """The same calls, made concurrently, for callers outside the build stage."""
        results: dict[int, Judgement] = {}
        keyed = [(str(i), r) for i, r in enumerate(requests)]
        run_scoring_calls(self, keyed, lambda key, judgement: results.__setitem__(int(key), judgement))
        return [results[i] for i in range(len(requests))]
