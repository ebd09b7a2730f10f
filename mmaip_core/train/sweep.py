"""An ExPO alpha sweep: one extrapolated model per alpha and, given an evaluation config, the choice of alpha
by a held-out evaluation (ExPO itself picks alpha by scoring generations, per checkpoint)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, Field

from mmaip_core.config import RunConfig, ZooEntry
from mmaip_core.errors import ConfigError
from mmaip_core.plugins.manager import PluginManager
from mmaip_core.stages.evaluate import run_evaluation
from mmaip_core.store import layout
from mmaip_core.store.files import write_text_atomic
from mmaip_core.train.extrapolate import extrapolate

__all__ = ["SweepResult", "sweep_alphas"]


class SweepResult(BaseModel):
    """``OUT/sweep.json``: the model of each alpha, its held-out score, and the alpha chosen."""

    models: dict[str, str] = Field(description="alpha -> extrapolated model folder.")
    evaluator: str | None = Field(default=None, description="The evaluator whose mean score chose alpha.")
    scores: dict[str, float | None] = Field(default_factory=dict, description="alpha -> mean held-out score.")
    chosen: float | None = Field(default=None, description="The alpha with the best score.")


def _entries(config: RunConfig, models: dict[float, Path]) -> list[ZooEntry]:
    """One entry per alpha, each a copy of the config's first ``models`` entry (an ``hf`` generator) with
    its model replaced by that alpha's folder."""
    if not config.models or config.models[0].generator not in ("hf",):
        raise ConfigError(["models: the sweep needs a first entry with generator: hf (its options are reused)"])
    template = config.models[0]
    options = {k: v for k, v in template.options.items() if k != "model"}
    return [
        ZooEntry.model_validate({"name": f"alpha-{a:g}", "generator": "hf", **options, "model": str(folder)})
        for a, folder in models.items()
    ]


def sweep_alphas(
    policy: Path,
    anchor: Path,
    alphas: Sequence[float],
    out: Path,
    *,
    include_vision: bool = False,
    evaluation: RunConfig | None = None,
    manager: PluginManager | None = None,
) -> SweepResult:
    """Write ``out/alpha-A`` for every alpha; with ``evaluation``, evaluate them all and choose an alpha."""
    models = {a: out / f"alpha-{a:g}" for a in alphas}
    for alpha, folder in models.items():
        extrapolate(policy, anchor, alpha, folder, include_vision=include_vision)
    result = SweepResult(models={f"{a:g}": str(f) for a, f in models.items()})
    if evaluation is not None and manager is not None:
        config = evaluation.model_copy(update={"models": _entries(evaluation, models)})
        results = run_evaluation(config, out / "evaluation", manager)
        evaluator = config.evaluators[0].name  # the name results are keyed by
        result.evaluator = evaluator
        for alpha in alphas:
            rows = [r for r in results.metrics if r.model == f"alpha-{alpha:g}" and r.evaluator == evaluator]
            values = [r.metrics.score.value for r in rows if r.metrics.score.value is not None]
            result.scores[f"{alpha:g}"] = sum(values) / len(values) if values else None
        scored = {a: s for a, s in result.scores.items() if s is not None}
        result.chosen = float(max(scored, key=lambda a: scored[a])) if scored else None
    write_text_atomic(out / layout.SWEEP, json.dumps(result.model_dump(mode="json"), indent=2))
    return result
