"""The prompt and video of a preference pair computed once for both answers.

A pair's chosen and rejected sequences share their prompt (video included); the standard DPO step runs both in
full. Here the prefix of a pair (its prompt but the last token) runs once, with a KV cache, and both answers
continue from that cache in one batched call: rows ``chosen_0, rejected_0, chosen_1, ...`` (the cache expanded to
two rows per pair). Each answer row starts with the prompt's last token, whose hidden state predicts the first
answer token, so TRL's fused LM head (``add_fused_lm_head``) scores every answer token in the continuation call.
The per-token outputs are then put where the full computation has them (rows: chosen then rejected, columns of
the full sequence), so TRL's DPO objective reads them unchanged, every loss type included.

Positions are those of the full sequence: Qwen-VL's multimodal RoPE (``get_rope_index``) is computed on the
prefix followed by each answer and sliced; other families count the real tokens. Gradients flow through the
cached keys and values into the prefix (the cache is never detached).

transformers' gradient checkpointing drops the cache of a checkpointed layer, so with gradient checkpointing the
full computation is used (:func:`shared_prefix_reason`); so it is under FSDP or DeepSpeed (the trainer's
``_sharded``: FSDP2 gathers a layer's weights for the backward only when the gradient reaches the layer's
outputs, which the cached keys and values bypass). Used by the ``video-dpo`` trainer (option
``shared_prefix``, on by default) for every bundled family: Qwen2-VL, Qwen2.5-VL, Qwen3-VL, LLaVA-OneVision and
LLaVA-NeXT-Video.
"""

from __future__ import annotations

import functools
import logging
import types
from collections.abc import Mapping
from typing import Any

import torch

from mmaip_plugins.trainers.data import PIXEL_KEYS, TEXT_KEYS

__all__ = ["add_shared_prefix", "shared_prefix_reason", "shares_prefix"]

log = logging.getLogger(__name__)

NOT_GRID = {*TEXT_KEYS, *PIXEL_KEYS, "mm_encoder_outputs"}
"""Prefix inputs other than the per-video numbers (e.g. ``video_grid_thw``) multimodal RoPE reads."""


def shared_prefix_reason(model: Any, *, gradient_checkpointing: bool) -> str | None:
    """Why ``model`` must compute each sequence in full (None: it can share the prefix)."""
    if gradient_checkpointing:
        return "gradient checkpointing drops the KV cache of checkpointed layers (transformers)"
    if getattr(model.config.get_text_config(), "output_router_logits", False):
        return "the MoE load-balancing loss needs the router logits of whole sequences"
    return None


def add_shared_prefix(model: Any, *, gradient_checkpointing: bool = False) -> bool:
    """Let ``model`` (with TRL's fused LM head added, not yet wrapped by peft) take ``shared_prefix=`` batches,
    unless :func:`shared_prefix_reason` says why not (logged); whether it does. The call
    ``model(..., labels=labels, fused_lm_head=True, shared_prefix=parts)`` (``parts``: the batch's
    ``SHARED_PREFIX`` entry from ``VideoPreferenceCollator(shared_prefix=True)``) returns the fused head's
    per-token outputs laid out as for the full sequences ``labels`` describes; without ``shared_prefix`` the
    forward is the one before. It all runs inside the model's forward, so a DDP wrapper sees one forward
    (FSDP and DeepSpeed: see the module docstring)."""
    reason = shared_prefix_reason(model, gradient_checkpointing=gradient_checkpointing)
    if reason is not None:
        log.info("each sequence is computed in full: %s", reason)
        return False
    fused = model.forward

    @functools.wraps(type(model).forward)
    def forward(self: Any, *args: Any, shared_prefix: Mapping[str, Any] | None = None, **kwargs: Any) -> Any:
        if shared_prefix is None:
            return fused(*args, **kwargs)
        if not kwargs.get("fused_lm_head"):
            raise TypeError("a shared-prefix batch is scored by TRL's fused LM head only (fused_lm_head=True)")
        return _shared_forward(self, fused, shared_prefix, kwargs["labels"])

    model.forward = types.MethodType(forward, model)
    model.mmaip_shared_prefix = True
    return True


def shares_prefix(model: Any) -> bool:
    """Whether ``model`` (or the model a peft wrapper holds) takes ``shared_prefix=`` batches."""
    return bool(getattr(model, "mmaip_shared_prefix", False))


def _shared_forward(model: Any, fused: Any, parts: Mapping[str, Any], labels: torch.Tensor) -> Any:
    """The prefix once with a cache, both answers from it, the outputs in the full sequences' layout."""
    prefix, answers = dict(parts["prefix"]), parts["answers"]
    backbone = model.base_model
    positions = _positions(backbone, prefix, answers)
    width = prefix["input_ids"].shape[1]
    cache = backbone(**prefix, position_ids=positions[..., ::2, :width], use_cache=True).cache
    cache.batch_repeat_interleave(2)  # one copy of each pair's prefix for its chosen and one for its rejected row
    mask = torch.cat([prefix["attention_mask"].repeat_interleave(2, dim=0), answers["attention_mask"]], dim=1)
    out = fused(
        input_ids=answers["input_ids"],
        attention_mask=mask,
        position_ids=positions[..., width:],
        cache=cache,
        labels=answers["labels"],
        fused_lm_head=True,
    )
    return _full_layout(out, answers["labels"], labels)


def _positions(backbone: Any, prefix: Mapping[str, Any], answers: Mapping[str, Any]) -> torch.Tensor:
    """Position ids of the full sequences (each pair's prefix, then each answer row; padding inside), as the
    model computes them for the sequences without padding."""
    ids = torch.cat([prefix["input_ids"].repeat_interleave(2, dim=0), answers["input_ids"]], dim=1)
    mask = torch.cat([prefix["attention_mask"].repeat_interleave(2, dim=0), answers["attention_mask"]], dim=1)
    if hasattr(backbone, "get_rope_index") and "mm_token_type_ids" in prefix:
        types_ = torch.cat(
            [prefix["mm_token_type_ids"].repeat_interleave(2, dim=0), torch.zeros_like(answers["input_ids"])], dim=1
        )
        grids = {k: v.repeat_interleave(2, dim=0) for k, v in prefix.items() if k not in NOT_GRID}
        positions, _ = backbone.get_rope_index(ids, mm_token_type_ids=types_, attention_mask=mask, **grids)
        return positions  # type: ignore[no-any-return]
    return (mask.long().cumsum(-1) - 1).clamp(min=0)


def _full_layout(out: Any, answer_labels: torch.Tensor, labels: torch.Tensor) -> Any:
    """The fused head's per-token outputs of the answer rows (pairs interleaved) moved to the full sequences'
    rows (chosen, then rejected) and columns (``labels``: the full sequences' labels)."""
    pairs = labels.shape[0] // 2
    order = torch.cat([torch.arange(0, 2 * pairs, 2), torch.arange(1, 2 * pairs, 2)]).to(labels.device)
    source = answer_labels[:, 1:][order] != -100
    target = labels[:, 1:] != -100
    if not torch.equal(source.sum(1), target.sum(1)):
        raise ValueError("the shared-prefix answer rows do not hold the answers of the batch's sequences")

    def place(values: torch.Tensor | None) -> torch.Tensor | None:
        if values is None:
            return None
        return values.new_zeros(target.shape).masked_scatter(target, values[order][source])

    log_probs = place(out.log_probs)
    assert log_probs is not None
    return type(out)(
        loss=-log_probs.sum() / target.sum().clamp(min=1),
        log_probs=log_probs,
        entropy=place(out.entropy),
        log_sum_sq_probs=place(out.log_sum_sq_probs),
        mean_logits=place(out.mean_logits),
        is_top1=place(out.is_top1),
        label_mask=target,
        aux_loss=None,
    )
