"""Concurrent API calls with a request rate limit, bounded retries and per-call results.

The official SDKs retry too, but they cannot know which results a run already stored, and every retry of
theirs is a new, billed generation; mmaip's API plugins therefore create their clients with
``max_retries=0`` and leave retrying to :func:`run_calls`, which

- runs up to ``concurrency`` calls at once and starts at most ``rpm`` per minute;
- retries a :class:`TransientError` (rate limit, server error, timeout, lost connection) after its
  ``retry_after`` when the server sent one, else after an exponential, jittered backoff;
- gives up after ``max_attempts`` and reports every call as done or failed, with its error class and the
  number of attempts (no infinite retry); a :class:`~mmaip_core.errors.UserError` (a missing API key, say)
  stops the whole run at once instead, since every call would fail the same way; the message of a failed
  call, which often quotes the server's error body, has its credentials redacted
  (:func:`~mmaip_core.store.redaction.redact_text`) before anything stores it;
- hands each outcome to ``on_outcome`` the moment the call ends, so the caller can commit it at once.
"""

from __future__ import annotations

import asyncio
import inspect
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from pydantic import Field

from mmaip_core.errors import MmaipError, UserError
from mmaip_core.plugins.kinds import AsyncResponseGenerator, AsyncScorer, GenerationRequest, PluginOptions, ScoreRequest
from mmaip_core.records import ErrorInfo, Judgement, Response
from mmaip_core.store.redaction import redact_text

__all__ = [
    "ApiLane",
    "CallOptions",
    "CallOutcome",
    "TransientError",
    "call_again",
    "run_calls",
    "run_generation_calls",
    "run_scoring_calls",
]

ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")

MAX_RETRY_AFTER_S = 600.0


class CallOptions(PluginOptions):
    """How an API plugin's calls are run (options of every API generator, scorer and evaluator)."""

    concurrency: int = Field(default=8, ge=1, description="Calls in flight at once.")
    rpm: float | None = Field(default=None, gt=0, description="At most this many calls started per minute.")
    max_attempts: int = Field(default=5, ge=1, description="Attempts per call before it is recorded as failed.")
    timeout_s: float = Field(default=120.0, gt=0, description="Seconds one attempt may take.")
    backoff_s: float = Field(default=1.0, ge=0, description="First retry delay; doubles each attempt.")
    max_backoff_s: float = Field(default=60.0, ge=0, description="Longest retry delay (Retry-After excepted).")


class TransientError(MmaipError):
    """A failure that may pass if the call is made again; ``retry_after`` is the server's advice (s)."""

    def __init__(self, message: str, *, error_class: str, retry_after: float | None = None) -> None:
        self.error_class = error_class
        self.retry_after = retry_after
        super().__init__(message)


@dataclass(frozen=True)
class CallOutcome(Generic[ItemT, ResultT]):
    """How one call ended: a result, or the error that ended it after ``attempts`` attempts."""

    item: ItemT
    result: ResultT | None
    error: ErrorInfo | None
    attempts: int


class RateLimiter:
    """Schedules call starts 60/rpm seconds apart: the k-th start comes no earlier than the first plus k intervals,
    so no more than rpm calls start in any minute (a start the event loop wakes late shortens only the gap after it)."""

    def __init__(self, rpm: float | None) -> None:
        self.interval = 60.0 / rpm if rpm else 0.0
        self.next_start = 0.0
        self.lock = asyncio.Lock()

    async def wait(self) -> None:
        if not self.interval:
            return
        async with self.lock:
            now = time.monotonic()
            start = max(now, self.next_start)
            self.next_start = start + self.interval
        await asyncio.sleep(start - now)


async def call_with_retries(
    item: ItemT,
    call: Callable[[ItemT], Awaitable[ResultT]],
    options: CallOptions,
    limiter: RateLimiter,
) -> CallOutcome[ItemT, ResultT]:
    last = TransientError("no attempt made", error_class="NoAttempt")
    for attempt in range(1, options.max_attempts + 1):
        await limiter.wait()
        try:
            result = await asyncio.wait_for(call(item), options.timeout_s)
            return CallOutcome(item, result, None, attempt)
        except TransientError as exc:
            last = exc
        except UserError:
            raise  # a mistake of the run (a missing API key, ...): every call would fail the same way
        except TimeoutError:
            last = TransientError(f"no answer within {options.timeout_s:g} s", error_class="Timeout")
        except Exception as exc:  # anything else is permanent: retrying would not help
            return CallOutcome(item, None, _error(type(exc).__name__, exc, attempt), attempt)
        if attempt < options.max_attempts:
            if last.retry_after is not None:
                delay = min(last.retry_after, MAX_RETRY_AFTER_S)
            else:
                delay = min(options.backoff_s * 2 ** (attempt - 1), options.max_backoff_s) * random.uniform(0.5, 1.0)
            await asyncio.sleep(delay)
    return CallOutcome(item, None, _error(last.error_class, last, options.max_attempts), options.max_attempts)


async def call_again(call: Callable[[], Awaitable[ResultT]], options: CallOptions) -> CallOutcome[None, ResultT]:
    """A follow-up call made within a call already running in its lane (a judge's repair of an unreadable
    reply): retried on rate limits and server errors like a first call, so the calls already paid are kept."""
    return await call_with_retries(None, lambda _: call(), options, RateLimiter(options.rpm))


def _error(error_class: str, exc: Exception, attempts: int) -> ErrorInfo:
    """How a call failed, as stored: the message without credentials."""
    return ErrorInfo(error_class=error_class, message=redact_text(str(exc)), attempts=attempts)


class ApiLane(Generic[ItemT, ResultT]):
    """The calls of one API model: ``call(item)`` with retries, within the endpoint's limits."""

    def __init__(self, call: Callable[[ItemT], Awaitable[ResultT]], options: CallOptions) -> None:
        self.call, self.options = call, options
        self.slots = asyncio.Semaphore(options.concurrency)
        self.limiter = RateLimiter(options.rpm)

    async def run(
        self, item: ItemT, admit: Callable[[ItemT], Awaitable[bool]] | None = None
    ) -> CallOutcome[ItemT, ResultT] | None:
        """The outcome of ``item``'s call; None when ``admit`` (asked once a slot is free) refuses it."""
        async with self.slots:
            if admit is not None and not await admit(item):
                return None
            return await call_with_retries(item, self.call, self.options, self.limiter)


def run_calls(
    items: Sequence[ItemT],
    call: Callable[[ItemT], Awaitable[ResultT]],
    options: CallOptions,
    on_outcome: Callable[[CallOutcome[ItemT, ResultT]], None],
    admit: Callable[[ItemT], bool | Awaitable[bool]] | None = None,
    cleanup: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Make ``call(item)`` for every item concurrently; ``on_outcome`` receives each as it ends.

    ``admit(item)`` is asked just before an item's first attempt; an item it refuses is not called and
    gets no outcome (a spending limit, for example). ``cleanup()`` is awaited when all calls ended, inside
    the event loop (to close connections opened in it).
    """

    async def admitted(item: ItemT) -> bool:
        assert admit is not None
        verdict = admit(item)
        return await verdict if inspect.isawaitable(verdict) else verdict

    async def main() -> None:
        lane: ApiLane[ItemT, ResultT] = ApiLane(call, options)

        async def one(item: ItemT) -> None:
            outcome = await lane.run(item, admitted if admit is not None else None)
            if outcome is not None:
                on_outcome(outcome)

        try:
            await asyncio.gather(*(one(item) for item in items))
        finally:
            if cleanup is not None:
                await cleanup()

    if items:
        asyncio.run(main())


def run_generation_calls(
    generator: AsyncResponseGenerator,
    requests: Sequence[GenerationRequest],
    model: str,
    store: Callable[[Response], None],
    admit: Callable[[GenerationRequest], bool | Awaitable[bool]] | None = None,
) -> None:
    """Every request through ``generator.agenerate``; ``store`` gets each Response (or failure) at once."""

    async def call(request: GenerationRequest) -> Response:
        return await generator.agenerate(request, model=model)

    def done(outcome: CallOutcome[GenerationRequest, Response]) -> None:
        if outcome.result is not None:
            store(outcome.result)
        else:
            assert outcome.error is not None
            store(generator.failed(outcome.item, model=model, error=outcome.error))

    run_calls(requests, call, generator.call_options, done, admit, generator.aclose)


def run_scoring_calls(
    scorer: AsyncScorer,
    requests: Sequence[tuple[str, ScoreRequest]],
    store: Callable[[str, Judgement], None],
    admit: Callable[[tuple[str, ScoreRequest]], bool | Awaitable[bool]] | None = None,
) -> None:
    """Every keyed request through ``scorer.ascore``; ``store(key, judgement)`` is called at once, with the
    attempt's latency."""

    async def call(item: tuple[str, ScoreRequest]) -> Judgement:
        start = time.perf_counter()
        judgement = await scorer.ascore(item[1])
        return judgement.model_copy(update={"latency_s": round(time.perf_counter() - start, 6)})

    def done(outcome: CallOutcome[tuple[str, ScoreRequest], Judgement]) -> None:
        key, request = outcome.item
        if outcome.result is not None:
            store(key, outcome.result)
        else:
            assert outcome.error is not None
            store(key, scorer.failed(request, outcome.error))

    run_calls(requests, call, scorer.call_options, done, admit, scorer.aclose)
