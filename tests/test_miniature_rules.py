"""The miniature's rules on synthetic numbers: which base, which recipe, which alpha."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmaip_core.analysis.metrics import Estimate, PairedDifference
from mmaip_core.testbeds.shapesqa import make_shapesqa
from mmaip_miniature import MiniatureSettings, ZooMember
from mmaip_miniature.base import Candidate, choose_base, validation_benchmarks
from mmaip_miniature.chain import choose_alpha
from mmaip_miniature.recipe import RECIPE_GRID, RecipeFit, choose_recipe, recipe_grid


def _candidate(name: str, accuracy: float, gap: float, low: float) -> Candidate:
    estimate = Estimate(value=gap, low=low, high=gap + (gap - low))
    return Candidate(name=name, accuracy=accuracy, gap=PairedDifference(n=90, ratio=estimate, score=estimate))


def test_the_base_is_the_weakest_candidate_that_looks_and_is_well_below_the_strongest() -> None:
    strongest = [_candidate("strong", 0.70, 0.20, 0.10), _candidate("mid", 0.55, 0.10, 0.02)]
    candidates = [
        _candidate("prior", 0.35, 0.00, -0.05),  # weakest, but does not look: out
        _candidate("looks", 0.45, 0.08, 0.01),  # looks, 25 points below: the weakest that qualifies
        _candidate("better", 0.50, 0.12, 0.04),  # looks, qualifies, stronger
        _candidate("near-top", 0.65, 0.15, 0.05),  # looks but only 5 points below the strongest: out
    ]
    choice = choose_base(candidates, strongest, margin_points=10)
    assert choice.chosen == "looks" and choice.qualified == ["looks", "better"]
    assert "95% lower bound above 0" in choice.rule and "10 points" in choice.rule
    assert [c.name for c in choice.others] == ["strong", "mid"]


def test_without_a_qualifying_candidate_the_first_one_is_the_base_and_the_choice_says_so() -> None:
    candidates = [_candidate("first", 0.40, 0.0, -0.02), _candidate("second", 0.30, 0.01, -0.01)]
    choice = choose_base(candidates, [_candidate("strong", 0.7, 0.2, 0.1)], margin_points=10)
    assert choice.chosen == "first" and choice.qualified == []
    with pytest.raises(ValueError, match="at least one candidate"):
        choose_base([], [], margin_points=10)


def test_validation_benchmarks_hold_the_validation_videos_questions_with_their_frame_controls(tmp_path: Path) -> None:
    data = make_shapesqa(tmp_path / "data", train=4, held_out=0, ood=0)
    rows = [json.loads(line) for line in (data / "train.jsonl").read_text().splitlines()]
    videos = {rows[-1]["video"], rows[0]["video"]}
    written = validation_benchmarks(data, data / "train.jsonl", videos)
    assert set(written) == {"validation", "validation-shuffled", "validation-blank"}
    kept = [json.loads(line) for line in written["validation"].read_text().splitlines()]
    assert {r["video"] for r in kept} == videos and len(kept) == 6
    shuffled = [json.loads(line) for line in written["validation-shuffled"].read_text().splitlines()]
    assert [r["id"] for r in shuffled] == [r["id"] for r in kept]
    assert all(s["video"] != r["video"] and s["video"] in videos for s, r in zip(shuffled, kept, strict=True))


def test_candidates_need_validation_videos_and_distinct_names() -> None:
    weak = ZooMember(name="w", family="llava-onevision", steps=3)
    with pytest.raises(ValueError, match="validation_videos >= 2"):
        MiniatureSettings(base_candidates=[weak], validation_videos=0)
    with pytest.raises(ValueError, match="its own name"):
        MiniatureSettings(base_candidates=[weak], zoo=[weak])


def _fit(beta: float, weight: float, accuracy: float | None) -> RecipeFit:
    validation = {} if accuracy is None else {"accuracy": accuracy, "margin": 0.1, "loss": 0.6}
    return RecipeFit(options={"beta": beta, "loss_weights": [1.0, weight]}, validation=validation)


def test_the_recipe_is_the_most_accurate_on_validation_preferring_the_larger_dpo_share_within_tolerance() -> None:
    fits = [
        _fit(0.1, 1.0, 0.80),  # the best accuracy, but the SFT term weighs as much as DPO
        _fit(0.5, 0.25, 0.79),  # within 2 points, a quarter of the SFT weight: chosen
        _fit(0.1, 0.25, 0.70),  # a small SFT weight too, but 10 points worse
        _fit(0.5, 0.1, None),  # never scored: never wins
    ]
    choice = choose_recipe(fits, tolerance=0.02)
    assert choice.chosen == {"beta": 0.5, "loss_weights": [1.0, 0.25]} and len(choice.fits) == 4
    assert choose_recipe(fits, tolerance=0.0).chosen == fits[0].options  # no tolerance: the most accurate
    with pytest.raises(ValueError, match="at least one grid point"):
        choose_recipe([_fit(0.1, 1.0, None)])


def test_the_recipe_grid_is_every_combination_with_the_sft_term_kept() -> None:
    grid = recipe_grid((0.1, 0.5), (0.25, 1.0), (2e-4,), (2, 4))
    assert len(grid) == 8 and len(RECIPE_GRID) == 16
    assert {"beta": 0.5, "loss_weights": [1.0, 0.25], "learning_rate": 2e-4, "epochs": 4} in grid
    assert all(point["loss_weights"][1] > 0 for point in RECIPE_GRID)  # plain DPO degenerates these models


def test_alpha_is_the_most_accurate_on_validation_and_the_smallest_within_tolerance() -> None:
    assert choose_alpha({0.0: 0.40, 0.3: 0.45, 1.0: 0.43}, 0.0) == 0.3
    assert choose_alpha({0.0: 0.40, 0.3: 0.45, 1.0: 0.43}, 0.05) == 0.0  # the policy is within 0.05 of the best
    assert choose_alpha({0.0: 0.40, 0.5: 0.40}, 0.0) == 0.0  # a tie goes to the smaller alpha
    assert choose_alpha({0.0: None, 0.5: 0.10}, 0.0) == 0.5
    with pytest.raises(ValueError, match="at least one candidate"):
        choose_alpha({0.0: None}, 0.0)
