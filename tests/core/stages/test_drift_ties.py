"""Judge drift's rankings with tied scores (Kendall's tau-b, ties listed) and its like-for-like evaluator pairs."""

from __future__ import annotations

import pytest
from helpers import eval_record

from mmaip_core import EvalRecord
from mmaip_core.stages.drift import drift_section, judge_drift


def _records(evaluator: str, scores: dict[str, float], fingerprint: str = "fp") -> list[EvalRecord]:
    """Two verdicts per model, both with the model's score."""
    return [
        eval_record(
            sample_id=f"s{i}",
            video=f"v{i}",
            model=model,
            evaluator=evaluator,
            fingerprint=f"{evaluator}-{fingerprint}",
            correct=score >= 3,
            score=score,
        )
        for model, score in scores.items()
        for i in range(2)
    ]


def test_tied_models_are_ties_not_an_alphabetical_order() -> None:
    old = _records("judge", {"alpha": 5, "beta": 4, "gamma": 3}, "old")
    new = _records("judge", {"alpha": 4, "beta": 4, "gamma": 2}, "new")  # the new judge ties alpha and beta
    (ranking,) = judge_drift("prev", old, new).rankings
    # tau-b of (5, 4, 3) against (4, 4, 2): 2 concordant, 0 discordant, 1 tie in the new scores
    assert ranking.kendall == pytest.approx(2 / (3 * 2) ** 0.5)
    assert ranking.ties_new == [["alpha", "beta"]] and ranking.ties_old == []
    text = "\n".join(drift_section(judge_drift("prev", old, new)))
    assert "Kendall tau-b 0.82; new ties alpha = beta" in text


def test_a_judge_that_ties_every_model_has_no_tau() -> None:
    old = _records("judge", {"zeta": 5, "alpha": 1}, "old")
    new = _records("judge", {"zeta": 3, "alpha": 3}, "new")
    (ranking,) = judge_drift("prev", old, new).rankings
    assert ranking.kendall is None, "not -1.00: the new judge orders nothing"
    assert ranking.ties_new == [["alpha", "zeta"]]
    assert "Kendall tau-b undefined: one side scores every model alike" in "\n".join(
        drift_section(judge_drift("prev", old, new))
    )


def test_like_for_like_evaluators_by_default() -> None:
    scores = {"m1": 4.0, "m2": 2.0}
    old = _records("vision", scores, "old") + _records("text", scores, "old")
    new = _records("vision", scores, "new") + _records("text", scores, "new")
    rows = judge_drift("prev", old, new).rows
    assert sorted((r.model, r.old.split("@")[0], r.new.split("@")[0]) for r in rows) == [
        ("m1", "text", "text"),
        ("m1", "vision", "vision"),
        ("m2", "text", "text"),
        ("m2", "vision", "vision"),
    ]
    assert len(judge_drift("prev", old, new, all_pairs=True).rows) == 8, "every cross pair on request"
    other = judge_drift("prev", old, _records("reference", scores, "new")).rows
    assert {r.old.split("@")[0] for r in other} == {"vision", "text"}, "a new name is compared with every old one"
