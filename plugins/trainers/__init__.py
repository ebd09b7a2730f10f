"""Trainers: the ``video-dpo`` trainer runs one round of DPO on video pairs for a Hugging Face video MLLM
(Qwen2-VL / Qwen2.5-VL / Qwen3-VL, LLaVA-OneVision, LLaVA-NeXT-Video, ...). The round loop, reference
updates and extrapolation are the core's (``mmaip train``)."""

from __future__ import annotations

from typing import Any

from mmaip_core import TrainerSpec, hookimpl
from mmaip_plugins.trainers.options import VideoDpoOptions

__all__ = ["video_dpo"]


def video_dpo(options: VideoDpoOptions) -> Any:
    """Build the trainer (importing torch, transformers and TRL only now)."""
    from mmaip_plugins.trainers.trainer import VideoDpoTrainer

    return VideoDpoTrainer(options)


@hookimpl
def mmaip_trainers() -> list[TrainerSpec]:
    return [
        TrainerSpec(
            name="video-dpo",
            description="DPO on video (TRL losses; cached vision features, precomputed reference, LoRA or full)",
            options=VideoDpoOptions,
            factory=video_dpo,
        )
    ]
