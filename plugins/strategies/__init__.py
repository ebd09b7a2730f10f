"""Pair strategies: ``best-worst`` (the paper) and ``margin``; both take the optional length guard."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

from pydantic import Field

from mmaip_core import (
    PairingOutcome,
    PairStrategySpec,
    PluginOptions,
    PreferencePair,
    Scored,
    VideoQA,
    hookimpl,
    stable_hash,
)

__all__ = ["BestVsRest", "BestVsRestOptions", "BestWorst", "BestWorstOptions", "Margin", "MarginOptions", "make_pair"]


class GuardOptions(PluginOptions):
    max_length_ratio: float | None = Field(
        default=None,
        gt=1,
        description="Length-bias guard: drop a pair whose chosen answer is more than this many times "
        "longer (in characters) than the rejected one. Off by default.",
    )


def make_pair(sample: VideoQA, chosen: Scored, rejected: Scored, *, strategy: str, prompt: str) -> PreferencePair:
    """The PreferencePair of ``chosen`` over ``rejected`` (chosen must score strictly higher)."""
    c, r = chosen.response, rejected.response
    assert c.text is not None and r.text is not None
    return PreferencePair(
        id=stable_hash([sample.id, c.id, r.id, strategy])[:16],
        sample_id=sample.id,
        video=sample.video,
        question=sample.question,
        prompt=prompt,
        chosen=c.text,
        rejected=r.text,
        chosen_score=chosen.score,
        rejected_score=rejected.score,
        chosen_model=c.model,
        rejected_model=r.model,
        chosen_response_id=c.id,
        rejected_response_id=r.id,
        strategy=strategy,
        margin=round(chosen.score - rejected.score, 6),
        label_source=f"ai:{chosen.judgement.fingerprint}",
        frames=c.frames,
        answer=sample.answer,
        caption=sample.caption,
    )


def _too_long(chosen: Scored, rejected: Scored, ratio: float | None) -> bool:
    c, r = chosen.response.text or "", rejected.response.text or ""
    return ratio is not None and len(c) > ratio * max(len(r), 1)


def _ranked(scored: Sequence[Scored]) -> list[Scored]:
    """Highest score first; equal scores ordered by response id, so results are deterministic."""
    return sorted(scored, key=lambda s: (-s.score, s.response.id))


class BestWorstOptions(GuardOptions):
    pass


class BestWorst:
    """chosen = the highest-scored answer, rejected = the lowest; a question whose scores all tie is
    skipped. Among equal scores the answer with the smaller response id is taken."""

    name = "best-worst"

    def __init__(self, options: BestWorstOptions) -> None:
        self.options = options

    def make_pairs(self, sample: VideoQA, scored: Sequence[Scored], *, prompt: str) -> PairingOutcome:
        if len(scored) < 2:
            return PairingOutcome([], skipped="fewer than two scored answers")
        ranked = _ranked(scored)
        best, worst = ranked[0], sorted(scored, key=lambda s: (s.score, s.response.id))[0]
        if best.score == worst.score:
            return PairingOutcome([], skipped="all scores tie")
        if _too_long(best, worst, self.options.max_length_ratio):
            return PairingOutcome([], skipped="length guard: chosen answer much longer than rejected")
        return PairingOutcome([make_pair(sample, best, worst, strategy=self.name, prompt=prompt)])


class MarginOptions(GuardOptions):
    min_margin: float = Field(default=1.0, gt=0, description="Smallest score gap that makes a pair.")
    max_pairs: int | None = Field(default=None, ge=1, description="At most this many pairs per question.")


class Margin:
    """Every pair of answers whose score gap is at least ``min_margin``, widest gaps first, at most
    ``max_pairs`` per question."""

    name = "margin"

    def __init__(self, options: MarginOptions) -> None:
        self.options = options

    def make_pairs(self, sample: VideoQA, scored: Sequence[Scored], *, prompt: str) -> PairingOutcome:
        o = self.options
        candidates = [
            (hi, lo)
            for hi, lo in combinations(_ranked(scored), 2)
            if hi.score - lo.score >= o.min_margin and not _too_long(hi, lo, o.max_length_ratio)
        ]
        candidates.sort(key=lambda p: -(p[0].score - p[1].score))
        pairs = [make_pair(sample, hi, lo, strategy=self.name, prompt=prompt) for hi, lo in candidates[: o.max_pairs]]
        return PairingOutcome(pairs, skipped=None if pairs else f"no score gap of at least {o.min_margin}")


class BestVsRestOptions(GuardOptions):
    min_margin: float = Field(default=0.0, ge=0, description="Smallest score gap to the best answer.")
    max_pairs: int | None = Field(default=None, ge=1, description="At most this many pairs per question.")


class BestVsRest:
    """The highest-scored answer against every answer scored strictly lower (by at least ``min_margin``),
    widest gaps first, at most ``max_pairs`` per question."""

    name = "best-vs-rest"

    def __init__(self, options: BestVsRestOptions) -> None:
        self.options = options

    def make_pairs(self, sample: VideoQA, scored: Sequence[Scored], *, prompt: str) -> PairingOutcome:
        if len(scored) < 2:
            return PairingOutcome([], skipped="fewer than two scored answers")
        o = self.options
        best, *rest = _ranked(scored)
        losers = [
            r
            for r in reversed(rest)
            if best.score - r.score > 0
            and best.score - r.score >= o.min_margin
            and not _too_long(best, r, o.max_length_ratio)
        ]
        pairs = [make_pair(sample, best, r, strategy=self.name, prompt=prompt) for r in losers[: o.max_pairs]]
        return PairingOutcome(pairs, skipped=None if pairs else "no answer scored below the best")


@hookimpl
def mmaip_pair_strategies() -> list[PairStrategySpec]:
    return [
        PairStrategySpec(
            name="best-worst",
            description="highest-scored answer chosen, lowest rejected; ties skipped (the paper)",
            options=BestWorstOptions,
            factory=BestWorst,
        ),
        PairStrategySpec(
            name="best-vs-rest",
            description="the best answer against every lower-scored one, capped per question",
            options=BestVsRestOptions,
            factory=BestVsRest,
        ),
        PairStrategySpec(
            name="margin",
            description="every pair whose score gap is at least a margin, capped per question",
            options=MarginOptions,
            factory=Margin,
        ),
    ]
