"""What the miniature trains: the paper's variants (a)-(d), the controls, and the comparisons it tests.

Every variant trains the weakest zoo member with the ``video-dpo`` trainer, once per training seed, and is
validated on the zoo's pairs of the validation videos (:mod:`mmaip_miniature.pairs`). Multi-round variants
train on one disjoint shard of their pairs per round, so (a), (b), (c), ``fixed`` and ``sft`` see every zoo
pair once. (c-val) and ``on-policy`` are (c) with alpha chosen per round (chain.py) and with the current
model's own pairs added to each round (onpolicy.py).
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

__all__ = ["COMPARISONS", "CONTROLS", "VARIANTS", "Variant", "train_section"]

PairSource = Literal["zoo", "single", "oracle"]
Runner = Literal["loop", "alpha-per-round", "on-policy"]
"""How a variant trains: ``mmaip train``'s round loop; the chain of one-round runs that chooses alpha per round
(chain.py); the round loop with the current model's own pairs added each round (onpolicy.py)."""


class Variant(NamedTuple):
    description: str
    train: dict[str, Any]
    pairs: PairSource = "zoo"
    trainer: dict[str, Any] | None = None  # options over the recipe's (MiniatureSettings.dpo)
    runner: Runner = "loop"


_ITERATIVE = {"reference": {"policy": "extrapolated"}, "schedule": "shards"}
VARIANTS: dict[str, Variant] = {
    "a": Variant("1 round of DPO, fixed reference", {"rounds": 1, "reference": {"policy": "fixed"}, "alpha": 0.0}),
    "b": Variant(
        "T rounds, reference updated", {"reference": {"policy": "previous"}, "alpha": 0.0, "schedule": "shards"}
    ),
    "c": Variant("T rounds, reference updated, extrapolated (the paper)", _ITERATIVE),
    "d": Variant("as (c), pairs from the weakest model alone", _ITERATIVE, "single"),
    "c-val": Variant(
        "as (c), alpha chosen per round on the validation questions", _ITERATIVE, runner="alpha-per-round"
    ),
}
"""(c-val) runs only with an alpha grid (``MiniatureSettings.alpha_grid``)."""
CONTROLS: dict[str, Variant] = {
    "sft": Variant(
        "control: SFT on the zoo pairs' chosen answers (1 round)",
        {"rounds": 1, "reference": {"policy": "fixed"}, "alpha": 0.0},
        trainer={"loss_type": ["sft"], "loss_weights": [1.0]},
    ),
    "fixed": Variant(
        "control: T rounds against the base (reference fixed), training continued",
        {"reference": {"policy": "fixed"}, "alpha": 0.0, "schedule": "shards"},
    ),
    "oracle": Variant(
        "control: as (c), oracle pairs (truth vs the base's likeliest wrong answer)", _ITERATIVE, "oracle"
    ),
    "on-policy": Variant(
        "control: as (c), each round also pairs of the current model's own answers (on-policy)",
        _ITERATIVE,
        runner="on-policy",
    ),
}
COMPARISONS: list[tuple[str, str]] = [
    ("c", "a"),  # iterative + extrapolation vs one round
    ("c", "b"),  # the extrapolated reference vs the last policy
    ("c", "d"),  # zoo pairs vs single-model pairs
    ("c", "fixed"),  # updating the reference vs training on against the base
    ("c", "sft"),  # the preference signal vs imitating the chosen answers
    ("oracle", "c"),  # how far the zoo's pairs are from perfect labels
    ("on-policy", "c"),  # the current model's own pairs each round vs the zoo's alone
    ("c-val", "c"),  # alpha chosen per round on validation vs a fixed alpha
    ("c-val", "b"),  # extrapolation, alpha chosen, vs none
]


def train_section(
    variant: Variant,
    *,
    pairs: str,
    eval_pairs: str | None,
    model: str,
    seed: int,
    rounds: int,
    alpha: float,
    dpo: dict[str, Any],
) -> dict[str, Any]:
    """The ``train`` section of a variant's run config for one training seed."""
    section = {
        "pairs": pairs,
        "rounds": rounds,
        "alpha": alpha,
        "seed": seed,
        **variant.train,
        "trainer": {"name": "video-dpo", "model": model, "seed": seed, **dpo, **(variant.trainer or {})},
    }
    return section | ({"eval_pairs": eval_pairs} if eval_pairs is not None else {})
