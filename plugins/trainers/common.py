"""What the ``video-dpo`` trainer and supervised fine-tuning (``sft.py``) share besides the data (``data.py``)
and the vision features (``features.py``): the options every trainer of a Hugging Face video MLLM has, and the
model helpers both use. Nothing here imports torch at import time (the hook module imports the options)."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Literal

from pydantic import Field

from mmaip_core import VISION_PATTERN, PluginOptions, TrainingError

__all__ = ["VideoTrainingOptions", "check_finite", "is_vision", "large_blocks_mapped", "resolve_dtype"]


class VideoTrainingOptions(PluginOptions):
    """The options every trainer of a Hugging Face video MLLM shares: loading the model, the prompt (the ``hf``
    generator's), the vision tower, the optimiser and the batches. Grouped as in the ``video-dpo`` trainer's
    config (``video_dpo/config.py``), which documents each group."""

    # Model and precision
    revision: str | None = Field(default=None, description="Hub revision (branch, tag or commit) of the model.")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        default="auto", description="Weights dtype; auto: bfloat16 on a GPU that supports it, else float32."
    )
    device: str = Field(default="auto", description="cpu, cuda or auto (the accelerate device).")
    attn_implementation: str | None = Field(default=None, description="e.g. sdpa or flash_attention_2.")
    trust_remote_code: bool = Field(default=False, description="Allow the model's own code from the Hub.")
    freeze_vision: bool = Field(
        default=True,
        description="Freeze the vision tower and projector; then each video is encoded once and its features reused.",
    )
    gradient_checkpointing: bool = Field(default=False, description="Recompute activations in the backward pass.")

    # Optimisation
    learning_rate: float = Field(default=1e-6, gt=0, description="AdamW's peak learning rate.")
    lr_scheduler_type: str = Field(default="linear", description="A transformers scheduler name (get_scheduler).")
    warmup_ratio: float = Field(default=0.1, ge=0, le=1, description="Share of the optimizer steps spent warming up.")
    weight_decay: float = Field(default=0.0, ge=0, description="AdamW's weight decay.")
    max_grad_norm: float = Field(default=1.0, gt=0, description="Gradients are clipped to this norm.")
    epochs: int = Field(default=1, ge=1, description="Passes over the training data.")
    batch_size: int = Field(default=1, ge=1, description="Examples (DPO: pairs) per device per micro-batch.")
    gradient_accumulation_steps: int = Field(default=1, ge=1, description="Micro-batches per optimizer step.")
    seed: int = Field(default=0, description="Seed of the batch order (and, for SFT, of transformers' Trainer).")

    # Data and frames
    system_prompt: str | None = Field(default=None, description="As for the hf generator: the same prompt format.")
    max_length: int | None = Field(
        default=None,
        ge=8,
        description="Longest prompt+video+answer in tokens; longer examples are reported and left out.",
    )

    # Logging
    report_to: list[str] = Field(default_factory=list, description="accelerate trackers, e.g. [tensorboard].")


def is_vision(name: str) -> bool:
    """Whether a parameter belongs to the vision tower or projector."""
    return bool(VISION_PATTERN.search(name))


def resolve_dtype(dtype: str) -> str:
    """``auto``: bfloat16 on a GPU that supports it, else float32."""
    import torch

    if dtype != "auto":
        return dtype
    return "bfloat16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "float32"


def check_finite(model: Any) -> None:
    """No checkpoint may hold a NaN or infinity."""
    import torch

    for name, param in model.named_parameters():
        if param.requires_grad and not torch.isfinite(param).all():
            raise TrainingError(f"parameter {name} is not finite; no checkpoint was written")


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
"""glibc's ``mallopt`` parameters: the free memory at the top of the heap that is handed back to the system, and
the size from which a block gets a mapping of its own."""
MMAP_THRESHOLD_MAX = 32 * 2**20
"""The largest mapping threshold glibc sets by itself (64-bit); it then keeps twice that at the heap's top."""


@contextmanager
def large_blocks_mapped(threshold: int = 128 * 2**10) -> Iterator[None]:
    """Inside: glibc's malloc gives every block of ``threshold`` bytes or more a mapping of its own, returned to the
    system when it is freed. After: the thresholds glibc reaches by itself once large blocks have been freed
    (blocks under :data:`MMAP_THRESHOLD_MAX` from the heap). Nothing changes with other C libraries.

    For loops that make and free large blocks (a video's pixels) while keeping small objects (token ids): from the
    heap, each freed block is split by the small objects kept after it and cannot hold the next large one, so the
    heap, and the resident memory as later work reuses its holes, grew with the number of videos although no
    video was kept (docs/benchmarks.md, "Training memory")."""
    mallopt = _mallopt()
    if mallopt is not None:
        mallopt(M_MMAP_THRESHOLD, threshold)
    try:
        yield
    finally:
        if mallopt is not None:
            mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX)
            mallopt(M_TRIM_THRESHOLD, 2 * MMAP_THRESHOLD_MAX)


@functools.cache
def _mallopt() -> Callable[[int, int], int] | None:
    try:
        mallopt: Callable[[int, int], int] = ctypes.CDLL(ctypes.util.find_library("c")).mallopt
    except (OSError, AttributeError, TypeError):  # no C library found, or one without mallopt (not glibc)
        return None
    return mallopt
