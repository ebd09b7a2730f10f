"""Variant (c-val): Iter-W2S-RLAIF with the extrapolation alpha chosen in every round on validation.

The round loop of ``mmaip train`` takes one alpha for every round. ExPO chooses alpha on held-out data, so
this variant runs the rounds of (c) one at a time, each an ordinary one-round ``mmaip train`` run::

    model_0 <- base
    for round t = 1..T:
        policy_t <- one round of DPO from model_{t-1} against model_{t-1} on shard t of the zoo's pairs
        for alpha in the grid (0: the policy itself):
            candidate(alpha) <- policy_t + alpha * (policy_t - model_{t-1})
        model_t <- the candidate the rule picks on the validation questions

which is (c) exactly (start and reference of round t are both the last round's model, the anchor is the
reference, the shards are the loop's ``round_shard``), with alpha chosen per round. **The rule**
(:func:`choose_alpha`): the highest exact-match accuracy on the validation questions (greedy; the build's
questions on the validation videos, never held-out or ood); among the alphas within ``tolerance`` of it, the
smallest. Both the policy (alpha 0) and every extrapolated model are evaluated in every round; the numbers and
the chosen alpha are kept per round (``RoundFit.alpha``, ``RoundFit.alpha_validation``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from mmaip_core import PluginManager
from mmaip_core.config import load_config
from mmaip_core.stages.evaluate import run_evaluation
from mmaip_core.store import layout
from mmaip_core.store.checkpoints import is_complete
from mmaip_core.store.jsonl import write_jsonl_atomic
from mmaip_core.train import run_training
from mmaip_core.train.extrapolate import extrapolate
from mmaip_core.train.pairs import read_train_pairs, round_shard
from mmaip_miniature.analysis import RoundFit, round_fits
from mmaip_miniature.configs import models_section, write_config

__all__ = ["ALPHA_RULE", "AlphaChain", "choose_alpha", "train_alpha_per_round"]

ALPHA_RULE = (
    "the highest exact-match accuracy on the validation questions (greedy) among the policy (alpha 0) and its "
    "extrapolations; within {tolerance:g} of it, the smallest alpha"
)


class AlphaChain(NamedTuple):
    """One seed of (c-val): where it goes and what it trains on."""

    out: Path
    train: Callable[[Path, Path], dict[str, Any]]  # (start model, pair file) -> a one-round run's config
    frames: dict[str, Any]
    pairs: Path
    validation: Path  # the validation questions (jsonl rows)
    base: Path
    seed: int
    rounds: int
    grid: list[float]
    tolerance: float


def choose_alpha(accuracy: Mapping[float, float | None], tolerance: float) -> float:
    """The rule of the module's docstring; alphas without an accuracy never win."""
    scored = {a: acc for a, acc in accuracy.items() if acc is not None}
    if not scored:
        raise ValueError("choosing alpha needs at least one candidate with a validation accuracy")
    best = max(scored.values())
    return min(a for a, acc in scored.items() if acc >= best - tolerance)


def train_alpha_per_round(
    job: AlphaChain, manager: PluginManager, step: Callable[[str], Callable[..., None]]
) -> tuple[Path, list[RoundFit]]:
    """Every round of the chain; the final model and each round's fit with its alpha numbers."""
    pairs, _ = read_train_pairs(job.pairs)
    model, fits = job.base, []
    for t in range(1, job.rounds + 1):
        folder = job.out / f"round-{t}"
        shard = folder / "shard.jsonl"
        write_jsonl_atomic(shard, round_shard(pairs, job.rounds, t, job.seed))
        config = write_config(folder / "train.yaml", job.train(model, shard))
        manifest = run_training(
            load_config(config, manager),
            folder / "train",
            manager,
            resume=True,
            progress=step(f"{job.out.name} round {t}"),
        )
        assert manifest.final is not None
        candidates = _extrapolations(Path(manifest.final), model, job.grid, folder)
        accuracy = _validation_accuracy(job, manager, candidates, folder, step)
        chosen = choose_alpha(accuracy, job.tolerance)
        model = candidates[chosen]
        fit = round_fits(folder / "train" / layout.TRAIN_MANIFEST)[0][-1]
        numbers = {f"{a:g}": acc for a, acc in accuracy.items()}
        fits.append(fit.model_copy(update={"round": t, "alpha": chosen, "alpha_validation": numbers}))
    return model, fits


def _extrapolations(policy: Path, anchor: Path, grid: list[float], folder: Path) -> dict[float, Path]:
    """alpha -> the extrapolated model (``folder/alpha-<alpha>``; alpha 0: the policy)."""
    candidates = {}
    for alpha in sorted(set(grid) | {0.0}):
        target = policy if alpha == 0 else folder / f"alpha-{alpha:g}"
        if alpha and not is_complete(target):
            extrapolate(policy, anchor, alpha, target)
        candidates[alpha] = target
    return candidates


def _validation_accuracy(
    job: AlphaChain,
    manager: PluginManager,
    candidates: dict[float, Path],
    folder: Path,
    step: Callable[[str], Callable[..., None]],
) -> dict[float, float | None]:
    """Each candidate's exact-match accuracy on the validation questions (``folder/eval``)."""
    names = {f"alpha-{a:g}": a for a in candidates}
    config = {
        "frames": job.frames,
        "benchmarks": [{"name": "validation", "reader": "jsonl", "path": str(job.validation)}],
        "models": models_section({name: candidates[a] for name, a in names.items()}),
        "evaluators": [{"name": "exact-match", "match": "exact"}],
    }
    path = write_config(folder / "eval.yaml", config)
    results = run_evaluation(
        load_config(path, manager), folder / "eval", manager, progress=step(f"{job.out.name} alpha")
    )
    accuracy: dict[float, float | None] = dict.fromkeys(candidates)
    for row in results.metrics:
        if row.model in names and row.evaluator == "exact-match":
            accuracy[names[row.model]] = row.metrics.ratio.value
    return accuracy
