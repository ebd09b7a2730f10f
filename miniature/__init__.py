"""The paper in miniature: a learnable synthetic testbed (ShapesQA), a zoo of fine-tuned tiny video MLLMs,
and the whole method (build, Iter-W2S-RLAIF training, evaluation) on a CPU in minutes.

Built on mmaip's public API and bundled plugins, as a third-party experiment would be."""

from mmaip_miniature.analysis import VariantResult
from mmaip_miniature.base import BaseChoice
from mmaip_miniature.experiment import (
    FULL,
    QUICK,
    MiniatureResults,
    MiniatureSettings,
    ModelResult,
    prepare_zoo,
    run_miniature,
)
from mmaip_miniature.recipe import RECIPE_GRID, RecipeChoice
from mmaip_miniature.report import results_table
from mmaip_miniature.stats import PairedTest
from mmaip_miniature.zoo import BASE_CANDIDATES, DEFAULT_ZOO, ZooMember, build_zoo

__all__ = [
    "BASE_CANDIDATES",
    "DEFAULT_ZOO",
    "FULL",
    "QUICK",
    "RECIPE_GRID",
    "BaseChoice",
    "MiniatureResults",
    "MiniatureSettings",
    "ModelResult",
    "PairedTest",
    "RecipeChoice",
    "VariantResult",
    "ZooMember",
    "build_zoo",
    "prepare_zoo",
    "results_table",
    "run_miniature",
]
