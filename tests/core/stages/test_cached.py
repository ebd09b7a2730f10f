"""The one ledger-backed call loop (``stages.cached.CachedCalls``) on its own: what is reused, what is left to
ask, what a store commits, and what a rerun finds."""

from __future__ import annotations

from pathlib import Path

from helpers import response

from mmaip_core import PluginManager, Response
from mmaip_core.config import RunConfig
from mmaip_core.stages.cached import CachedCalls
from mmaip_core.stages.run import StageRun
from mmaip_core.store.ledger import DONE, FAILED


def _answer(key: str, text: str | None = "red") -> Response:
    return response(text, key)  # no text: a failed call


def test_stored_results_are_reused_failed_ones_and_new_keys_are_left(
    bare_manager: PluginManager, tmp_path: Path
) -> None:
    seen: list[tuple[str, int, int]] = []
    with StageRun.open(RunConfig(), tmp_path, bare_manager, progress=lambda s, d, t, _: seen.append((s, d, t))) as run:
        run.ledger.put("done", "generation", DONE, _answer("done").model_dump(mode="json"), 0.5)
        run.ledger.put("failed", "generation", FAILED, _answer("failed", None).model_dump(mode="json"))
        calls = CachedCalls(run, "generation", "gen", ["done", "failed", "new", "new"], Response)
        assert calls.keys == ["done", "failed", "new"] and calls.reused == 1 and list(calls.results) == ["done"]
        # one item per key still to ask, first-seen order; the last item given for a key is the one asked
        todo = calls.todo([("new", 1), ("done", 2), ("failed", 3), ("new", 4)])
        assert todo == [("new", 4), ("failed", 3)]
        assert seen == [("gen", 1, 3)]


def test_a_store_commits_at_once_and_a_rerun_finds_it(bare_manager: PluginManager, tmp_path: Path) -> None:
    with StageRun.open(RunConfig(), tmp_path, bare_manager) as run:
        calls = CachedCalls(run, "generation", "gen", ["a", "b"], Response)
        calls.store("a", _answer("a"), failed=False, cost=0.25)
        calls.store("b", _answer("b", None), failed=True)
        assert set(calls.results) == {"a", "b"} and calls.cost() == 0.25
    with StageRun.open(RunConfig(), tmp_path, bare_manager) as again:
        rerun = CachedCalls(again, "generation", "gen", ["a", "b"], Response)
        assert list(rerun.results) == ["a"] and rerun.results["a"].text == "red"
        assert rerun.todo([("a", 0), ("b", 0)]) == [("b", 0)]  # a failed call is asked again
        assert again.budget.spent == 0.25  # the budget starts from what the ledger already spent
