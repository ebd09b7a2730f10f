from __future__ import annotations

from helpers import sample, scored

from mmaip_core import PluginManager


def _pairs(manager: PluginManager, strategy: str, items: list, **options: object):  # type: ignore[no-untyped-def]
    return manager.create("pair-strategy", strategy, options).make_pairs(sample(), items, prompt="What colour is it?")


def test_best_worst_picks_highest_and_lowest(manager: PluginManager) -> None:
    outcome = _pairs(
        manager, "best-worst", [scored(3, "r1", model="a"), scored(5, "r2", model="b"), scored(1, "r3", model="c")]
    )
    (pair,) = outcome.pairs
    assert (pair.chosen_model, pair.rejected_model) == ("b", "c")
    assert (pair.chosen_score, pair.rejected_score, pair.margin) == (5, 1, 4)
    assert pair.strategy == "best-worst" and pair.label_source == "ai:fp" and pair.answer == "red"
    assert outcome.skipped is None


def test_best_worst_skips_ties_and_single_answers(manager: PluginManager) -> None:
    assert _pairs(manager, "best-worst", [scored(3, "r1"), scored(3, "r2")]).skipped == "all scores tie"
    assert _pairs(manager, "best-worst", [scored(3, "r1")]).skipped == "fewer than two scored answers"


def test_best_worst_breaks_equal_scores_by_response_id(manager: PluginManager) -> None:
    outcome = _pairs(manager, "best-worst", [scored(5, "rb"), scored(5, "ra"), scored(1, "rz"), scored(1, "ry")])
    (pair,) = outcome.pairs
    assert (pair.chosen_response_id, pair.rejected_response_id) == ("ra", "ry")


def test_length_guard_drops_pairs_won_by_length(manager: PluginManager) -> None:
    items = [scored(5, "r1", text="word " * 40), scored(1, "r2", text="short")]
    assert _pairs(manager, "best-worst", items).pairs
    guarded = _pairs(manager, "best-worst", items, max_length_ratio=3)
    assert guarded.pairs == [] and "length guard" in (guarded.skipped or "")


def test_margin_makes_every_pair_over_the_margin_widest_first(manager: PluginManager) -> None:
    items = [scored(5, "r1"), scored(4, "r2"), scored(2, "r3"), scored(1, "r4")]
    pairs = _pairs(manager, "margin", items, min_margin=2).pairs
    assert [(p.chosen_response_id, p.rejected_response_id) for p in pairs] == [
        ("r1", "r4"),
        ("r1", "r3"),
        ("r2", "r4"),
        ("r2", "r3"),
    ]
    capped = _pairs(manager, "margin", items, min_margin=2, max_pairs=2).pairs
    assert [p.margin for p in capped] == [4, 3]
    none = _pairs(manager, "margin", items, min_margin=10)
    assert none.pairs == [] and none.skipped == "no score gap of at least 10.0"


def test_best_vs_rest(manager: PluginManager) -> None:
    items = [scored(3, "r1"), scored(5, "r2"), scored(1, "r3"), scored(5, "r4")]
    pairs = _pairs(manager, "best-vs-rest", items).pairs
    assert [(p.chosen_response_id, p.rejected_response_id) for p in pairs] == [("r2", "r3"), ("r2", "r1")]
    assert [p.margin for p in _pairs(manager, "best-vs-rest", items, min_margin=3).pairs] == [4]
    assert len(_pairs(manager, "best-vs-rest", items, max_pairs=1).pairs) == 1
    tie = _pairs(manager, "best-vs-rest", [scored(2, "a"), scored(2, "b")])
    assert tie.pairs == [] and tie.skipped == "no answer scored below the best"
