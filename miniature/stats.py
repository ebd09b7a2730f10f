"""Statistics across training seeds: the spread of a variant's accuracy over seeds, and the paired test of
two variants over the questions of every seed.

**The rule.** Two variants A and B trained with the same seeds are compared question by question: for each
seed and each question, A's exact-match verdict minus B's (seed s's A against seed s's B; a zoo member, which
has no training seed, stands for itself under every seed). The differences of all seeds are pooled: the
estimate is their mean, the interval a 95% bootstrap over videos (a video's questions under every seed move
together), and the p-value a two-sided sign-flip permutation test with the same clusters: under "A and B are
exchangeable" each video's summed difference is as likely negated, so the p-value is the share of
``resamples`` random sign patterns whose |sum| reaches the observed |sum| (with the observed one counted).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Mapping, Sequence

import numpy as np
from pydantic import BaseModel, Field

from mmaip_core import EvalRecord, ParseStatus
from mmaip_core.analysis.metrics import PairedDifference, paired_difference

__all__ = ["PairedTest", "SeedSpread", "paired_test", "seed_spread", "seeded"]

RESAMPLES = 10_000


class SeedSpread(BaseModel):
    """One number of a variant under each training seed, their mean and sample standard deviation."""

    values: dict[int, float | None] = Field(description="seed -> the number (None: none to report).")
    mean: float | None = None
    sd: float | None = Field(default=None, description="Sample standard deviation (None with fewer than 2 seeds).")


class PairedTest(BaseModel):
    """A minus B, pooled over seeds (see the module docstring for the rule)."""

    name: str
    a: str
    b: str
    benchmark: str
    seeds: list[int]
    difference: PairedDifference = Field(description="Exact-match accuracy of A minus B, bootstrap over videos.")
    p_value: float | None = Field(description="Two-sided sign-flip permutation test over videos (None: no pairs).")
    resamples: int = RESAMPLES


def seed_spread(values: Mapping[int, float | None]) -> SeedSpread:
    """Mean and sample standard deviation of the seeds' values that exist."""
    known = [v for v in values.values() if v is not None]
    return SeedSpread(
        values=dict(values),
        mean=statistics.fmean(known) if known else None,
        sd=statistics.stdev(known) if len(known) > 1 else None,
    )


def seeded(records: Mapping[int, Sequence[EvalRecord]]) -> list[EvalRecord]:
    """Every seed's records in one list, each sample id prefixed by its seed: the same question under two seeds
    is two questions (of the same video, so the bootstrap's clusters keep them together)."""
    return [r.model_copy(update={"sample_id": f"s{seed}:{r.sample_id}"}) for seed, rs in records.items() for r in rs]


def _video_sums(a: Sequence[EvalRecord], b: Sequence[EvalRecord]) -> np.ndarray:
    """Per video, the summed verdict differences A - B over the questions both answered usably (the matching
    of ``paired_difference``, which returns only the aggregate)."""
    usable_b = {r.sample_id: r for r in b if r.status is ParseStatus.OK and r.correct is not None}
    sums: dict[str, float] = defaultdict(float)
    for r in a:
        other = usable_b.get(r.sample_id)
        if r.status is ParseStatus.OK and r.correct is not None and other is not None:
            sums[r.video or r.sample_id] += float(bool(r.correct)) - float(bool(other.correct))
    return np.array(list(sums.values()))


def sign_flip_p(
    a: Sequence[EvalRecord], b: Sequence[EvalRecord], resamples: int = RESAMPLES, seed: int = 0
) -> float | None:
    """Two-sided sign-flip permutation p-value of the summed difference A - B, clustered by video."""
    sums = _video_sums(a, b)
    if len(sums) == 0:
        return None
    observed = abs(sums.sum())
    signs = np.random.default_rng(seed).choice([-1.0, 1.0], size=(resamples, len(sums)))
    reached = int((np.abs(signs @ sums) >= observed - 1e-9).sum())
    return (1 + reached) / (1 + resamples)


def paired_test(
    names: tuple[str, str],
    a: Mapping[int, Sequence[EvalRecord]],
    b: Mapping[int, Sequence[EvalRecord]],
    benchmark: str,
) -> PairedTest:
    """``names[0]`` minus ``names[1]`` on ``benchmark`` over the seeds both have (their records by seed)."""
    seeds = sorted(set(a) & set(b))
    pooled_a, pooled_b = seeded({s: a[s] for s in seeds}), seeded({s: b[s] for s in seeds})
    return PairedTest(
        name=f"{names[0]} vs {names[1]}",
        a=names[0],
        b=names[1],
        benchmark=benchmark,
        seeds=seeds,
        difference=paired_difference(pooled_a, pooled_b),
        p_value=sign_flip_p(pooled_a, pooled_b),
    )
