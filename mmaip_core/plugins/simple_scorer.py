"""A base for scorers that rate one answer at a time without calling a model.

Subclasses set ``name`` and implement :meth:`SimpleScorer.rate`; the base computes the fingerprint from the
options, turns every request into a :class:`~mmaip_core.records.Judgement`, and records a failed response or
an :class:`~mmaip_core.errors.InputError` as an error judgement, never as a score.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar

from mmaip_core.errors import InputError
from mmaip_core.plugins.kinds import PluginOptions, ScoreRequest
from mmaip_core.records import ErrorInfo, Judgement, ParseStatus, ScoreScale, VideoQA
from mmaip_core.store.hashing import stable_hash

__all__ = ["SimpleScorer"]


class SimpleScorer(ABC):
    """Scores answers one by one with :meth:`rate`; see the module docstring."""

    name: ClassVar[str]
    uses_frames = False
    model_id: str | None = None
    runtime_options: ClassVar[frozenset[str]] = frozenset()
    """Options that do not change scores (e.g. the device) and are left out of the fingerprint."""

    def __init__(self, options: PluginOptions, scale: ScoreScale) -> None:
        self.options = options
        self.scale = scale
        scored_by = options.model_dump(mode="json", exclude=set(self.runtime_options))
        self.fingerprint = stable_hash({"scorer": self.name, **scored_by})[:16]

    @abstractmethod
    def rate(self, sample: VideoQA, answer: str) -> tuple[float, str]:
        """Score ``answer`` (inside ``self.scale``) with a short rationale; raise InputError if it can't."""

    def _judgement(self, request: ScoreRequest) -> Judgement:
        common = {
            "response_id": request.response.id,
            "sample_id": request.sample.id,
            "scorer": self.name,
            "fingerprint": self.fingerprint,
            "scale": self.scale,
        }
        try:
            if request.response.text is None:
                raise InputError("the response has no text")
            score, rationale = self.rate(request.sample, request.response.text)
        except InputError as exc:
            error = ErrorInfo(error_class=type(exc).__name__, message=str(exc))
            return Judgement(**common, status=ParseStatus.ERROR, error=error)
        return Judgement(**common, score=round(score, 6), rationale=rationale)

    def score(self, requests: Sequence[ScoreRequest]) -> list[Judgement]:
        """One Judgement per request, in order."""
        return [self._judgement(r) for r in requests]
