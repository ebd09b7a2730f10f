"""The one ledger-backed call loop (``stages.cached.StreamedCalls``) on its own: what is reused, what is asked
once however many requests share a key, what a store commits, and what a rerun finds."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

from helpers import response

from mmaip_core import PluginManager, Response
from mmaip_core.config import RunConfig
from mmaip_core.stages.cached import StreamedCalls
from mmaip_core.stages.run import StageRun
from mmaip_core.store.ledger import DONE, FAILED


def _answer(key: str, text: str | None = "red") -> Response:
    return response(text, key)  # no text: a failed call


def _asker(
    asked: list[str], key: str, failed: bool = False, cost: float = 0.0, delay: float = 0.0
) -> Callable[[], Awaitable[tuple[Response, bool, float]]]:
    async def ask() -> tuple[Response, bool, float]:
        asked.append(key)
        await asyncio.sleep(delay)
        return _answer(key, None if failed else "red"), failed, cost

    return ask


def test_stored_results_are_reused_and_a_key_in_flight_is_asked_once(
    bare_manager: PluginManager, tmp_path: Path
) -> None:
    seen: list[tuple[str, int, int]] = []
    asked: list[str] = []
    with StageRun.open(RunConfig(), tmp_path, bare_manager, progress=lambda s, d, t, _: seen.append((s, d, t))) as run:
        run.ledger.put("done", "generation", DONE, _answer("done").model_dump(mode="json"), 0.5)
        run.ledger.put("failed", "generation", FAILED, _answer("failed", None).model_dump(mode="json"))
        calls = StreamedCalls(run, "generation", "gen", Response, total=4)

        async def main() -> list[Response | None]:
            keys = ["done", "failed", "new", "new"]
            return list(await asyncio.gather(*(calls.get(k, _asker(asked, k, delay=0.05)) for k in keys)))

        results = asyncio.run(main())
    assert [r.id if r else None for r in results] == ["done", "failed", "new", "new"]
    assert sorted(asked) == ["failed", "new"]  # the stored failure is asked again; "new" once for two requests
    assert calls.asked == {"failed", "new"} and calls.cost == 0.5  # the reused result's cost, counted once
    assert seen[-1] == ("gen", 4, 4)


def test_a_store_commits_at_once_and_a_rerun_finds_it(bare_manager: PluginManager, tmp_path: Path) -> None:
    asked: list[str] = []
    with StageRun.open(RunConfig(), tmp_path, bare_manager) as run:
        calls = StreamedCalls(run, "generation", "gen", Response, total=3)

        async def first() -> None:
            await calls.get("a", _asker(asked, "a", cost=0.25))
            await calls.get("b", _asker(asked, "b", failed=True))
            await calls.get("b", _asker(asked, "b"))  # failed in this run: not asked again before the next run

        asyncio.run(first())
        assert asked == ["a", "b"] and calls.cost == 0.25
    with StageRun.open(RunConfig(), tmp_path, bare_manager) as again:
        rerun = StreamedCalls(again, "generation", "gen", Response, total=2)

        async def second() -> list[Response | None]:
            return [await rerun.get(k, _asker(asked, k)) for k in ("a", "b")]

        found = asyncio.run(second())
        assert asked == ["a", "b", "b"]  # a failed call is asked again by the next run; a finished one never
        assert found[0] is not None and found[0].text == "red"
        assert again.budget.spent == 0.25  # the budget starts from what the ledger already spent


def test_a_call_the_budget_refuses_is_not_stored(bare_manager: PluginManager, tmp_path: Path) -> None:
    async def refused() -> None:
        return None

    with StageRun.open(RunConfig(), tmp_path, bare_manager) as run:
        calls = StreamedCalls(run, "generation", "gen", Response, total=1)
        assert asyncio.run(calls.get("x", refused)) is None
        assert run.ledger.get_many(["x"]) == {} and calls.asked == set()
