"""What the ``video-dpo`` trainer and supervised fine-tuning (``sft.py``) share besides the data (``data.py``)
and the vision features (``features.py``): the options every trainer of a Hugging Face video MLLM has, and the
model helpers both use. Nothing here imports torch at import time (the hook module imports the options)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from mmaip_core import VISION_PATTERN, PluginOptions, TrainingError

__all__ = ["VideoTrainingOptions", "check_finite", "is_vision", "resolve_dtype"]


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
