"""Choosing the training recipe on validation: a small grid of ``video-dpo`` options, each trained for one round
on the zoo's training pairs from the base and scored on the validation pairs (never held-out or ood).

**The rule** (:func:`choose_recipe`): the grid point with the highest validation reward accuracy; among those
within ``tolerance`` of it, the one with the smallest SFT weight (the largest share of the update for the DPO
term, the part that depends on the reference), then the highest accuracy, then the first in grid order. Reward
margins are not compared across points: the margin scales with beta. An SFT weight of 0 (plain DPO) is left
out of the grid: it makes these tiny models unlearn when to stop (docs/miniature.md), which the reward
accuracy does not see.
"""

from __future__ import annotations

from itertools import product
from typing import Any

from pydantic import BaseModel, Field

__all__ = ["RECIPE_GRID", "RecipeChoice", "RecipeFit", "choose_recipe", "recipe_grid"]


def recipe_grid(
    betas: tuple[float, ...], sft_weights: tuple[float, ...], learning_rates: tuple[float, ...], epochs: tuple[int, ...]
) -> list[dict[str, Any]]:
    """Every combination, as ``video-dpo`` options over the recipe's (``loss_type: [sigmoid, sft]``)."""
    return [
        {"beta": beta, "loss_weights": [1.0, weight], "learning_rate": lr, "epochs": n}
        for beta, weight, lr, n in product(betas, sft_weights, learning_rates, epochs)
    ]


RECIPE_GRID = recipe_grid((0.1, 0.5), (0.25, 1.0), (2e-4, 1e-3), (2, 4))
"""The full run's grid: 16 points."""


class RecipeFit(BaseModel):
    """One grid point after one round: its options and the validation pairs' reward accuracy, margin, loss."""

    options: dict[str, Any]
    validation: dict[str, float] = Field(description="result.eval of the round: accuracy, margin, loss, pairs.")
    train_accuracy: float | None = None
    train_margin: float | None = None


class RecipeChoice(BaseModel):
    """The recipe the rule chose, with every grid point's numbers (``results.json`` → ``recipe``)."""

    rule: str
    tolerance: float
    fits: list[RecipeFit]
    chosen: dict[str, Any] = Field(description="The chosen point's options (over the settings' dpo).")


RULE = (
    "the highest validation reward accuracy; within {tolerance:g} of it, the smallest SFT weight (the largest DPO "
    "share), then the highest accuracy, then grid order"
)


def _sft_weight(options: dict[str, Any]) -> float:
    weights = options.get("loss_weights") or [1.0, 1.0]
    return float(weights[-1]) if len(weights) > 1 else 0.0


def choose_recipe(fits: list[RecipeFit], tolerance: float = 0.02) -> RecipeChoice:
    """The rule of this module's docstring; points without a validation accuracy never win."""
    scored = [(i, f) for i, f in enumerate(fits) if f.validation.get("accuracy") is not None]
    if not scored:
        raise ValueError("choosing a recipe needs at least one grid point with a validation accuracy")
    best = max(f.validation["accuracy"] for _, f in scored)
    near = [(i, f) for i, f in scored if f.validation["accuracy"] >= best - tolerance]
    _, chosen = min(near, key=lambda p: (_sft_weight(p[1].options), -p[1].validation["accuracy"], p[0]))
    return RecipeChoice(rule=RULE.format(tolerance=tolerance), tolerance=tolerance, fits=fits, chosen=chosen.options)
