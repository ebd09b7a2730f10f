"""``run_calls`` on its own, with plain async functions as the calls: concurrency, rate limit, retries,
Retry-After, timeouts, admission, outcome order and redaction.

(``test_openai_plugins.py`` checks concurrency, rpm and redaction end to end through the mock server.)
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from typing import Any

import pytest

from mmaip_core.calls import runner as calls
from mmaip_core.calls.runner import MAX_RETRY_AFTER_S, CallOptions, CallOutcome, TransientError, run_calls
from mmaip_core.errors import UserError

Outcome = CallOutcome[Any, Any]


def _options(**changes: Any) -> CallOptions:
    base: dict[str, Any] = {
        "concurrency": 4,
        "max_attempts": 3,
        "timeout_s": 5.0,
        "backoff_s": 0.0,
        "max_backoff_s": 0.0,
    }
    return CallOptions(**{**base, **changes})


def _collect(items: list[Any], call: Callable[[Any], Any], options: CallOptions, **kwargs: Any) -> list[Outcome]:
    outcomes: list[Outcome] = []
    run_calls(items, call, options, outcomes.append, **kwargs)
    return outcomes


def test_every_item_gets_one_outcome_with_its_result() -> None:
    async def double(x: int) -> int:
        await asyncio.sleep(0)
        return 2 * x

    outcomes = _collect(list(range(20)), double, _options())
    assert sorted((o.item, o.result, o.error, o.attempts) for o in outcomes) == [(i, 2 * i, None, 1) for i in range(20)]


def test_no_items_no_call() -> None:
    made: list[int] = []

    async def call(x: int) -> int:
        made.append(x)
        return x

    assert _collect([], call, _options()) == [] and made == []


@pytest.mark.parametrize("concurrency", [1, 3])
def test_no_more_calls_in_flight_than_the_concurrency(concurrency: int) -> None:
    in_flight, peak = 0, 0

    async def call(x: int) -> int:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        return x

    outcomes = _collect(list(range(12)), call, _options(concurrency=concurrency))
    assert len(outcomes) == 12
    assert peak == concurrency  # never more, and the limit is used


def test_transient_errors_are_retried_until_success() -> None:
    attempts: dict[int, int] = {}

    async def call(x: int) -> str:
        attempts[x] = attempts.get(x, 0) + 1
        if attempts[x] < 3:
            raise TransientError("busy", error_class="RateLimitError")
        return "ok"

    (outcome,) = _collect([7], call, _options(max_attempts=3))
    assert (outcome.result, outcome.error, outcome.attempts) == ("ok", None, 3)
    assert attempts == {7: 3}


@pytest.mark.parametrize("max_attempts", [1, 4])
def test_transient_errors_give_up_after_max_attempts(max_attempts: int) -> None:
    made = 0

    async def call(x: int) -> str:
        nonlocal made
        made += 1
        raise TransientError(f"server error {made}", error_class="InternalServerError")

    (outcome,) = _collect(["a"], call, _options(max_attempts=max_attempts))
    assert made == max_attempts
    assert outcome.result is None and outcome.attempts == max_attempts
    assert outcome.error is not None
    assert (outcome.error.error_class, outcome.error.attempts) == ("InternalServerError", max_attempts)
    assert outcome.error.message == f"server error {max_attempts}"  # the last attempt's error


def test_a_permanent_error_fails_at_once() -> None:
    made = 0

    async def call(x: int) -> str:
        nonlocal made
        made += 1
        raise ValueError("bad request: unknown model")

    (outcome,) = _collect(["a"], call, _options(max_attempts=5))
    assert made == 1 and outcome.attempts == 1 and outcome.result is None
    assert outcome.error is not None
    assert (outcome.error.error_class, outcome.error.message, outcome.error.attempts) == (
        "ValueError",
        "bad request: unknown model",
        1,
    )


def test_a_permanent_error_after_transient_ones_counts_its_attempts() -> None:
    made = 0

    async def call(x: int) -> str:
        nonlocal made
        made += 1
        if made < 3:
            raise TransientError("busy", error_class="RateLimitError")
        raise KeyError("gone")

    (outcome,) = _collect(["a"], call, _options(max_attempts=5))
    assert made == 3 and outcome.attempts == 3
    assert outcome.error is not None and (outcome.error.error_class, outcome.error.attempts) == ("KeyError", 3)


def test_retry_after_is_waited_for() -> None:
    starts: list[float] = []

    async def call(x: int) -> str:
        starts.append(time.monotonic())
        if len(starts) == 1:
            raise TransientError("slow down", error_class="RateLimitError", retry_after=0.3)
        return "ok"

    # no backoff of its own: only the server's advice can make it wait
    (outcome,) = _collect(["a"], call, _options(backoff_s=0.0, max_backoff_s=0.0))
    assert outcome.result == "ok" and outcome.attempts == 2
    assert 0.28 <= starts[1] - starts[0] < 1.5


def test_retry_after_wins_over_a_longer_backoff_and_over_max_backoff() -> None:
    starts: list[float] = []

    async def call(x: int) -> str:
        starts.append(time.monotonic())
        if len(starts) == 1:
            raise TransientError("slow down", error_class="RateLimitError", retry_after=0.05)
        return "ok"

    (outcome,) = _collect(["a"], call, _options(backoff_s=30.0, max_backoff_s=30.0))
    assert outcome.result == "ok"
    assert 0.04 <= starts[1] - starts[0] < 1.0


def test_retry_after_is_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    assert MAX_RETRY_AFTER_S == 600.0
    monkeypatch.setattr(calls, "MAX_RETRY_AFTER_S", 0.1)  # the cap, scaled down to test time
    starts: list[float] = []

    async def call(x: int) -> str:
        starts.append(time.monotonic())
        if len(starts) == 1:
            raise TransientError("come back in a day", error_class="RateLimitError", retry_after=86400.0)
        return "ok"

    (outcome,) = _collect(["a"], call, _options())
    assert outcome.result == "ok"
    assert 0.09 <= starts[1] - starts[0] < 1.0


def test_backoff_doubles_and_is_capped_by_max_backoff() -> None:
    starts: list[float] = []

    async def call(x: int) -> str:
        starts.append(time.monotonic())
        raise TransientError("busy", error_class="RateLimitError")

    _collect(["a"], call, _options(max_attempts=3, backoff_s=0.1, max_backoff_s=1.0))
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    # delays are jittered into [0.5, 1] of 0.1 s, then of 0.2 s
    assert 0.045 <= gaps[0] <= 0.3 and 0.095 <= gaps[1] <= 0.5

    starts.clear()
    _collect(["a"], call, _options(max_attempts=3, backoff_s=100.0, max_backoff_s=0.06))
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert all(0.025 <= gap <= 0.5 for gap in gaps), gaps  # 100 s, 200 s capped to 0.06 s (jittered)


def test_a_slow_attempt_is_a_timeout_and_is_retried() -> None:
    made = 0

    async def call(x: int) -> str:
        nonlocal made
        made += 1
        await asyncio.sleep(10)
        return "never"

    start = time.monotonic()
    (outcome,) = _collect(["a"], call, _options(max_attempts=2, timeout_s=0.05))
    assert time.monotonic() - start < 2.0
    assert made == 2 and outcome.attempts == 2 and outcome.result is None
    assert outcome.error is not None
    assert outcome.error.error_class == "Timeout" and "0.05 s" in outcome.error.message


def test_a_timeout_then_an_answer_succeeds() -> None:
    made = 0

    async def call(x: int) -> str:
        nonlocal made
        made += 1
        await asyncio.sleep(10 if made == 1 else 0)
        return "late but fine"

    (outcome,) = _collect(["a"], call, _options(max_attempts=2, timeout_s=0.05))
    assert (outcome.result, outcome.attempts) == ("late but fine", 2)


def test_a_user_error_stops_the_whole_run() -> None:
    cleaned: list[bool] = []
    finished: list[str] = []

    async def call(x: str) -> str:
        if x == "bad":
            await asyncio.sleep(0.02)
            raise UserError("OPENAI_API_KEY is not set")
        await asyncio.sleep(5)  # still in flight when the run stops
        finished.append(x)
        return x

    async def cleanup() -> None:
        cleaned.append(True)

    outcomes: list[Outcome] = []
    start = time.monotonic()
    with pytest.raises(UserError, match="OPENAI_API_KEY"):
        run_calls(["slow1", "bad", "slow2"], call, _options(max_attempts=5), outcomes.append, cleanup=cleanup)
    assert time.monotonic() - start < 3.0  # the slow calls are not waited for
    assert outcomes == [] and finished == []
    assert cleaned == [True]  # cleanup still runs


def test_refused_items_are_not_called_and_get_no_outcome() -> None:
    made: list[int] = []

    async def call(x: int) -> int:
        made.append(x)
        return x

    outcomes = _collect(list(range(10)), call, _options(), admit=lambda x: x % 3 != 0)
    assert sorted(made) == [1, 2, 4, 5, 7, 8]
    assert sorted(o.item for o in outcomes) == [1, 2, 4, 5, 7, 8]


def test_an_async_admit_is_awaited() -> None:
    asked: list[int] = []

    async def admit(x: int) -> bool:
        asked.append(x)
        await asyncio.sleep(0)
        return x < 2

    async def call(x: int) -> int:
        return x

    outcomes = _collect([0, 1, 2, 3], call, _options(), admit=admit)
    assert sorted(asked) == [0, 1, 2, 3]
    assert sorted(o.item for o in outcomes) == [0, 1]


def test_admit_is_asked_once_per_item_not_per_attempt() -> None:
    asked: list[str] = []
    made = 0

    async def call(x: str) -> str:
        nonlocal made
        made += 1
        if made < 3:
            raise TransientError("busy", error_class="RateLimitError")
        return "ok"

    def admit(x: str) -> bool:
        asked.append(x)
        return True

    (outcome,) = _collect(["a"], call, _options(max_attempts=3), admit=admit)
    assert outcome.attempts == 3 and asked == ["a"]


def test_the_rate_limit_spaces_call_starts() -> None:
    starts: list[float] = []

    async def call(x: int) -> int:
        starts.append(time.monotonic())
        return x

    rpm = 1200  # one start every 0.05 s
    outcomes = _collect(list(range(5)), call, _options(concurrency=5, rpm=rpm))
    assert len(outcomes) == 5
    starts.sort()
    # the k-th start is scheduled k intervals after the first; a start the event loop wakes late shortens the
    # gap after it, never the schedule (a 15 ms allowance for a late first start)
    assert all(start - starts[0] >= k * 0.05 - 0.015 for k, start in enumerate(starts)), starts
    assert starts[-1] - starts[0] < 0.2 + 0.15


def test_retries_count_against_the_rate_limit() -> None:
    starts: list[float] = []

    async def call(x: int) -> int:
        starts.append(time.monotonic())
        if len(starts) == 1:
            raise TransientError("busy", error_class="RateLimitError", retry_after=0.0)
        return x

    _collect([1], call, _options(rpm=600))  # 0.1 s apart, even with a Retry-After of 0
    assert starts[1] - starts[0] >= 0.085  # one interval after the first start was scheduled (10 ms for a late wake-up)


def test_outcomes_arrive_as_calls_end_not_in_input_order() -> None:
    delays = {"slow": 0.3, "fast": 0.02, "middle": 0.12}
    ended: dict[str, float] = {}
    seen: list[tuple[str, float, set[str]]] = []

    async def call(x: str) -> str:
        await asyncio.sleep(delays[x])
        ended[x] = time.monotonic()
        return x

    def on_outcome(outcome: Outcome) -> None:
        seen.append((outcome.item, time.monotonic(), set(ended)))

    run_calls(list(delays), call, _options(concurrency=3), on_outcome)
    assert [item for item, _, _ in seen] == ["fast", "middle", "slow"]
    # the fast outcome is delivered while the slow call is still running, not after the run
    fast = seen[0]
    assert "slow" not in fast[2] and fast[1] - ended["fast"] < 0.1


def test_cleanup_is_awaited_inside_the_loop_after_every_call() -> None:
    events: list[str] = []

    async def call(x: str) -> str:
        await asyncio.sleep(0.01)
        events.append(f"call {x}")
        return x

    async def cleanup() -> None:
        asyncio.get_running_loop()  # raises outside a running loop
        events.append("cleanup")

    run_calls(["a", "b"], call, _options(), lambda o: None, cleanup=cleanup)
    assert events[-1] == "cleanup" and sorted(events[:-1]) == ["call a", "call b"]


URL = "https://alice:hunter2@api.example.com/v1/chat?api-key=sk-verysecret&model=gpt-4o"


@pytest.mark.parametrize("transient", [False, True])
def test_stored_error_messages_have_no_credentials(transient: bool) -> None:
    async def call(x: str) -> str:
        if transient:
            raise TransientError(f"503 from {URL}", error_class="InternalServerError")
        raise RuntimeError(f"404 from {URL}")

    (outcome,) = _collect(["a"], call, _options(max_attempts=2))
    assert outcome.error is not None
    message = outcome.error.message
    assert "hunter2" not in message and "alice" not in message and "sk-verysecret" not in message
    assert "api.example.com/v1/chat" in message and "model=gpt-4o" in message  # the rest is kept
