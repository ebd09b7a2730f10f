"""What the ``video-dpo`` trainer and supervised fine-tuning (``sft.py``) share besides the data (``data.py``)
and the vision features (``features.py``): the options every trainer of a Hugging Face video MLLM has, and the
model helpers both use. Nothing here imports torch at import time (the hook module imports the options)."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Literal

from pydantic import Field, model_validator

from mmaip_core import VISION_PATTERN, PluginOptions, TrainingError

__all__ = [
    "MODULE_GROUPS",
    "VideoTrainingOptions",
    "caches_vision",
    "check_finite",
    "freeze_vision_parts",
    "is_projector",
    "is_vision",
    "large_blocks_mapped",
    "parameter_groups",
    "resolve_dtype",
    "resolve_mixed_precision",
]

PROJECTOR_PATTERN = re.compile(
    r"(^|\.)(multi_modal_projector|mm_projector|vision_resampler|image_newline|visual\.merger|"
    r"visual\.deepstack_merger_list)(\.|$)"
)
"""Parameter names of the projector (vision features -> language model) in the bundled families: LLaVA's
``multi_modal_projector`` (and ``image_newline``), Qwen-VL's ``visual.merger`` (Qwen3-VL: and its deepstack
mergers)."""


class VideoTrainingOptions(PluginOptions):
    """The options every trainer of a Hugging Face video MLLM shares: loading the model, the prompt (the ``hf``
    generator's), the vision tower, the optimiser and the batches. Grouped as in the ``video-dpo`` trainer's
    config (``video_dpo/config.py``), which documents each group."""

    # Model and precision
    revision: str | None = Field(default=None, description="Hub revision (branch, tag or commit) of the model.")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        default="auto",
        description="Dtype of the trained weights; auto: float32 (master weights). bfloat16/float16: pure "
        "low-precision weights without an fp32 copy (less memory; small updates are lost in rounding).",
    )
    mixed_precision: Literal["auto", "no", "bf16", "fp16"] = Field(
        default="auto",
        description="Autocast of the forward pass over the weights (accelerate's); auto: bf16 on a GPU that "
        "supports it, else no.",
    )
    device: str = Field(default="auto", description="cpu, cuda or auto (the accelerate device).")
    attn_implementation: str | None = Field(default=None, description="e.g. sdpa or flash_attention_2.")
    trust_remote_code: bool = Field(default=False, description="Allow the model's own code from the Hub.")
    freeze_vision: bool = Field(
        default=True,
        description="Freeze the vision tower and projector; then each video is encoded once and its features reused.",
    )
    train_projector: bool = Field(
        default=False,
        description="With the vision tower frozen, train the projector (pixels go through the frozen tower each "
        "step); needs freeze_vision (the default) left on.",
    )
    gradient_checkpointing: bool = Field(default=False, description="Recompute activations in the backward pass.")

    # Optimisation
    learning_rate: float = Field(default=1e-6, gt=0, description="AdamW's peak learning rate.")
    learning_rates: dict[str, float] = Field(
        default_factory=dict,
        description="Peak learning rate by module: vision_tower, projector, language_model, or a dotted module "
        "name (e.g. lm_head); the longest match wins, other parameters get learning_rate.",
    )
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

    @model_validator(mode="after")
    def _check_modules(self) -> VideoTrainingOptions:
        if self.train_projector and not self.freeze_vision:
            raise ValueError("train_projector needs freeze_vision: true (freeze_vision: false trains the projector)")
        for key, rate in self.learning_rates.items():
            if not rate > 0:
                raise ValueError(f"learning_rates.{key} must be > 0, got {rate}")
        return self


MODULE_GROUPS: dict[str, Callable[[str], bool]] = {
    "vision_tower": lambda name: is_vision(name) and not is_projector(name),
    "projector": lambda name: is_projector(name),
    "language_model": lambda name: not is_vision(name),
}
"""The named modules of ``learning_rates``, by parameter name, whatever each family calls them."""


def is_vision(name: str) -> bool:
    """Whether a parameter belongs to the vision tower or projector."""
    return bool(VISION_PATTERN.search(name))


def is_projector(name: str) -> bool:
    """Whether a parameter belongs to the projector (a part of :func:`is_vision`'s)."""
    return bool(PROJECTOR_PATTERN.search(name))


def resolve_dtype(dtype: str) -> str:
    """``auto``: float32, the master weights that mixed precision autocasts from (as transformers' Trainer)."""
    return "float32" if dtype == "auto" else dtype


def resolve_mixed_precision(mixed_precision: str, device: str) -> str:
    """``auto``: ``bf16`` on a GPU that supports it (unless ``device`` is cpu), else ``no``. ``fp16`` needs a GPU
    (its loss scaling is CUDA's)."""
    import torch

    gpu = device != "cpu" and torch.cuda.is_available()
    if mixed_precision == "fp16" and not gpu:
        raise TrainingError("mixed_precision: fp16 needs a GPU; on the CPU use bf16 or no")
    if mixed_precision != "auto":
        return mixed_precision
    return "bf16" if gpu and torch.cuda.is_bf16_supported() else "no"


def caches_vision(options: VideoTrainingOptions) -> bool:
    """Whether the whole vision part (tower and projector) is frozen, so its outputs can be computed once."""
    return options.freeze_vision and not options.train_projector


def freeze_vision_parts(model: Any, options: VideoTrainingOptions) -> None:
    """``freeze_vision``: the tower frozen, and the projector too unless ``train_projector``."""
    if not options.freeze_vision:
        return
    for name, param in model.named_parameters():
        if is_vision(name) and not (options.train_projector and is_projector(name)):
            param.requires_grad_(False)


def _matches(key: str, name: str) -> bool:
    """Whether parameter ``name`` is in module ``key`` of ``learning_rates``: a named group, or a dotted module
    name found whole in the parameter's name."""
    group = MODULE_GROUPS.get(key)
    return group(name) if group is not None else bool(re.search(rf"(^|\.){re.escape(key)}(\.|$)", name))


def _rate_of(name: str, options: VideoTrainingOptions) -> float:
    """The learning rate of parameter ``name``: its longest matching ``learning_rates`` key's, else the default."""
    keys = [key for key in options.learning_rates if _matches(key, name)]
    return options.learning_rates[max(keys, key=len)] if keys else options.learning_rate


def parameter_groups(model: Any, options: VideoTrainingOptions) -> list[dict[str, Any]]:
    """The trainable parameters as optimiser parameter groups, one per learning rate (``learning_rates``);
    a key that matches no trainable parameter is an error naming it."""
    trainable = [(name, param) for name, param in model.named_parameters() if param.requires_grad]
    for key in options.learning_rates:
        if not any(_matches(key, name) for name, _ in trainable):
            raise TrainingError(f"learning_rates: {key!r} matches no trainable parameter")
    groups: dict[float, list[Any]] = {}
    for name, param in trainable:
        groups.setdefault(_rate_of(name, options), []).append(param)
    return [{"params": params, "lr": lr} for lr, params in groups.items()]


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
