"""Options of the ``video-dpo`` trainer (the run config's ``train.trainer`` block), as TRL's ``dpo_config.py``
beside its ``dpo_trainer.py``. The DPO keys use TRL's ``DPOConfig`` names and defaults (one exception:
``f_alpha_divergence_coef``, below)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, model_validator

from mmaip_core import HubOrFolder, PluginOptions
from mmaip_plugins.trainers.common import VideoTrainingOptions
from mmaip_plugins.zoo.tiny import TinyFamily

__all__ = ["LOSS_TYPES", "LoraOptions", "SmokeModel", "VideoDpoOptions", "VideoTrainingOptions"]

LOSS_TYPES = Literal[
    "sigmoid",
    "hinge",
    "ipo",
    "exo_pair",
    "nca_pair",
    "robust",
    "bco_pair",
    "sppo_hard",
    "aot",
    "aot_unpaired",
    "apo_zero",
    "apo_down",
    "discopop",
    "sft",
    "sigmoid_norm",
]

F_DIVERGENCE_LOSSES = {"sigmoid", "sigmoid_norm", "hinge", "ipo", "exo_pair", "robust", "discopop", "sft"}
"""The loss types built on the chosen-rejected reward difference: the only ones with an f-divergence (as in TRL)."""


def _sigmoid_loss() -> list[LOSS_TYPES]:
    """TRL's default loss_type (a function: mypy infers list[str] for a lambda there)."""
    return ["sigmoid"]


class LoraOptions(PluginOptions):
    """LoRA (peft) on the language model; the vision tower and projector are never adapted."""

    r: int = Field(default=16, ge=1, description="Rank of the adapter.")
    alpha: int = Field(default=32, ge=1, description="lora_alpha.")
    dropout: float = Field(default=0.0, ge=0, lt=1, description="lora_dropout.")
    target_modules: str = Field(
        default=r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)$",
        description="Regex of the module names to adapt (peft target_modules).",
    )


class SmokeModel(PluginOptions):
    """A tiny random-initialised model built locally (tests and the offline demo)."""

    family: TinyFamily = Field(default="qwen2-vl", description="Architecture of the tiny model.")
    seed: int = Field(default=0, description="Seed of its random weights.")
    cache_dir: Path | None = Field(default=None, description="Where tiny models are built (default: mmaip's cache).")


class VideoDpoOptions(VideoTrainingOptions):
    """Options of the ``video-dpo`` trainer (``video_dpo/trainer.py``), by group. The options marked *shared*
    are :class:`VideoTrainingOptions`' (``trainers/common.py``), which supervised fine-tuning (``SftOptions``)
    has too; the trainer's fingerprint, stored in ``manifest.json`` and checked by ``--resume``, hashes them all.

    Model and precision
        ``model``: Hub id or folder of the starting (SFT) model; or ``smoke``: a tiny random model built locally
        (``family``, ``seed``, ``cache_dir``); exactly one of the two. ``revision``, ``trust_remote_code``
        (*shared*): how the model is loaded. ``dtype`` (*shared*): the trained weights' dtype, ``auto``: float32
        master weights; ``bfloat16``/``float16`` are pure low-precision weights (no float32 copy: small updates
        are lost), only when asked for. ``mixed_precision`` (*shared*: ``no``, ``bf16``, ``fp16``; ``auto``: bf16
        on a GPU that supports it, else no): accelerate's autocast of the forward passes. ``device`` (*shared*:
        ``cpu``, ``cuda`` or ``auto``), ``attn_implementation`` (*shared*).
        ``lora``: train a LoRA adapter on the language model (``r``, ``alpha``, ``dropout``,
        ``target_modules``) instead of all weights; the round saves the adapter and the merged model.
        ``freeze_vision`` (*shared*, default true): the vision tower and projector are frozen and each video is
        encoded once, its features cached under ``OUT/cache/vision/``; with ``train_projector`` (*shared*) the
        projector trains and the frozen tower runs in each step. ``gradient_checkpointing`` (*shared*).

    Optimisation (all *shared*)
        AdamW with ``learning_rate`` (1e-6, TRL's) and ``learning_rates`` by module (``vision_tower``,
        ``projector``, ``language_model`` or a dotted module name; a parameter group each), ``weight_decay``,
        clipping to ``max_grad_norm``; the ``lr_scheduler_type`` schedule with ``warmup_ratio`` of the steps
        warming up; ``epochs`` passes over the round's pairs, ``batch_size`` pairs per device per micro-batch, ``gradient_accumulation_steps``
        micro-batches per optimizer step. ``seed``: the batch order is a pure function of (seed, round, epoch).

    DPO loss (TRL's ``DPOTrainer._compute_loss``, with TRL's names)
        ``beta``: deviation from the reference (IPO: its tau). ``loss_type``: one or more of :data:`LOSS_TYPES`,
        combined with ``loss_weights`` (one per type; default all 1). ``label_smoothing``: robust DPO's flip
        probability, EXO's epsilon (``exo_pair`` needs it above 0). ``f_divergence_type`` (f-DPO; other than
        ``reverse_kl`` only for the loss types of :data:`F_DIVERGENCE_LOSSES`) with ``f_alpha_divergence_coef``
        for ``alpha_divergence`` (default 1.0 here; TRL's is 0.5). ``ld_alpha``: LD-DPO's weight of the verbose
        tokens. ``use_weighting``: WPO weighting (not with the ``aot`` losses). ``discopop_tau``: DiscoPOP's
        temperature.

    Data and frames (*shared*)
        The frames come from the run config's ``frames`` block; the prompt is the ``hf`` generator's, with
        ``system_prompt``. ``max_length``: the longest prompt+video+answer in tokens; a longer pair is left out
        and reported, never truncated.

    Checkpoints and logging
        ``save_steps``: optimizer steps between step checkpoints (resume continues from the last complete one);
        ``keep_step_checkpoints``: how many complete ones a round keeps; ``max_bad_steps``: non-finite steps in a
        row that stop the run. ``report_to`` (*shared*): accelerate trackers, e.g. ``[tensorboard]``.
    """

    # Model and precision (the rest are VideoTrainingOptions')
    model: Annotated[str | None, HubOrFolder()] = Field(
        default=None, description="Hub id or folder of the starting (SFT) model."
    )
    smoke: SmokeModel | None = Field(default=None, description="Train a tiny random model instead of `model`.")
    lora: LoraOptions | None = Field(default=None, description="Train a LoRA adapter instead of all weights.")
    shared_prefix: bool = Field(
        default=True,
        description="Compute a pair's prompt and video once for both answers (a KV cache; same log-probs); "
        "with gradient_checkpointing or under FSDP/DeepSpeed each sequence is computed in full.",
    )

    # DPO loss (TRL DPOConfig names and defaults)
    beta: float = Field(default=0.1, gt=0, description="Deviation from the reference (higher: less); IPO's tau.")
    loss_type: list[LOSS_TYPES] = Field(default_factory=_sigmoid_loss, description="TRL loss types, combined.")
    loss_weights: list[float] | None = Field(default=None, description="One weight per loss_type (default: all 1).")
    label_smoothing: float = Field(
        default=0.0, ge=0, lt=0.5, description="Robust DPO's label-flip probability; EXO's epsilon."
    )
    f_divergence_type: Literal["reverse_kl", "forward_kl", "js_divergence", "alpha_divergence"] = Field(
        default="reverse_kl", description="f-DPO regulariser between policy and reference."
    )
    f_alpha_divergence_coef: float = Field(default=1.0, description="Alpha of alpha_divergence (TRL's default: 0.5).")
    ld_alpha: float | None = Field(default=None, ge=0, le=1, description="LD-DPO's weight of the verbose tokens.")
    use_weighting: bool = Field(default=False, description="WPO weighting of the pairs.")
    discopop_tau: float = Field(default=0.05, description="DiscoPOP's temperature.")

    # Checkpoints and logging (report_to is VideoTrainingOptions')
    save_steps: int = Field(default=50, ge=1, description="Optimizer steps between step checkpoints (resume).")
    keep_step_checkpoints: int = Field(default=1, ge=1, description="Complete step checkpoints kept in a round.")
    max_bad_steps: int = Field(default=3, ge=1, description="Non-finite steps in a row that stop the run.")

    @model_validator(mode="after")
    def _check(self) -> VideoDpoOptions:
        if (self.model is None) == (self.smoke is None):
            raise ValueError("give exactly one of `model` and `smoke`")
        if self.loss_weights is not None and len(self.loss_weights) != len(self.loss_type):
            raise ValueError(f"loss_weights needs one weight per loss_type ({len(self.loss_type)})")
        if "exo_pair" in self.loss_type and self.label_smoothing == 0:
            raise ValueError("exo_pair needs label_smoothing > 0 (the EXO paper suggests 1e-3)")
        if self.f_divergence_type != "reverse_kl" and not set(self.loss_type) <= F_DIVERGENCE_LOSSES:
            raise ValueError(
                f"f_divergence_type {self.f_divergence_type} works only with loss types {sorted(F_DIVERGENCE_LOSSES)}"
            )
        if self.use_weighting and {"aot", "aot_unpaired"} & set(self.loss_type):
            raise ValueError("use_weighting is not available for aot losses (as in TRL)")
        return self
