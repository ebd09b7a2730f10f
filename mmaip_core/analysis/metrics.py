"""Evaluation metrics with confidence intervals: the Video-ChatGPT ratio (share of "yes") and mean score,
and paired differences between two models, each with a bootstrap interval over videos.

Questions about one video are not independent, so the bootstrap resamples videos (clusters), not questions.
Records whose verdict could not be read (parse failures, out-of-range scores, errors) are counted apart and
never imputed: they are left out of the ratio and the score.

Records of one ``group`` (circular evaluation: the same question with its options rotated) count as one question,
correct only if every one of them is (MMBench's CircularEval); :func:`by_category` breaks a summary down by the
samples' categories (question type, video length, ...).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, Field

from mmaip_core.records import EvalRecord, ParseStatus

__all__ = [
    "Estimate",
    "MetricSummary",
    "PairedDifference",
    "by_category",
    "circular",
    "paired_difference",
    "summarize",
]

BOOTSTRAP_CHUNK = 100
"""Bootstrap resamples drawn at once (bounds the memory of an interval over many videos)."""


class Estimate(BaseModel):
    """A statistic with its bootstrap confidence interval."""

    value: float | None = Field(description="The estimate (None without usable records).")
    low: float | None = None
    high: float | None = None


class MetricSummary(BaseModel):
    """The metrics of one (model, benchmark, evaluator)."""

    n: int = Field(description="Records with a usable verdict.")
    videos: int = Field(description="Distinct videos among them (the bootstrap's clusters).")
    ratio: Estimate = Field(description="Share of 'yes' verdicts.")
    score: Estimate = Field(description="Mean score.")
    parse_failures: int = Field(description="Verdicts that could not be read or were out of range.")
    errors: int = Field(description="Records that failed for another reason (missing ground truth, API error).")
    confidence: float = 0.95


class PairedDifference(BaseModel):
    """Model A minus model B on the questions both have usable verdicts for."""

    n: int
    ratio: Estimate
    score: Estimate


def _clusters(records: Sequence[EvalRecord]) -> list[list[int]]:
    groups: dict[str, list[int]] = defaultdict(list)
    for i, record in enumerate(records):
        groups[record.video or record.sample_id].append(i)
    return list(groups.values())


def _bootstrap(values: np.ndarray, clusters: list[list[int]], resamples: int, seed: int, confidence: float) -> Estimate:
    """Mean of ``values`` and a percentile interval from resampling clusters with replacement."""
    if len(values) == 0:
        return Estimate(value=None)
    estimate = float(values.mean())
    sums = np.array([values[c].sum() for c in clusters])
    sizes = np.array([len(c) for c in clusters])
    rng = np.random.default_rng(seed)
    # Resamples are drawn BOOTSTRAP_CHUNK at a time: all at once, the indices alone take resamples x clusters x 8
    # bytes (320 MB at 10,000 videos). The chunks continue one stream of draws, so the numbers are the same.
    means = np.concatenate(
        [
            _resampled_means(rng, sums, sizes, min(BOOTSTRAP_CHUNK, resamples - start))
            for start in range(0, resamples, BOOTSTRAP_CHUNK)
        ]
    )
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return Estimate(value=estimate, low=float(low), high=float(high))


def _resampled_means(rng: np.random.Generator, sums: np.ndarray, sizes: np.ndarray, count: int) -> np.ndarray:
    """``count`` bootstrap means: clusters picked with replacement, their sums over their sizes."""
    picks = rng.integers(0, len(sums), size=(count, len(sums)))
    result: np.ndarray = sums[picks].sum(axis=1) / sizes[picks].sum(axis=1)
    return result


def circular(records: Sequence[EvalRecord]) -> list[EvalRecord]:
    """``records`` with each group's records merged into one (in the place of its first): usable only if all are,
    then correct only if all are, with the lowest score; otherwise the first unusable record stands for it."""
    groups: dict[str, list[EvalRecord]] = defaultdict(list)
    for record in records:
        if record.group is not None:
            groups[record.group].append(record)
    merged: list[EvalRecord] = []
    for record in records:
        if record.group is None:
            merged.append(record)
        elif groups[record.group][0] is record:
            merged.append(_merge(record.group, groups[record.group]))
    return merged


def _merge(group: str, members: list[EvalRecord]) -> EvalRecord:
    failed = next((r for r in members if r.status is not ParseStatus.OK), None)
    first = failed or members[0]
    update: dict[str, object] = {"sample_id": group}
    if failed is None:
        update.update(
            correct=all(bool(r.correct) for r in members),
            score=min(float(r.score or 0.0) for r in members),
            rationale=f"circular: {sum(bool(r.correct) for r in members)} of {len(members)} rotations correct",
        )
    return first.model_copy(update=update)


def summarize(
    records: Sequence[EvalRecord], *, resamples: int = 2000, seed: int = 0, confidence: float = 0.95
) -> MetricSummary:
    """Ratio and mean score of ``records`` (one model, benchmark and evaluator) with bootstrap intervals; a group
    of records (circular evaluation) counts once, see :func:`circular`."""
    records = circular(records)
    usable = [r for r in records if r.status is ParseStatus.OK and r.correct is not None and r.score is not None]
    unreadable = sum(r.status in (ParseStatus.PARSE_FAILURE, ParseStatus.OUT_OF_RANGE) for r in records)
    clusters = _clusters(usable)
    correct = np.array([float(bool(r.correct)) for r in usable])
    scores = np.array([float(r.score) for r in usable if r.score is not None])
    return MetricSummary(
        n=len(usable),
        videos=len(clusters),
        ratio=_bootstrap(correct, clusters, resamples, seed, confidence),
        score=_bootstrap(scores, clusters, resamples, seed, confidence),
        parse_failures=unreadable,
        errors=sum(r.status is ParseStatus.ERROR for r in records),
        confidence=confidence,
    )


def paired_difference(
    a: Sequence[EvalRecord],
    b: Sequence[EvalRecord],
    *,
    resamples: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> PairedDifference:
    """A minus B, question by question (matched by sample id; a group counts once), with a bootstrap interval over
    videos."""
    a, b = circular(a), circular(b)
    usable_b = {r.sample_id: r for r in b if r.status is ParseStatus.OK and r.score is not None}
    pairs = [
        (r, usable_b[r.sample_id])
        for r in a
        if r.status is ParseStatus.OK and r.score is not None and r.sample_id in usable_b
    ]
    first = [x for x, _ in pairs]
    clusters = _clusters(first)
    ratio = np.array([float(bool(x.correct)) - float(bool(y.correct)) for x, y in pairs])
    score = np.array([float(x.score or 0) - float(y.score or 0) for x, y in pairs])
    return PairedDifference(
        n=len(pairs),
        ratio=_bootstrap(ratio, clusters, resamples, seed, confidence),
        score=_bootstrap(score, clusters, resamples, seed, confidence),
    )


def by_category(
    records: Sequence[EvalRecord], *, resamples: int = 2000, seed: int = 0, confidence: float = 0.95
) -> dict[str, dict[str, MetricSummary]]:
    """:func:`summarize` of ``records`` per category field, then per value of it (records without the field are
    left out of that field's breakdown); fields and values sorted."""
    split: dict[str, dict[str, list[EvalRecord]]] = defaultdict(lambda: defaultdict(list))
    for record in records:
        for name, value in record.categories.items():
            split[name][value].append(record)
    return {
        name: {
            value: summarize(split[name][value], resamples=resamples, seed=seed, confidence=confidence)
            for value in sorted(split[name])
        }
        for name in sorted(split)
    }
