"""TRL's own DPO objective, driven by mmaip's training loop.

TRL 1.16 keeps its loss types, beta, label smoothing, f-divergences, LD-DPO, WPO weighting and the ``sft``
auxiliary loss inside ``DPOTrainer._compute_loss`` (and the reference pass in ``compute_ref_log_probs``);
there is no standalone function. Rather than copy that code, :class:`TrlDpoObjective` provides the handful
of attributes those two methods read and calls them as they are, so every TRL loss type is available and
stays TRL's. The metrics TRL logs (rewards, margins, accuracies, log-probs) come back with each loss.
"""

from __future__ import annotations

from collections import defaultdict
from types import SimpleNamespace
from typing import Any

import torch
from trl import DPOTrainer

from mmaip_plugins.trainers.video_dpo.config import VideoDpoOptions

__all__ = ["FUSED_OUTPUTS", "TrlDpoObjective"]

FUSED_OUTPUTS = ("log_probs", "entropy", "mean_logits", "is_top1")
"""Per-token fields TRL's fused LM head must compute for the DPO loss and its metrics."""


class TrlDpoObjective:
    """Calls ``DPOTrainer._compute_loss`` with mmaip's options; ``ref_model=None`` means the batches carry
    precomputed reference log-probs (``ref_chosen_logps``/``ref_rejected_logps``)."""

    def __init__(self, options: VideoDpoOptions, accelerator: Any, ref_model: Any = None) -> None:
        # The attribute names below are the ones DPOTrainer's methods read.
        self.accelerator = accelerator
        self.ref_model = ref_model
        self.precompute_ref_logps = ref_model is None
        self.beta = options.beta
        self.loss_types = list(options.loss_type)
        self.loss_weights = options.loss_weights or [1.0] * len(self.loss_types)
        self.label_smoothing = options.label_smoothing
        self.f_divergence_type = options.f_divergence_type
        self.f_alpha_divergence_coef = options.f_alpha_divergence_coef
        self.ld_alpha = options.ld_alpha
        self.use_weighting = options.use_weighting
        self.aux_loss_enabled = False
        self.args = SimpleNamespace(discopop_tau=options.discopop_tau, gradient_checkpointing_kwargs=None)
        self._metrics: dict[str, defaultdict[str, list[float]]] = {
            "train": defaultdict(list),
            "eval": defaultdict(list),
        }
        self._total_train_tokens = 0
        self._tp_size = 1
        self.model: Any = None

    @property
    def fused_outputs(self) -> tuple[str, ...]:
        return FUSED_OUTPUTS + (("log_sum_sq_probs",) if self.use_weighting else ())

    def loss(self, model: Any, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        """The DPO loss of ``batch`` (rows: chosen then rejected) and TRL's metrics for it."""
        self.model = model
        for metrics in self._metrics.values():
            metrics.clear()
        loss = DPOTrainer._compute_loss(self, model, batch, return_outputs=False)  # type: ignore[arg-type]
        mode = "train" if model.training else "eval"
        return loss, {name: values[-1] for name, values in self._metrics[mode].items() if values}

    def reference_logps(self, model: Any, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """Chosen and rejected log-probs under the reference: ``model`` itself before training (a LoRA
        model with its adapter disabled), as TRL computes them."""
        self.model = model
        chosen, rejected = DPOTrainer.compute_ref_log_probs(self, model, batch)  # type: ignore[arg-type]
        return chosen, rejected
