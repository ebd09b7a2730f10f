"""Linear combinations of model weights: reference updates and ExPO extrapolation share this math.

ExPO (weak-to-strong extrapolation) with this project's ``alpha`` is the combination
``{"policy": 1 + alpha, "reference": -alpha}``, i.e. ``theta_policy + alpha * (theta_policy - theta_ref)``;
alpha = 0 returns the policy unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

__all__ = ["combine_state_dicts", "combine_tensors", "extrapolation_weights"]


def extrapolation_weights(alpha: float, anchor: str = "reference") -> dict[str, float]:
    """Weights of ExPO: ``(1 + alpha) * policy - alpha * anchor``; alpha = 0 returns the policy."""
    if alpha < 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")
    return {"policy": 1.0 + alpha, anchor: -alpha} if alpha else {"policy": 1.0}


def combine_tensors(weights: Mapping[str, float], tensors: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """``sum(w * tensors[name])`` for floating tensors, computed on the first tensor's device in float32
    (float64 for float64 tensors) and cast back to its dtype.

    Non-floating tensors (integer buffers) must be equal in every source and are copied.
    """
    names = list(weights)
    first = tensors[names[0]]
    for name in names[1:]:
        if tensors[name].shape != first.shape:
            raise ValueError(f"shape mismatch: {names[0]} {tuple(first.shape)} vs {name} {tuple(tensors[name].shape)}")
    if not first.is_floating_point():
        if any(not torch.equal(first, tensors[n]) for n in names[1:]):
            raise ValueError("non-floating tensors differ between checkpoints and cannot be combined")
        return first.clone()
    work = torch.float64 if first.dtype == torch.float64 else torch.float32
    out = torch.zeros(first.shape, dtype=work, device=first.device)
    for name in names:
        out.add_(tensors[name].to(device=first.device, dtype=work), alpha=weights[name])
    return out.to(first.dtype)


def combine_state_dicts(
    weights: Mapping[str, float], state_dicts: Mapping[str, Mapping[str, torch.Tensor]]
) -> dict[str, torch.Tensor]:
    """Combine whole state dicts key by key; every source must have exactly the same keys."""
    names = list(weights)
    keys = set(state_dicts[names[0]])
    for name in names[1:]:
        other = set(state_dicts[name])
        if other != keys:
            diff = sorted(keys ^ other)[:5]
            raise ValueError(f"checkpoints {names[0]} and {name} have different tensors, e.g. {diff}")
    return {key: combine_tensors(weights, {n: state_dicts[n][key] for n in names}) for key in sorted(keys)}
