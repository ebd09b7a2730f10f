"""Choosing the base: a model that looks at the video but is weak, by a written rule on validation numbers.

Every candidate (and every other zoo member) answers the *validation* questions (the build's questions on the
validation videos, :mod:`mmaip_miniature.pairs`: carved from train, never held-out or ood) with their real
frames and with shuffled ones (:mod:`mmaip_miniature.video_use`). **The rule** (:func:`choose_base`): among the
candidates, the weakest (lowest validation accuracy; the first listed on a tie) whose video gap (real minus
shuffled, 95% bootstrap interval over videos) has a lower bound above 0 and whose accuracy is at least
``margin_points`` below the strongest other zoo member's. If no candidate qualifies, the first candidate is the
base and the choice says so (``qualified`` is empty).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from pydantic import BaseModel, Field

from mmaip_core import EvalRecord
from mmaip_core.analysis.metrics import PairedDifference, paired_difference, summarize
from mmaip_core.store.files import write_text_atomic
from mmaip_miniature.video_use import frame_control_benchmarks

__all__ = ["VALIDATION_SPLIT", "BaseChoice", "Candidate", "candidate_numbers", "choose_base", "validation_benchmarks"]

VALIDATION_SPLIT = "validation"


class Candidate(BaseModel):
    """A model's validation numbers: exact-match accuracy on the real frames, and its video gap."""

    name: str
    accuracy: float | None = Field(description="Validation accuracy on the real frames (0-1).")
    gap: PairedDifference = Field(description="Validation accuracy on real minus on shuffled frames, per question.")


class BaseChoice(BaseModel):
    """The base the rule chose, with every number it looked at (``results.json`` → ``base``)."""

    rule: str
    margin_points: float
    candidates: list[Candidate]
    others: list[Candidate] = Field(description="The other zoo members: the strongest sets the accuracy bar.")
    qualified: list[str] = Field(description="The candidates that pass the rule, in the candidates' order.")
    chosen: str


RULE = (
    "the weakest candidate (validation accuracy) whose real-minus-shuffled video gap on validation has a 95% lower "
    "bound above 0 and whose accuracy is at least {margin:g} points below the strongest other zoo member's; "
    "without one, the first candidate"
)


def validation_benchmarks(data: Path, build_rows: Path, videos: set[str]) -> dict[str, Path]:
    """``data/validation.jsonl`` (the rows of ``build_rows`` on ``videos``) and its frame controls, by name."""
    rows = [line for line in build_rows.read_text().splitlines() if line.strip()]
    kept = [line for line in rows if json.loads(line)["video"] in videos]
    path = data / f"{VALIDATION_SPLIT}.jsonl"
    write_text_atomic(path, "".join(line + "\n" for line in kept))
    controls = frame_control_benchmarks(data, VALIDATION_SPLIT)
    return {VALIDATION_SPLIT: path, **{f"{VALIDATION_SPLIT}-{c}": p for c, p in controls.items()}}


def candidate_numbers(groups: Mapping[tuple[str, str], Sequence[EvalRecord]], name: str) -> Candidate:
    """``name``'s validation accuracy and video gap from exact-match records grouped by (model, benchmark)."""
    real = groups.get((name, VALIDATION_SPLIT), [])
    shuffled = groups.get((name, f"{VALIDATION_SPLIT}-shuffled"), [])
    return Candidate(name=name, accuracy=summarize(real).ratio.value, gap=paired_difference(real, shuffled))


def _looks(c: Candidate) -> bool:
    return c.gap.ratio.low is not None and c.gap.ratio.low > 0


def choose_base(candidates: Sequence[Candidate], others: Sequence[Candidate], margin_points: float) -> BaseChoice:
    """The rule of this module's docstring; ``candidates`` in order of preference on a tie."""
    if not candidates:
        raise ValueError("choosing a base needs at least one candidate")
    strongest = max((o.accuracy for o in others if o.accuracy is not None), default=None)
    bar = None if strongest is None else strongest - margin_points / 100
    qualified = [
        c for c in candidates if _looks(c) and c.accuracy is not None and (bar is None or c.accuracy <= bar + 1e-9)
    ]
    chosen = min(qualified, key=lambda c: c.accuracy or 0.0) if qualified else candidates[0]
    return BaseChoice(
        rule=RULE.format(margin=margin_points),
        margin_points=margin_points,
        candidates=list(candidates),
        others=list(others),
        qualified=[c.name for c in qualified],
        chosen=chosen.name,
    )
