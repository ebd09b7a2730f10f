"""The paper in miniature: a learnable synthetic testbed (ShapesQA), a zoo of fine-tuned tiny video MLLMs,
and the whole method (build, Iter-W2S-RLAIF training, evaluation) on a CPU in minutes.

Built on mmaip's public API and bundled plugins, as a third-party experiment would be."""

from mmaip_miniature.experiment import (
    QUICK,
    MiniatureResults,
    MiniatureSettings,
    ModelResult,
    prepare_zoo,
    run_miniature,
)
from mmaip_miniature.report import results_table
from mmaip_miniature.zoo import DEFAULT_ZOO, ZooMember, build_zoo

__all__ = [
    "DEFAULT_ZOO",
    "QUICK",
    "MiniatureResults",
    "MiniatureSettings",
    "ModelResult",
    "ZooMember",
    "build_zoo",
    "prepare_zoo",
    "results_table",
    "run_miniature",
]
