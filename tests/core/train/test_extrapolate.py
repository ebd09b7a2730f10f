from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from helpers import MMAIP
from safetensors import safe_open
from safetensors.torch import save_file

from mmaip_core import ModelError, UserError, is_complete, read_marker
from mmaip_core.train.extrapolate import VISION_PATTERN, extrapolate, scale_lora_adapter, tensor_files
from mmaip_plugins.zoo.tiny import build_tiny_model


def _checkpoint(folder: Path, scale: float, **extra: torch.Tensor) -> Path:
    folder.mkdir(parents=True)
    tensors = {
        "model.layers.0.w": torch.full((2, 3), scale, dtype=torch.bfloat16),
        "lm_head.weight": torch.full((4,), 2 * scale, dtype=torch.float32),
        "visual.blocks.0.w": torch.full((2,), scale),
        "model.rotary.inv_freq_steps": torch.tensor([1, 2, 3], dtype=torch.int64),
        **extra,
    }
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    (folder / "config.json").write_text(json.dumps({"model_type": "demo"}))
    return folder


def _read(folder: Path) -> dict[str, torch.Tensor]:
    out = {}
    for name, shard in tensor_files(folder).items():
        with safe_open(folder / shard, framework="pt") as f:
            out[name] = f.get_tensor(name)
    return out


def test_expo_formula_dtypes_integers_and_vision(tmp_path: Path) -> None:
    policy, anchor = _checkpoint(tmp_path / "policy", 4.0), _checkpoint(tmp_path / "anchor", 2.0)
    report = extrapolate(policy, anchor, 0.5, tmp_path / "strong")
    out = _read(tmp_path / "strong")
    assert torch.equal(out["model.layers.0.w"], torch.full((2, 3), 4.0 + 0.5 * (4.0 - 2.0), dtype=torch.bfloat16))
    assert out["lm_head.weight"].dtype == torch.float32 and out["lm_head.weight"][0].item() == 8.0 + 0.5 * 4.0
    assert torch.equal(out["visual.blocks.0.w"], torch.full((2,), 4.0))  # copied from the policy
    assert torch.equal(out["model.rotary.inv_freq_steps"], torch.tensor([1, 2, 3]))
    assert sorted(report.combined) == ["lm_head.weight", "model.layers.0.w"]
    assert json.loads((tmp_path / "strong" / "config.json").read_text()) == {"model_type": "demo"}
    with_vision = _read(extrapolate(policy, anchor, 0.5, tmp_path / "strong-v", include_vision=True).out)
    assert torch.equal(with_vision["visual.blocks.0.w"], torch.full((2,), 5.0))


def test_alpha_zero_is_the_policy_exactly(tmp_path: Path) -> None:
    policy, anchor = _checkpoint(tmp_path / "policy", 4.3), _checkpoint(tmp_path / "anchor", 1.7)
    out = _read(extrapolate(policy, anchor, 0.0, tmp_path / "same").out)
    assert all(torch.equal(out[k], v) for k, v in _read(policy).items())


def test_every_tensor_must_match(tmp_path: Path) -> None:
    policy = _checkpoint(tmp_path / "policy", 1.0, extra_head=torch.zeros(2))
    anchor = _checkpoint(tmp_path / "anchor", 1.0)
    with pytest.raises(UserError, match=r"missing in 'anchor': \['extra_head'\]"):
        extrapolate(policy, anchor, 0.3, tmp_path / "out")
    with pytest.raises(UserError, match=r"no model\.safetensors"):
        extrapolate(policy, tmp_path, 0.3, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_real_sharded_model_round_trip(tmp_path: Path, tiny_models: Path) -> None:
    from transformers import AutoModelForImageTextToText

    folders = {}
    for role, seed in (("policy", 1), ("anchor", 0)):
        source = build_tiny_model("qwen2-vl", seed, tiny_models)
        folders[role] = tmp_path / role
        AutoModelForImageTextToText.from_pretrained(source).save_pretrained(folders[role], max_shard_size="300KB")
        for item in source.iterdir():
            if not item.name.endswith(".safetensors") and item.name != "config.json":
                shutil.copy2(item, folders[role] / item.name)
    assert len(set(tensor_files(folders["policy"]).values())) > 1, "the test needs a sharded checkpoint"
    report = extrapolate(folders["policy"], folders["anchor"], 0.3, tmp_path / "strong")
    out, policy, anchor = _read(report.out), _read(folders["policy"]), _read(folders["anchor"])
    assert set(out) == set(policy) and (report.out / "model.safetensors.index.json").is_file()
    for name, tensor in out.items():
        if VISION_PATTERN.search(name):
            assert torch.equal(tensor, policy[name]), name
        else:
            expected = (1.3 * policy[name].float() - 0.3 * anchor[name].float()).to(tensor.dtype)
            assert torch.allclose(tensor, expected, atol=1e-6), name
    assert any(VISION_PATTERN.search(n) for n in out) and report.combined
    model = AutoModelForImageTextToText.from_pretrained(report.out)
    assert model.config.model_type == "qwen2_vl"


def test_lora_adapter_scaling(tmp_path: Path) -> None:
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    save_file(
        {"base.layers.0.q.lora_A.weight": torch.ones(2, 4), "base.layers.0.q.lora_B.weight": torch.full((4, 2), 0.5)},
        str(adapter / "adapter_model.safetensors"),
    )
    (adapter / "adapter_config.json").write_text("{}")
    out = scale_lora_adapter(adapter, 0.4, tmp_path / "scaled")
    with safe_open(out / "adapter_model.safetensors", framework="pt") as f:
        assert torch.equal(f.get_tensor("base.layers.0.q.lora_A.weight"), torch.ones(2, 4))
        assert torch.allclose(f.get_tensor("base.layers.0.q.lora_B.weight"), torch.full((4, 2), 0.7))
    assert (out / "adapter_config.json").is_file() and is_complete(out)


def test_cli_alpha_sweep(tmp_path: Path) -> None:
    import subprocess

    policy, anchor = _checkpoint(tmp_path / "policy", 4.0), _checkpoint(tmp_path / "anchor", 2.0)
    result = subprocess.run(
        [
            MMAIP,
            "extrapolate",
            "--policy",
            str(policy),
            "--anchor",
            str(anchor),
            "--alphas",
            "0.1,0.5",
            "--out",
            str(tmp_path / "sweep"),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    for alpha in (0.1, 0.5):
        value = _read(tmp_path / "sweep" / f"alpha-{alpha:g}")["lm_head.weight"][0].item()
        assert value == pytest.approx(8.0 + alpha * 4.0)
    bad = subprocess.run(
        [MMAIP, "extrapolate", "--policy", str(policy), "--out", str(tmp_path / "x"), "--alpha", "0.3"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "--anchor is needed" in bad.stderr


def test_copied_and_mismatched_tensors_are_checked(tmp_path: Path) -> None:
    policy = _checkpoint(tmp_path / "policy", 4.0)
    other_ints = _checkpoint(tmp_path / "ints", 2.0, **{"model.rotary.inv_freq_steps": torch.tensor([0, 1, 2])})
    with pytest.raises(UserError, match=r"tensor model\.rotary\.inv_freq_steps: non-floating tensors differ"):
        extrapolate(policy, other_ints, 0.3, tmp_path / "out")
    other_shape = _checkpoint(tmp_path / "shape", 2.0, **{"visual.blocks.0.w": torch.zeros(3)})
    with pytest.raises(UserError, match=r"tensor visual\.blocks\.0\.w has different shapes"):
        extrapolate(policy, other_shape, 0.3, tmp_path / "out")
    anchor = _checkpoint(tmp_path / "anchor", 2.0)
    with pytest.raises(UserError, match="must not be, contain or sit inside the input 'anchor'"):
        extrapolate(policy, anchor, 0.3, anchor)
    assert (anchor / "model.safetensors").is_file()


def test_cli_single_alpha_of_a_sweep_gets_its_folder(tmp_path: Path) -> None:
    import subprocess

    policy, anchor = _checkpoint(tmp_path / "policy", 4.0), _checkpoint(tmp_path / "anchor", 2.0)
    result = subprocess.run(
        [
            MMAIP,
            "extrapolate",
            "--policy",
            str(policy),
            "--anchor",
            str(anchor),
            "--alphas",
            "0.3,0.30",
            "--out",
            str(tmp_path / "sweep"),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "sweep").iterdir()) == ["alpha-0.3"]


def test_alpha_sweep_evaluates_every_alpha_and_chooses_the_best(tmp_path: Path, tiny_models: Path) -> None:
    """``mmaip extrapolate --alphas --eval-config``: every alpha's model is run by the hf generator and judged,
    sweep.json's score per alpha is the mean of its evaluation metrics, and the chosen alpha is the best one."""
    import os
    import subprocess

    from mmaip_core.testbeds.synthetic import make_demo_dataset

    policy, anchor = build_tiny_model("qwen2-vl", 1, tiny_models), build_tiny_model("qwen2-vl", 0, tiny_models)
    make_demo_dataset(tmp_path / "data", num_videos=2)
    config = tmp_path / "eval.yaml"
    config.write_text(f"""\
benchmarks:
  - {{name: held-out, reader: jsonl, path: {tmp_path / "data" / "qa.jsonl"}}}
models:
  - {{name: template, generator: hf, model: unused, params: {{temperature: 0, max_new_tokens: 6}}}}
evaluators:
  - name: reference
frames: {{num_frames: 4, cache_dir: {tmp_path / "frames"}}}
""")
    out = tmp_path / "sweep"
    result = subprocess.run(
        [
            MMAIP,
            "extrapolate",
            "--policy",
            str(policy),
            "--anchor",
            str(anchor),
            "--alphas",
            "0,2",
            "--out",
            str(out),
            "--eval-config",
            str(config),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 0, result.stderr
    sweep = json.loads((out / "sweep.json").read_text())
    assert set(sweep["models"]) == {"0", "2"} and sweep["evaluator"] == "reference"
    metrics = json.loads((out / "evaluation" / "results.json").read_text())["metrics"]
    verdict_models = {json.loads(line)["model"] for line in (out / "evaluation" / "verdicts.jsonl").open()}
    assert verdict_models == {"alpha-0", "alpha-2"}
    for alpha in ("0", "2"):
        values = [m["metrics"]["score"]["value"] for m in metrics if m["model"] == f"alpha-{alpha}"]
        assert values and sweep["scores"][alpha] == pytest.approx(sum(values) / len(values))
    assert sweep["chosen"] == float(max(sweep["scores"], key=lambda a: sweep["scores"][a]))
    # alpha 0 is the policy itself; alpha 2 moves the weights far enough that its greedy answers differ
    assert sweep["scores"]["0"] != sweep["scores"]["2"]
    assert f"chosen alpha: {sweep['chosen']}" in result.stdout


def _half(scale: float) -> dict[str, torch.Tensor]:
    return {"model.layers.1.h": torch.full((2,), scale, dtype=torch.float16)}


def _half_pair(root: Path) -> tuple[Path, Path]:
    """A policy and an anchor with a float16 tensor (4 and 2): alpha 1e5 overflows it."""
    return _checkpoint(root / "policy", 4.0, **_half(4.0)), _checkpoint(root / "anchor", 2.0, **_half(2.0))


def test_non_finite_results_are_refused_and_nothing_is_written(tmp_path: Path) -> None:
    """float16 holds at most 65504: 4 + 1e5 * (4 - 2) overflows; the older complete output stays as it was."""
    policy, anchor = _half_pair(tmp_path)
    out = tmp_path / "strong"
    extrapolate(policy, anchor, 0.3, out)
    with pytest.raises(UserError) as info:
        extrapolate(policy, anchor, 1e5, out)
    assert str(info.value) == (
        f"alpha 100000 gives inf or NaN in tensor model.layers.1.h of {policy / 'model.safetensors'} "
        f"(the result overflows float16); nothing was written to {out}"
    )
    assert read_marker(out)["weights"] == {"policy": 1.3, "anchor": -0.3}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["anchor", "policy", "strong"]  # no half-written folder
    broken = _checkpoint(tmp_path / "nan", 2.0, **_half(float("nan")))
    with pytest.raises(UserError) as info:
        extrapolate(policy, broken, 0.3, tmp_path / "other")
    assert str(info.value) == (
        f"alpha 0.3 gives inf or NaN in tensor model.layers.1.h of {policy / 'model.safetensors'} "
        f"({broken / 'model.safetensors'} already holds inf or NaN there); nothing was written to {tmp_path / 'other'}"
    )
    with pytest.raises(UserError, match="alpha must be a finite number >= 0, got inf"):
        extrapolate(policy, anchor, float("inf"), tmp_path / "other")
    assert not (tmp_path / "other").exists()


def _damage(folder: Path, how: str) -> Path:
    """Damage a checkpoint folder; return the file an error must name."""
    weights, index = folder / "model.safetensors", folder / "model.safetensors.index.json"
    data, names = weights.read_bytes(), list(tensor_files(folder))
    damaged = {
        "truncated": lambda: weights.write_bytes(data[: len(data) - 8]),
        "garbage": lambda: weights.write_bytes(bytes(range(256)) * 16),
        "empty": lambda: weights.write_bytes(b""),
        "index-not-json": lambda: index.write_text("{not json"),
        "index-without-weight-map": lambda: index.write_text("{}"),
        "index-escapes-the-folder": lambda: index.write_text(json.dumps({"weight_map": dict.fromkeys(names, "../x")})),
        "index-names-a-missing-shard": lambda: index.write_text(
            json.dumps({"weight_map": dict.fromkeys(names, "gone")})
        ),
    }
    damaged[how]()
    if how == "index-names-a-missing-shard":
        return folder / "gone"
    return index if how.startswith("index") else weights


DAMAGE = [
    "truncated",
    "garbage",
    "empty",
    "index-not-json",
    "index-without-weight-map",
    "index-escapes-the-folder",
    "index-names-a-missing-shard",
]


@pytest.mark.parametrize("how", DAMAGE)
def test_damaged_checkpoints_are_one_error_naming_the_file(tmp_path: Path, how: str) -> None:
    policy, anchor = _checkpoint(tmp_path / "policy", 4.0), _checkpoint(tmp_path / "anchor", 2.0)
    named = _damage(anchor, how)
    with pytest.raises(ModelError) as info:
        extrapolate(policy, anchor, 0.3, tmp_path / "out")
    assert info.value.model == str(named) and str(named) in str(info.value)
    assert not (tmp_path / "out").exists()


def test_damaged_or_overflowing_lora_adapter(tmp_path: Path) -> None:
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    weights = adapter / "adapter_model.safetensors"
    save_file(
        {"q.lora_A.weight": torch.ones(2, 4), "q.lora_B.weight": torch.full((4, 2), 6e4, dtype=torch.float16)},
        str(weights),
    )
    with pytest.raises(UserError) as info:
        scale_lora_adapter(adapter, 0.5, tmp_path / "scaled")  # 6e4 * 1.5 is above float16's 65504
    assert str(info.value) == (
        f"alpha 0.5 gives inf or NaN in tensor q.lora_B.weight of {weights} "
        f"(the result overflows float16); nothing was written to {tmp_path / 'scaled'}"
    )
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ModelError, match=rf"model {weights} could not be loaded: unreadable safetensors file"):
        scale_lora_adapter(adapter, 0.3, tmp_path / "scaled")
    with pytest.raises(UserError, match="must not be, contain or sit inside the input 'adapter'"):
        scale_lora_adapter(adapter, 0.3, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapter"]


@pytest.mark.parametrize(("how", "code"), [("truncated", 1), ("garbage", 1), ("overflow", 2)])
def test_cli_reports_bad_checkpoints_in_one_line(tmp_path: Path, how: str, code: int) -> None:
    import subprocess

    policy, anchor = _half_pair(tmp_path)
    named = policy / "model.safetensors" if how == "overflow" else _damage(anchor, how)
    result = subprocess.run(
        [
            MMAIP,
            "extrapolate",
            "--policy",
            str(policy),
            "--anchor",
            str(anchor),
            "--alpha",
            "1e5",
            "--out",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == code
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and str(named) in line and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()
