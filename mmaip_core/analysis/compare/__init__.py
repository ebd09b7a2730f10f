"""Scripted comparison of scoring functions on a finished build (``mmaip compare-scorers``)."""

from mmaip_core.analysis.compare.run import Comparison, compare_scorers, read_build, resolve_scorers
from mmaip_core.analysis.compare.stats import HumanAgreement, LengthBias, PairAgreement, QuestionAgreement, ScorerStats

__all__ = [
    "Comparison",
    "HumanAgreement",
    "LengthBias",
    "PairAgreement",
    "QuestionAgreement",
    "ScorerStats",
    "compare_scorers",
    "read_build",
    "resolve_scorers",
]
