"""Options of the ``video-dpo`` trainer. The DPO keys use TRL's ``DPOConfig`` names and defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from mmaip_core import PluginOptions
from mmaip_plugins.zoo.tiny import TinyFamily

__all__ = ["LoraOptions", "SmokeModel", "VideoDpoOptions", "VideoTrainingOptions"]

LOSS_TYPES = Literal[
    "sigmoid", "hinge", "ipo", "exo_pair", "nca_pair", "robust", "bco_pair", "sppo_hard", "aot", "aot_unpaired",
    "apo_zero", "apo_down", "discopop", "sft", "sigmoid_norm",
]  # fmt: skip


def _sigmoid_loss() -> list[LOSS_TYPES]:
    """TRL's default loss_type (a function: mypy infers list[str] for a lambda there)."""
    return ["sigmoid"]


class LoraOptions(PluginOptions):
    """LoRA (peft) on the language model; the vision tower and projector are never adapted."""

    r: int = Field(default=16, ge=1)
    alpha: int = Field(default=32, ge=1, description="lora_alpha.")
    dropout: float = Field(default=0.0, ge=0, lt=1)
    target_modules: str = Field(
        default=r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)$",
        description="Regex of the module names to adapt (peft target_modules).",
    )


class SmokeModel(PluginOptions):
    """A tiny random-initialised model built locally (tests and the offline demo)."""

    family: TinyFamily = "qwen2-vl"
    seed: int = 0
    cache_dir: Path | None = None


class VideoTrainingOptions(PluginOptions):
    """What every trainer of a Hugging Face video MLLM shares: loading the model, the prompt (the ``hf``
    generator's), the vision tower, the optimiser and the batches."""

    revision: str | None = None
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        default="auto", description="Weights dtype; auto: bfloat16 on a GPU that supports it, else float32."
    )
    device: str = Field(default="auto", description="cpu, cuda or auto (the accelerate device).")
    attn_implementation: str | None = Field(default=None, description="e.g. sdpa or flash_attention_2.")
    trust_remote_code: bool = False
    system_prompt: str | None = Field(default=None, description="As for the hf generator: the same prompt format.")
    freeze_vision: bool = Field(
        default=True,
        description="Freeze the vision tower and projector; then each video is encoded once and its features reused.",
    )
    gradient_checkpointing: bool = False
    # optimisation
    learning_rate: float = Field(default=1e-6, gt=0)
    lr_scheduler_type: str = "linear"
    warmup_ratio: float = Field(default=0.1, ge=0, le=1)
    weight_decay: float = Field(default=0.0, ge=0)
    max_grad_norm: float = Field(default=1.0, gt=0)
    epochs: int = Field(default=1, ge=1, description="Passes over the training data.")
    batch_size: int = Field(default=1, ge=1, description="Examples (DPO: pairs) per device per micro-batch.")
    gradient_accumulation_steps: int = Field(default=1, ge=1)
    max_length: int | None = Field(
        default=None, ge=8, description="Longest prompt+video+answer in tokens; longer examples are reported and left out."
    )
    seed: int = 0
    report_to: list[str] = Field(default_factory=list, description="accelerate trackers, e.g. [tensorboard].")


class VideoDpoOptions(VideoTrainingOptions):
    model: str | None = Field(default=None, description="Hub id or folder of the starting (SFT) model.")
    smoke: SmokeModel | None = Field(default=None, description="Train a tiny random model instead of `model`.")
    lora: LoraOptions | None = Field(default=None, description="Train a LoRA adapter instead of all weights.")
    # DPO objective (TRL DPOConfig names and defaults)
    beta: float = Field(default=0.1, gt=0)
    loss_type: list[LOSS_TYPES] = Field(default_factory=_sigmoid_loss)
    loss_weights: list[float] | None = None
    label_smoothing: float = Field(default=0.0, ge=0, lt=0.5)
    f_divergence_type: Literal["reverse_kl", "forward_kl", "js_divergence", "alpha_divergence"] = "reverse_kl"
    f_alpha_divergence_coef: float = 1.0
    ld_alpha: float | None = Field(default=None, ge=0, le=1)
    use_weighting: bool = False
    discopop_tau: float = 0.05
    # step checkpoints and failures
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
        f_ok = {"sigmoid", "sigmoid_norm", "hinge", "ipo", "exo_pair", "robust", "discopop", "sft"}
        if self.f_divergence_type != "reverse_kl" and not set(self.loss_type) <= f_ok:
            raise ValueError(f"f_divergence_type {self.f_divergence_type} works only with loss types {sorted(f_ok)}")
        if self.use_weighting and {"aot", "aot_unpaired"} & set(self.loss_type):
            raise ValueError("use_weighting is not available for aot losses (as in TRL)")
        return self
