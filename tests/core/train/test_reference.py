from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from mmaip_core import PluginManager, ReferenceUpdate
from mmaip_core.train.weights import combine_state_dicts, extrapolation_weights


def _state(value: float) -> dict[str, torch.Tensor]:
    return {
        "w": torch.full((2, 2), value, dtype=torch.bfloat16),
        "steps": torch.tensor([3], dtype=torch.int64),
    }


CHECKPOINTS = {"base": _state(1.0), "reference": _state(2.0), "policy": _state(4.0), "strong": _state(5.0)}


@pytest.mark.parametrize(
    ("policy", "options", "weights", "expected"),
    [
        ("fixed", {}, {"base": 1.0}, 1.0),
        ("previous", {}, {"policy": 1.0}, 4.0),
        ("extrapolated", {}, {"strong": 1.0}, 5.0),
        ("ema", {"weight": 0.25}, {"reference": 0.75, "policy": 0.25}, 2.5),
    ],
)
def test_reference_policies(
    manager: PluginManager, policy: str, options: dict[str, float], weights: dict[str, float], expected: float
) -> None:
    update = manager.create("reference-policy", policy, options).next_reference(1)
    assert update.weights == weights
    new = combine_state_dicts(update.weights, {n: CHECKPOINTS[n] for n in update.weights})
    assert torch.equal(new["w"], torch.full((2, 2), expected, dtype=torch.bfloat16))
    assert new["w"].dtype == torch.bfloat16
    assert torch.equal(new["steps"], torch.tensor([3]))


def test_expo_extrapolation_formula() -> None:
    weights = extrapolation_weights(0.5)
    strong = combine_state_dicts(weights, {"policy": CHECKPOINTS["policy"], "reference": CHECKPOINTS["reference"]})
    assert torch.equal(strong["w"], torch.full((2, 2), 4.0 + 0.5 * (4.0 - 2.0), dtype=torch.bfloat16))
    assert extrapolation_weights(0.0) == {"policy": 1.0}
    assert extrapolation_weights(0.3, anchor="base") == {"policy": 1.3, "base": -0.3}
    with pytest.raises(ValueError, match="alpha must be >= 0"):
        extrapolation_weights(-1)


def test_combination_refuses_mismatched_checkpoints() -> None:
    with pytest.raises(ValueError, match="different tensors"):
        combine_state_dicts({"a": 0.5, "b": 0.5}, {"a": {"x": torch.zeros(1)}, "b": {"y": torch.zeros(1)}})
    with pytest.raises(ValueError, match="shape mismatch"):
        combine_state_dicts({"a": 0.5, "b": 0.5}, {"a": {"x": torch.zeros(1)}, "b": {"x": torch.zeros(2)}})
    ints = {"a": {"x": torch.tensor([1])}, "b": {"x": torch.tensor([2])}}
    with pytest.raises(ValueError, match="non-floating"):
        combine_state_dicts({"a": 0.5, "b": 0.5}, ints)


def test_reference_update_weights_sum_to_one() -> None:
    with pytest.raises(ValidationError, match="sum to 1"):
        ReferenceUpdate(weights={"policy": 0.5})
    with pytest.raises(ValidationError, match="sum to 1"):
        ReferenceUpdate(weights={"policy": float("nan"), "base": 1.0})
    assert ReferenceUpdate(weights={"policy": 1.0, "base": 0.0}).single == "policy"
    assert ReferenceUpdate(weights={"policy": 0.5, "base": 0.5}).single is None


def test_ema_weight_is_validated(manager: PluginManager) -> None:
    from mmaip_core import PluginConfigError

    with pytest.raises(PluginConfigError, match="reference-policy 'ema': weight"):
        manager.create("reference-policy", "ema", {"weight": 1.5})


def test_float64_keeps_its_precision() -> None:
    a = {"x": torch.tensor([1.0 + 1e-12], dtype=torch.float64)}
    b = {"x": torch.tensor([1.0], dtype=torch.float64)}
    out = combine_state_dicts({"a": 2.0, "b": -1.0}, {"a": a, "b": b})["x"]
    assert out.dtype == torch.float64 and out.item() == pytest.approx(1.0 + 2e-12, abs=1e-15)
