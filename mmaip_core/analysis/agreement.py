"""Agreement statistics between two raters (scorers, judges, people), from scipy and scikit-learn.

Used by ``compare-scorers`` (scorer against scorer, and against human pairs) and by ``evaluate --rejudge``
(judge against judge). Every function returns ``None`` where the statistic is undefined (fewer than two
items, a constant rater) rather than a number that would look like a finding.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from itertools import combinations
from typing import Literal

from scipy import stats
from sklearn.metrics import cohen_kappa_score

__all__ = ["Preference", "cohen_kappa", "kendall", "pairwise_preferences", "pearson", "preference", "spearman"]

Preference = Literal["first", "second", "tie"]


def _defined(x: Sequence[float], y: Sequence[float]) -> bool:
    return len(x) == len(y) and len(x) >= 2 and len(set(x)) > 1 and len(set(y)) > 1


def _finite(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's rank correlation (ties get average ranks)."""
    return _finite(stats.spearmanr(x, y).statistic) if _defined(x, y) else None


def kendall(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Kendall's tau-b (corrected for ties)."""
    return _finite(stats.kendalltau(x, y).statistic) if _defined(x, y) else None


def pearson(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Pearson's correlation."""
    return _finite(stats.pearsonr(x, y).statistic) if _defined(x, y) else None


def cohen_kappa(a: Sequence[str], b: Sequence[str]) -> float | None:
    """Cohen's kappa between two raters' labels of the same items; None when chance agreement is 1 (both
    raters used one and the same label throughout, so kappa is 0/0)."""
    if len(a) != len(b) or not a:
        return None
    if len(set(a) | set(b)) < 2:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return _finite(cohen_kappa_score(list(a), list(b)))


def preference(first: float, second: float) -> Preference:
    """Which of two scores a rater prefers."""
    return "first" if first > second else "second" if second > first else "tie"


def pairwise_preferences(scores: Sequence[float]) -> list[Preference]:
    """The preference between every two answers of one question, ``(i, j)`` for ``i < j`` in order: the
    chosen/rejected decision a rater makes for each possible pair."""
    return [preference(scores[i], scores[j]) for i, j in combinations(range(len(scores)), 2)]
