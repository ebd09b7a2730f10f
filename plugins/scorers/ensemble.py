"""The ``ensemble`` scorer: combines other scorers and records each member's score."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from mmaip_core import (
    ErrorInfo,
    Judgement,
    ParseStatus,
    PluginContext,
    PluginOptions,
    PluginSection,
    Scorer,
    ScoreRequest,
    ScoreScale,
    stable_hash,
)

__all__ = ["EnsembleOptions", "EnsembleScorer"]


class EnsembleOptions(PluginOptions):
    members: Annotated[list[dict[str, Any]], PluginSection("scorer")] = Field(
        min_length=2, description="Scorers to combine: each {name: <scorer>, ...its options}."
    )
    combine: Literal["mean", "median", "weighted"] = Field(default="mean", description="How member scores combine.")
    weights: list[float] | None = Field(default=None, description="One weight per member, for combine: weighted.")
    require_all: bool = Field(
        default=True, description="A member without a score leaves the answer unscored; false: combine the rest."
    )
    scale: ScoreScale = Field(default_factory=ScoreScale, description="Scale of the combined score.")

    @model_validator(mode="after")
    def _weights_match(self) -> EnsembleOptions:
        weights = self.weights or []
        usable = len(weights) == len(self.members) and min(weights, default=0) >= 0 and sum(weights) > 0
        if self.combine == "weighted" and not usable:
            raise ValueError(f"combine: weighted needs {len(self.members)} non-negative weights, not all 0")
        return self


class EnsembleScorer:
    """Each member scores every answer; scores are put on a common 0–1 footing by their own scales,
    combined (mean, median or weighted mean) and mapped onto this scorer's scale. Each member's score is
    kept in ``criteria`` under ``<index>:<name>``. Members are created by the context's plugin manager, and API
    members' costs are priced with the run's price table (the config's ``prices``)."""

    name = "ensemble"
    model_id = None  # each member prices its own calls

    def __init__(self, options: EnsembleOptions, context: PluginContext) -> None:
        self.options = options
        self.scale = options.scale
        self.members: list[tuple[str, Scorer]] = []
        for i, member in enumerate(options.members):
            values = {k: v for k, v in member.items() if k != "name"}
            created = context.manager.create("scorer", member["name"], values, prices=context.prices)
            self.members.append((f"{i}:{member['name']}", created))
        self.uses_frames = any(m.uses_frames for _, m in self.members)
        self.fingerprint = stable_hash(
            {
                "scorer": self.name,
                "members": [m.fingerprint for _, m in self.members],
                **options.model_dump(mode="json", exclude={"members"}),
            }
        )[:16]
        self._prices = context.prices

    def _combine(self, scores: list[tuple[int, float]]) -> float:
        if self.options.combine == "median":
            return statistics.median(s for _, s in scores)
        if self.options.combine == "weighted" and self.options.weights is not None:
            weights = [self.options.weights[i] for i, _ in scores]
            return sum(w * s for w, (_, s) in zip(weights, scores, strict=True)) / sum(weights)
        return statistics.fmean(s for _, s in scores)

    def _one(self, request: ScoreRequest, verdicts: list[Judgement]) -> Judgement:
        cost = sum(v.cost_usd if v.cost_usd is not None else self._prices.cost(v.model_id, v.usage) for v in verdicts)
        common: dict[str, Any] = {
            "response_id": request.response.id,
            "sample_id": request.sample.id,
            "scorer": self.name,
            "fingerprint": self.fingerprint,
            "scale": self.scale,
            "cost_usd": cost,
            "frames": request.frames.manifest.key if self.uses_frames and request.frames else None,
        }
        ok = [(i, v) for i, v in enumerate(verdicts) if v.status is ParseStatus.OK and v.score is not None]
        criteria = {self.members[i][0]: float(v.score) for i, v in ok if v.score is not None}
        failed = [(self.members[i][0], v) for i, v in enumerate(verdicts) if v.status is not ParseStatus.OK]
        if not ok or (failed and self.options.require_all):
            name, first = failed[0]
            detail = f"member {name}: {first.status.value}"
            if first.status is ParseStatus.ERROR:
                return Judgement(
                    **common,
                    status=ParseStatus.ERROR,
                    criteria=criteria,
                    error=ErrorInfo(error_class="MemberFailed", message=detail),
                )
            return Judgement(
                **common, status=first.status, criteria=criteria, rationale=detail, raw_reply=first.raw_reply
            )
        unit = [(i, (v.score - v.scale.min) / (v.scale.max - v.scale.min)) for i, v in ok if v.score is not None]
        score = self.scale.min + self._combine(unit) * (self.scale.max - self.scale.min)
        return Judgement(
            **common,
            score=round(score, 6),
            criteria=criteria,
            rationale=f"{self.options.combine} of {len(ok)} member score(s)",
        )

    def score(self, requests: Sequence[ScoreRequest]) -> list[Judgement]:
        per_member = [member.score(requests) for _, member in self.members]
        return [self._one(r, [verdicts[i] for verdicts in per_member]) for i, r in enumerate(requests)]
