"""The spending limit on its own: admission, reservations, settling, refusals and waiting for calls in flight.

(``test_openai_plugins.py::test_max_cost_stops_before_the_limit_and_a_rerun_goes_on`` covers ``--max-cost``
through a whole build.)
"""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from mmaip_core.calls.budget import Budget


def test_no_limit_always_admits_and_never_refuses() -> None:
    budget = Budget(None, spent=1e9)
    assert all(budget.admit(1e6) for _ in range(10))
    assert asyncio.run(budget.wait_admit(1e12))
    assert budget.refused == 0 and not budget.exhausted
    assert budget.reserved == pytest.approx(1e7 + 1e12)


def test_admits_while_the_reservations_fit_under_the_limit() -> None:
    budget = Budget(1.0)
    assert budget.admit(0.25) and budget.admit(0.25) and budget.admit(0.5)  # exactly at the limit: admitted
    assert budget.reserved == 1.0 and budget.spent == 0.0
    assert not budget.admit(0.125)
    assert budget.reserved == 1.0  # a refused call reserves nothing
    assert budget.refused == 1 and budget.exhausted


def test_a_call_larger_than_the_limit_is_refused_outright() -> None:
    budget = Budget(0.5)
    assert not budget.admit(0.75)
    assert budget.reserved == 0.0 and budget.refused == 1
    assert budget.admit(0.5)  # a refusal blocks nothing that fits


def test_earlier_spending_counts() -> None:
    budget = Budget(1.0, spent=0.875)
    assert not budget.admit(0.25)
    assert budget.admit(0.125)
    assert not budget.admit(0.001)
    assert budget.refused == 2


def test_settle_replaces_the_estimate_with_the_actual_cost() -> None:
    budget = Budget(1.0)
    assert budget.admit(0.75)
    assert not budget.admit(0.5)  # 0.75 reserved + 0.5 > 1
    budget.settle(0.75, 0.25)  # it cost less than its upper bound
    assert budget.reserved == 0.0 and budget.spent == 0.25
    assert budget.admit(0.75)  # 0.25 spent + 0.75 fits now
    budget.settle(0.75, 0.75)
    assert budget.spent == 1.0 and budget.reserved == 0.0
    assert not budget.admit(0.001)
    assert budget.refused == 2


def test_settle_counts_what_a_call_cost_even_over_its_estimate() -> None:
    budget = Budget(1.0)
    assert budget.admit(0.25)
    budget.settle(0.25, 0.5)
    assert budget.spent == 0.5 and budget.reserved == 0.0


def test_exhausted_once_anything_was_refused() -> None:
    budget = Budget(1.0)
    assert not budget.exhausted
    budget.admit(0.5)
    assert not budget.exhausted
    budget.admit(2.0)
    assert budget.exhausted
    budget.settle(0.5, 0.0)
    assert budget.exhausted  # stays so


def test_admit_from_many_threads_never_overbooks() -> None:
    budget = Budget(10.0)
    admitted: list[bool] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def work() -> None:
        start.wait()
        for _ in range(20):
            ok = budget.admit(0.125)
            with lock:
                admitted.append(ok)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert admitted.count(True) == 80 and admitted.count(False) == 80  # 10 / 0.125, exactly
    assert budget.reserved == 10.0 and budget.refused == 80


# --- wait_admit -----------------------------------------------------------------------------------------


def _without_waiting(budget: Budget, estimate: float) -> bool:
    """wait_admit's answer when it comes without a single await (no polling round); fails otherwise."""

    async def step_once() -> bool:
        coroutine = budget.wait_admit(estimate)
        try:
            coroutine.send(None)  # inside a running loop, as it would be called
        except StopIteration as done:
            return bool(done.value)
        coroutine.close()
        raise AssertionError("wait_admit waited")

    return asyncio.run(step_once())


def test_wait_admit_admits_at_once_when_it_fits() -> None:
    budget = Budget(1.0)
    assert _without_waiting(budget, 0.5)
    assert budget.reserved == 0.5 and budget.refused == 0


def test_wait_admit_refuses_at_once_when_nothing_is_in_flight() -> None:
    budget = Budget(1.0, spent=0.5)
    assert not _without_waiting(budget, 0.75)
    assert budget.refused == 1 and budget.reserved == 0.0


def test_wait_admit_refuses_at_once_what_would_not_fit_even_if_calls_in_flight_cost_nothing() -> None:
    budget = Budget(1.0, spent=0.5)
    assert budget.admit(0.25)  # in flight
    assert not _without_waiting(budget, 0.625)
    assert budget.refused == 1 and budget.reserved == 0.25


def test_wait_admit_waits_while_a_call_in_flight_could_make_room() -> None:
    budget = Budget(1.0)
    assert budget.admit(0.75)
    with pytest.raises(AssertionError, match="waited"):
        _without_waiting(budget, 0.5)
    assert budget.refused == 0 and budget.reserved == 0.75


def test_wait_admit_waits_for_calls_in_flight_that_end_cheaper() -> None:
    budget = Budget(1.0)
    assert budget.admit(0.75)  # in flight, its upper bound reserved

    async def main() -> tuple[bool, float]:
        async def finish_in_flight() -> None:
            await asyncio.sleep(0.1)
            budget.settle(0.75, 0.25)

        start = time.monotonic()
        settler = asyncio.create_task(finish_in_flight())
        ok = await asyncio.wait_for(budget.wait_admit(0.5), 2.0)
        await settler
        return ok, time.monotonic() - start

    ok, waited = asyncio.run(main())
    assert ok and waited >= 0.09  # it waited for the settle instead of being refused
    assert budget.refused == 0
    assert budget.spent == 0.25 and budget.reserved == 0.5


def test_wait_admit_is_refused_when_calls_in_flight_end_too_dear() -> None:
    budget = Budget(1.0)
    assert budget.admit(0.75)

    async def main() -> tuple[bool, float]:
        async def finish_in_flight() -> None:
            await asyncio.sleep(0.1)
            budget.settle(0.75, 0.625)

        start = time.monotonic()
        settler = asyncio.create_task(finish_in_flight())
        ok = await asyncio.wait_for(budget.wait_admit(0.5), 2.0)
        await settler
        return ok, time.monotonic() - start

    ok, waited = asyncio.run(main())
    assert not ok and waited >= 0.09
    assert budget.refused == 1 and budget.spent == 0.625 and budget.reserved == 0.0


def test_wait_admit_with_several_waiters_admits_only_what_fits() -> None:
    budget = Budget(1.0)
    assert budget.admit(1.0)  # one call in flight holds the whole limit

    async def main() -> list[bool]:
        async def finish_in_flight() -> None:
            await asyncio.sleep(0.05)
            budget.settle(1.0, 0.25)  # 0.75 left: room for three of the four waiters

        async def waiter() -> bool:
            if not await budget.wait_admit(0.25):
                return False
            await asyncio.sleep(0.05)  # the call; the fourth waiter waits for it, as it might end cheaper
            budget.settle(0.25, 0.25)  # it did not
            return True

        settler = asyncio.create_task(finish_in_flight())
        results = await asyncio.wait_for(asyncio.gather(*(waiter() for _ in range(4))), 2.0)
        await settler
        return list(results)

    results = asyncio.run(main())
    assert results.count(True) == 3 and results.count(False) == 1
    assert budget.spent == 1.0 and budget.reserved == 0.0 and budget.refused == 1


def test_wait_admit_sees_a_settle_from_another_thread() -> None:
    budget = Budget(1.0)
    assert budget.admit(0.75)
    timer = threading.Timer(0.05, budget.settle, args=(0.75, 0.0))
    timer.start()
    try:
        assert asyncio.run(asyncio.wait_for(budget.wait_admit(0.5), 2.0))
    finally:
        timer.join()
    assert budget.reserved == 0.5


def test_wait_admit_does_not_wait_forever_when_nothing_is_in_flight() -> None:
    budget = Budget(0.2)
    assert budget.admit(0.05) and budget.admit(0.15)
    budget.settle(0.05, 0.0)
    budget.settle(0.15, 0.0)  # nothing in flight any more; reserved is 2.8e-17, not 0
    # 0.2 fits the limit exactly (admit(0.2) on a fresh Budget(0.2) is True), so it is admitted or refused,
    # but must not wait for calls in flight that do not exist
    asyncio.run(asyncio.wait_for(budget.wait_admit(0.2), 0.5))


def test_settling_a_call_this_run_did_not_admit_only_adds_its_cost() -> None:
    from mmaip_core.stages.cached import Admission

    budget = Budget(1.0)
    admission: Admission[str] = Admission(budget, lambda item: 0.4, lambda item: item)
    assert admission.now(["a"]) == ["a"]
    admission.settle("earlier", 0.3)  # a result of a provider batch an earlier run submitted
    assert (budget.in_flight, budget.spent) == (1, 0.3)
    admission.settle("a", 0.1)
    assert budget.in_flight == 0 and budget.spent == pytest.approx(0.4) and budget.reserved == pytest.approx(0.0)
