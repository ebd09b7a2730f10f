"""Answer matching shared by the bundled exact-match scorer and evaluator.

Normalisation follows SQuAD's: lower case, punctuation and the articles a/an/the removed, white space
folded.
"""

from __future__ import annotations

import re
import string
from collections import Counter

__all__ = ["contains", "normalise", "token_f1"]

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans({c: " " for c in string.punctuation})


def normalise(text: str) -> str:
    """'The Red circle!' -> 'red circle'."""
    return " ".join(_ARTICLES.sub(" ", text.lower().translate(_PUNCT)).split())


def token_f1(prediction: str, truth: str) -> float:
    """F1 of the normalised tokens of ``prediction`` against ``truth`` (0 when either is empty)."""
    pred, gold = normalise(prediction).split(), normalise(truth).split()
    common = sum((Counter(pred) & Counter(gold)).values())
    if not pred or not gold or not common:
        return 0.0
    precision, recall = common / len(pred), common / len(gold)
    return 2 * precision * recall / (precision + recall)


def contains(prediction: str, truth: str) -> bool:
    """True when the normalised truth occurs as whole words in the normalised prediction."""
    gold = normalise(truth)
    return bool(gold) and f" {gold} " in f" {normalise(prediction)} "
