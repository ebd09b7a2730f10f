"""Trainers (the hook module of the ``trainers`` entry point): the ``video-dpo`` trainer runs one round of DPO on
video pairs for a Hugging Face video MLLM (Qwen2-VL / Qwen2.5-VL / Qwen3-VL, LLaVA-OneVision, LLaVA-NeXT-Video,
...). The round loop, reference updates and extrapolation are the core's (``mmaip train``).

- ``video_dpo/``: the ``video-dpo`` trainer, as TRL lays out its DPO trainer: ``config.py`` (the options,
  documented by group), ``trainer.py`` (the round trainer), ``loss.py`` (TRL's DPO objective).
- ``sft.py``: supervised fine-tuning (a Python function, no plugin); ``sft_run.py``: ``mmaip sft``, the same
  from a run config's samples, frames and ``sft`` section.
- What both use: ``common.py`` (the shared options and model helpers), ``data.py`` (tokenisation and video
  batches), ``features.py`` (vision features computed once).
"""

from __future__ import annotations

from typing import Any

from mmaip_core import TrainerSpec, hookimpl
from mmaip_plugins.trainers.video_dpo.config import VideoDpoOptions

__all__ = ["video_dpo_trainer"]


def video_dpo_trainer(options: VideoDpoOptions) -> Any:
    """Build the trainer (importing torch, transformers and TRL only now)."""
    from mmaip_plugins.trainers.video_dpo.trainer import VideoDpoTrainer

    return VideoDpoTrainer(options)


@hookimpl
def mmaip_trainers() -> list[TrainerSpec]:
    return [
        TrainerSpec(
            name="video-dpo",
            description="DPO on video (TRL losses; cached vision features, precomputed reference, LoRA or full)",
            options=VideoDpoOptions,
            factory=video_dpo_trainer,
        )
    ]
