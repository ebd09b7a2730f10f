"""The miniature's numbers from its evaluation and training manifests: per model (every zoo member, every
trained variant under every seed), per variant across seeds, and the paired tests of the paper's comparisons.

All accuracies are exact match (the truth). The video gap is measured on held-out: real frames minus shuffled
(and minus blank) frames, question by question (:mod:`mmaip_miniature.video_use`). Seeds are pooled and tested
by the rule in :mod:`mmaip_miniature.stats`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path

from pydantic import BaseModel, Field

from mmaip_core import EvalRecord, TrainManifest
from mmaip_core.analysis.metrics import MetricSummary, PairedDifference, paired_difference, summarize
from mmaip_core.testbeds.shapesqa import Split
from mmaip_miniature.stats import PairedTest, SeedSpread, paired_test, seed_spread, seeded
from mmaip_miniature.video_use import FRAME_CONTROLS

__all__ = [
    "BENCHMARKS",
    "GAP_SPLIT",
    "Groups",
    "ModelResult",
    "RoundFit",
    "VariantResult",
    "exact_match_groups",
    "paired_tests",
    "round_fits",
    "variant_result",
    "video_gap",
]

BENCHMARKS = ("held-out", "ood")
GAP_SPLIT: Split = "held-out"
Groups = Mapping[tuple[str, str], Sequence[EvalRecord]]
"""(model, benchmark) -> exact-match records."""


class RoundFit(BaseModel):
    """How well one round fitted its pairs, from the training manifest."""

    round: int
    train_accuracy: float | None = Field(description="Reward accuracy, mean over the round's training steps.")
    train_margin: float | None = Field(description="Reward margin, mean over the round's training steps.")
    validation: dict[str, float] = Field(
        default_factory=dict, description="The validation pairs after the round (result.eval): loss, accuracy, margin."
    )
    alpha: float | None = Field(default=None, description="The extrapolation alpha of the round's model.")
    alpha_validation: dict[str, float | None] = Field(
        default_factory=dict,
        description="Only where alpha is chosen per round (chain.py): validation-question accuracy of the round's "
        "model under each candidate alpha ('0': the policy).",
    )


class ModelResult(BaseModel):
    """One evaluated model: a zoo member, or a variant trained with one seed."""

    model: str
    description: str
    variant: str | None = Field(default=None, description="The trained variant (None: a zoo member).")
    seed: int | None = Field(default=None, description="The training seed.")
    metrics: dict[str, MetricSummary] = Field(description="'benchmark/evaluator' -> metrics.")
    versus_base: dict[str, PairedDifference] = Field(
        default_factory=dict, description="benchmark -> exact-match score minus the base model's, question by question."
    )
    video_gap: dict[str, PairedDifference] = Field(
        default_factory=dict, description="'shuffled'/'blank' -> held-out accuracy on real frames minus on those."
    )
    fit: list[RoundFit] = Field(default_factory=list, description="Training and validation fit per round.")
    final_round: int | None = Field(default=None, description="The round whose model was evaluated.")


class VariantResult(BaseModel):
    """One trained variant across its seeds."""

    variant: str
    model: str
    description: str
    seeds: list[int]
    accuracy: dict[str, SeedSpread] = Field(description="benchmark -> exact-match accuracy per seed.")
    pooled: dict[str, MetricSummary] = Field(description="benchmark -> every seed's questions pooled.")
    versus_base: dict[str, PairedDifference] = Field(description="benchmark -> minus the base, pooled over seeds.")
    video_gap: dict[str, PairedDifference] = Field(description="'shuffled'/'blank' -> the gap, pooled over seeds.")
    fit: dict[str, SeedSpread] = Field(
        description="The evaluated round's 'train accuracy', 'train margin', 'validation accuracy', "
        "'validation margin' per seed."
    )


def exact_match_groups(records: Sequence[EvalRecord]) -> dict[tuple[str, str], list[EvalRecord]]:
    groups: dict[tuple[str, str], list[EvalRecord]] = defaultdict(list)
    for r in records:
        if r.evaluator == "exact-match":
            groups[(r.model, r.benchmark)].append(r)
    return groups


def video_gap(groups: Groups, model: str) -> dict[str, PairedDifference]:
    """Real frames minus each frame control on held-out, question by question."""
    real = groups.get((model, GAP_SPLIT), [])
    return {c: paired_difference(real, groups.get((model, f"{GAP_SPLIT}-{c}"), [])) for c in FRAME_CONTROLS}


def _mean(values: list[float] | None) -> float | None:
    return sum(values) / len(values) if values else None


def round_fits(manifest: Path) -> tuple[list[RoundFit], int | None]:
    """Every round's fit in a training manifest, and the round whose model is final."""
    m = TrainManifest.model_validate_json(manifest.read_text())
    fits = [
        RoundFit(
            round=r.round,
            train_accuracy=_mean(r.result.curves.get("accuracy")),
            train_margin=_mean(r.result.curves.get("margin")),
            validation=r.result.eval,
            alpha=r.alpha,
        )
        for r in m.rounds
    ]
    return fits, m.final_round or (m.rounds[-1].round if m.rounds else None)


def _fit_spread(models: Mapping[int, ModelResult]) -> dict[str, SeedSpread]:
    """The evaluated round's fit numbers, per seed."""
    rows: dict[str, dict[int, float | None]] = defaultdict(dict)
    for seed, m in models.items():
        fit = next((f for f in m.fit if f.round == m.final_round), None)
        rows["train accuracy"][seed] = fit.train_accuracy if fit else None
        rows["train margin"][seed] = fit.train_margin if fit else None
        rows["validation accuracy"][seed] = fit.validation.get("accuracy") if fit else None
        rows["validation margin"][seed] = fit.validation.get("margin") if fit else None
    return {name: seed_spread(values) for name, values in rows.items()}


def variant_result(
    variant: str, name: str, description: str, models: Mapping[int, ModelResult], groups: Groups, base: str
) -> VariantResult:
    """A variant across seeds from its per-seed models (seed -> the model trained with it)."""

    def by_seed(benchmark: str) -> dict[int, Sequence[EvalRecord]]:
        return {seed: groups.get((m.model, benchmark), []) for seed, m in models.items()}

    def ratio(m: ModelResult, benchmark: str) -> float | None:
        summary = m.metrics.get(f"{benchmark}/exact-match")
        return summary.ratio.value if summary is not None else None

    accuracy = {b: seed_spread({seed: ratio(m, b) for seed, m in models.items()}) for b in BENCHMARKS}
    base_records = {b: seeded(dict.fromkeys(models, groups.get((base, b), []))) for b in BENCHMARKS}
    real = seeded(by_seed(GAP_SPLIT))
    return VariantResult(
        variant=variant,
        model=name,
        description=description,
        seeds=sorted(models),
        accuracy=accuracy,
        pooled={b: summarize(seeded(by_seed(b))) for b in BENCHMARKS},
        versus_base={b: paired_difference(seeded(by_seed(b)), base_records[b]) for b in BENCHMARKS},
        video_gap={c: paired_difference(real, seeded(by_seed(f"{GAP_SPLIT}-{c}"))) for c in FRAME_CONTROLS},
        fit=_fit_spread(models),
    )


def paired_tests(
    comparisons: Sequence[tuple[str, str]], models: Mapping[str, Mapping[int, ModelResult]], groups: Groups
) -> list[PairedTest]:
    """Each comparison (variant A, variant B) whose both variants were trained, on each benchmark."""
    tests = []
    for a, b in comparisons:
        if a not in models or b not in models:
            continue
        for benchmark in BENCHMARKS:
            records = [{s: groups.get((m.model, benchmark), []) for s, m in models[v].items()} for v in (a, b)]
            tests.append(paired_test((f"({a})", f"({b})"), records[0], records[1], benchmark))
    return tests
