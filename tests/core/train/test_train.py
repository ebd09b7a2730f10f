"""Iter-W2S-RLAIF training: the video DPO step against TRL and a plain forward, the round loop with every
reference policy, extrapolation checked on the saved files, resume after a kill, NaN handling, and a
two-process (gloo) run."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from helpers import round_request
from safetensors.torch import load_file

from mmaip_core import VISION_PATTERN, PluginManager, TrainingError, UserError, is_complete, latest_complete
from mmaip_core.config import load_config
from mmaip_core.frames import FrameLoader, FrameSettings
from mmaip_core.plugins.kinds import RoundRequest
from mmaip_core.records import TrainPair
from mmaip_core.train import read_train_pairs, round_shard, run_training
from mmaip_core.train.extrapolate import scale_lora_adapter, tensor_files
from mmaip_plugins.trainers.video_dpo.config import VideoDpoOptions
from mmaip_plugins.trainers.video_dpo.trainer import VideoDpoTrainer

ANSWERS = ["red", "it moves left", "a blue circle", "green", "up", "a yellow square"]


@pytest.fixture
def pairs_file(demo_dir: Path, tmp_path: Path) -> Path:
    """Nine hand-written pairs (human-preference format) on the three demo clips."""
    rows = [json.loads(line) for line in (demo_dir / "qa.jsonl").read_text().splitlines()]
    path = tmp_path / "pairs.jsonl"
    with path.open("w") as f:
        for i, row in enumerate(rows):
            pair = {
                "id": f"p{i}",
                "video": str(demo_dir / row["video"]),
                "question": row["question"],
                "chosen": row["answer"],
                "rejected": ANSWERS[i % len(ANSWERS)] + " maybe",
            }
            f.write(json.dumps(pair) + "\n")
    return path


def _config(tmp_path: Path, pairs: Path, tiny_models: Path, **train: Any) -> Path:
    trainer = {
        "name": "video-dpo",
        "smoke": {"family": "qwen2-vl", "seed": 0, "cache_dir": str(tiny_models)},
        "learning_rate": 0.002,
        "batch_size": 3,
        "warmup_ratio": 0.0,
        **train.pop("trainer", {}),
    }
    data = {
        "frames": {"sampler": "uniform", "num_frames": 4, "cache_dir": str(tmp_path / "frames")},
        "train": {"pairs": str(pairs), "rounds": 2, "alpha": 0.5, "trainer": trainer, **train},
    }
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _weights(folder: str | Path) -> dict[str, torch.Tensor]:
    folder = Path(folder)
    tensors: dict[str, torch.Tensor] = {}
    for shard in set(tensor_files(folder).values()):
        tensors.update(load_file(folder / shard))
    return tensors


# --- the step ---------------------------------------------------------------------------------------


def _plain_logps(model: Any, batch: dict[str, Any]) -> torch.Tensor:
    """Per-sequence answer log-probs from full logits (no TRL, no cache): an independent computation."""
    kwargs = {k: v for k, v in batch.items() if k not in ("completion_mask", "ref_chosen_logps", "ref_rejected_logps")}
    logits = model(**kwargs, use_cache=False).logits[:, :-1].float()
    labels = batch["input_ids"][:, 1:]
    mask = batch["completion_mask"][:, 1:].bool()
    token = torch.log_softmax(logits, -1).gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    return (token * mask).sum(1)


@pytest.mark.parametrize("family", ["qwen2-vl", "qwen2.5-vl", "qwen3-vl", "llava-onevision", "llava-next-video"])
def test_cached_step_equals_trl_standard_step(
    family: str, pairs_file: Path, tiny_models: Path, tmp_path: Path, manager: PluginManager
) -> None:
    """Cached vision features + precomputed reference + answer-only LM head give the same per-sequence
    log-probs and loss as TRL's standard step (pixels, reference forward every step) and as full logits."""
    from accelerate import Accelerator
    from trl.trainer.utils import add_fused_lm_head

    from mmaip_plugins.trainers.data import VideoPreferenceCollator, prepare_pairs, video_token_of
    from mmaip_plugins.trainers.features import FeatureStore, encode_video
    from mmaip_plugins.trainers.video_dpo.loss import TrlDpoObjective
    from mmaip_plugins.zoo.hf import load_pretrained
    from mmaip_plugins.zoo.tiny import build_tiny_model

    folder = build_tiny_model(family, 0, tiny_models)
    processor, model = load_pretrained(str(folder))
    _, reference = load_pretrained(str(folder))
    with torch.no_grad():  # the policy differs from the reference, except in the frozen vision tower
        for name, p in model.named_parameters():
            if not VISION_PATTERN.search(name):
                p.add_(torch.randn_like(p) * 0.02)
    pairs, _ = read_train_pairs(pairs_file)
    loader = FrameLoader(FrameSettings(num_frames=4, cache_dir=tmp_path / "frames"), manager)  # type: ignore[call-arg]
    prepared = prepare_pairs(pairs[:4], lambda v: loader.load(v), processor, system_prompt=None, max_length=None)
    store = FeatureStore(tmp_path / "features")
    token_type_id = video_token_of(processor) if prepared.token_types else None
    for key, recipe in prepared.videos.recipes.items():
        store.put(key, encode_video(model, recipe.prompt_ids, prepared.videos.inputs(key), token_type_id))
    options = VideoDpoOptions(model=str(folder), loss_type=["sigmoid", "sft"], loss_weights=[1.0, 0.5])
    acc = Accelerator(cpu=True)
    common = {
        "pad_token_id": processor.tokenizer.pad_token_id,
        "videos": prepared.videos,
        "token_types": prepared.token_types,
        "video_token_id": video_token_of(processor),
    }
    pixels = VideoPreferenceCollator(**common)(prepared.examples)
    plain_policy, plain_reference = _plain_logps(model, pixels), _plain_logps(reference, pixels)

    add_fused_lm_head(model, outputs=("log_probs", "entropy", "mean_logits", "is_top1"))
    add_fused_lm_head(reference)
    standard = TrlDpoObjective(options, acc, ref_model=reference)
    standard_loss, standard_metrics = standard.loss(model.eval(), pixels)

    cached = VideoPreferenceCollator(**common, features=store)
    chosen, rejected = TrlDpoObjective(options, acc).reference_logps(reference, cached(prepared.examples))
    examples = [
        {**e, "ref_chosen_logps": float(c), "ref_rejected_logps": float(r)}
        for e, c, r in zip(prepared.examples, chosen, rejected, strict=True)
    ]
    batch = cached(examples)
    assert "pixel_values_videos" not in batch and "mm_encoder_outputs" in batch
    ours_loss, ours_metrics = TrlDpoObjective(options, acc).loss(model, batch)

    n = len(examples)
    torch.testing.assert_close(torch.cat([chosen, rejected]), plain_reference, atol=1e-4, rtol=1e-5)
    tol = 1e-5
    assert abs(float(ours_loss) - float(standard_loss)) < tol
    for name in ("logps/chosen", "logps/rejected", "rewards/margins"):
        assert abs(ours_metrics[name] - standard_metrics[name]) < 1e-4, name
    assert abs(ours_metrics["logps/chosen"] - float(plain_policy[:n].mean())) < 1e-4
    assert abs(ours_metrics["logps/rejected"] - float(plain_policy[n:].mean())) < 1e-4


# --- rounds ----------------------------------------------------------------------------------------


def test_training_raises_the_margin_and_reuses_vision_features(
    pairs_file: Path, tiny_models: Path, tmp_path: Path, manager: PluginManager
) -> None:
    config = load_config(_config(tmp_path, pairs_file, tiny_models, trainer={"epochs": 2}), manager)
    manifest = run_training(config, tmp_path / "out", manager)
    first, second = manifest.rounds
    for record in manifest.rounds:
        margins = record.result.curves["margin"]
        assert margins[0] == pytest.approx(0.0, abs=1e-6)  # step 1 starts at the reference
        assert margins[-1] > 0.2 and record.result.curves["accuracy"][-1] >= 0.5
        assert record.result.reference_forwards == 2 * record.result.pairs == 18
    assert first.result.vision_encodes == 3 and second.result.vision_encodes == 0  # 3 videos, encoded once
    assert second.reference == first.strong  # the paper's policy: reference = last extrapolated model
    assert manifest.final == second.strong and is_complete(manifest.final)
    assert (tmp_path / "out" / "curves.png").stat().st_size > 1000
    saved = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert saved["rounds"][1]["result"]["steps"] == 6 and not list((tmp_path / "out").rglob("step-*"))


@pytest.mark.parametrize("policy", ["fixed", "previous", "extrapolated", "ema"])
def test_reference_policies_and_extrapolation_on_the_files(
    policy: str, pairs_file: Path, tiny_models: Path, tmp_path: Path, manager: PluginManager
) -> None:
    reference = {"policy": policy, **({"weight": 0.25} if policy == "ema" else {})}
    path = _config(tmp_path, pairs_file, tiny_models, reference=reference, anchor="reference")
    manifest = run_training(load_config(path, manager), tmp_path / "out", manager)
    r1, r2 = manifest.rounds
    base, ref1, pol1, strong1 = (_weights(p) for p in (manifest.base, r1.reference, r1.policy, r1.strong))
    assert r1.reference == manifest.base
    changed = 0
    for name, value in pol1.items():  # strong = policy + 0.5 * (policy - reference); vision copied
        expected = value if ("visual" in name or not value.is_floating_point()) else value + 0.5 * (value - ref1[name])
        torch.testing.assert_close(strong1[name], expected, atol=1e-6, rtol=1e-6)
        changed += not torch.equal(value, ref1[name])
    assert changed > 0
    expected_reference = {"fixed": manifest.base, "previous": r1.policy, "extrapolated": r1.strong}
    if policy in expected_reference:
        assert r2.reference == expected_reference[policy]
    else:
        mixed = _weights(r2.reference)
        for name, value in pol1.items():
            expected = 0.75 * base[name] + 0.25 * value if value.is_floating_point() else value
            torch.testing.assert_close(mixed[name], expected, atol=1e-6, rtol=1e-6)
        assert r1.next_reference_weights == {"reference": 0.75, "policy": 0.25}


def test_base_anchor_and_shards(pairs_file: Path, tiny_models: Path, tmp_path: Path, manager: PluginManager) -> None:
    path = _config(
        tmp_path, pairs_file, tiny_models, anchor="base", schedule="shards", reference={"policy": "previous"}
    )
    manifest = run_training(load_config(path, manager), tmp_path / "out", manager)
    r1, r2 = manifest.rounds
    assert r2.anchor == manifest.base and r2.reference == r1.policy
    base, pol2, strong2 = (_weights(p) for p in (manifest.base, r2.policy, r2.strong))
    name = next(n for n in pol2 if "layers.0.mlp" in n)
    torch.testing.assert_close(strong2[name], pol2[name] + 0.5 * (pol2[name] - base[name]), atol=1e-6, rtol=1e-6)
    ids = [{json.loads(line)["id"] for line in Path(r.pairs_file).read_text().splitlines()} for r in (r1, r2)]
    assert not ids[0] & ids[1] and len(ids[0] | ids[1]) == 9
    too_many = _config(tmp_path, pairs_file, tiny_models, schedule="shards", rounds=10)
    with pytest.raises(UserError, match=r"9 usable pair\(s\) cannot fill 10 shards"):
        run_training(load_config(too_many, manager), tmp_path / "out10", manager)


def test_lora_round_and_adapter_extrapolation(
    pairs_file: Path, tiny_models: Path, tmp_path: Path, manager: PluginManager
) -> None:
    from peft import PeftModel

    from mmaip_plugins.zoo.hf import load_pretrained

    path = _config(tmp_path, pairs_file, tiny_models, rounds=1, trainer={"lora": {"r": 4, "alpha": 8}})
    manifest = run_training(load_config(path, manager), tmp_path / "out", manager)
    record = manifest.rounds[0]
    base, policy, strong = (_weights(p) for p in (manifest.base, record.policy, record.strong))
    differ = {n for n in base if not torch.equal(base[n], policy[n])}
    assert differ and all("language_model" in n or n.startswith("model.layers") for n in differ)
    assert not any("visual" in n for n in differ)
    scaled = scale_lora_adapter(Path(record.policy) / "adapter", 0.5, tmp_path / "scaled")
    _, model = load_pretrained(manifest.base)
    merged = PeftModel.from_pretrained(model, scaled).merge_and_unload()
    ours = {k: v for k, v in merged.state_dict().items()}
    for name in differ:  # adapter scaled by 1 + alpha == extrapolation of the merged files
        key = next(k for k in ours if k.endswith(name.split("layers.", 1)[1]) and "layers." in k)
        torch.testing.assert_close(ours[key], strong[name], atol=1e-5, rtol=1e-5)


# --- failures and resume ----------------------------------------------------------------------------


class Killed(Exception):
    pass


def _round_request(tmp_path: Path, pairs_file: Path, trainer: VideoDpoTrainer, manager: PluginManager) -> RoundRequest:
    base = tmp_path / "base"
    if not is_complete(base):
        trainer.save_base(base)
    return round_request(tmp_path, pairs_file, manager, base)


def _trainer(tiny_models: Path, **extra: Any) -> VideoDpoTrainer:
    return VideoDpoTrainer(
        VideoDpoOptions.model_validate(
            {
                "smoke": {"family": "qwen2-vl", "cache_dir": str(tiny_models)},
                "learning_rate": 0.002,
                "batch_size": 1,
                "epochs": 1,
                "save_steps": 2,
                **extra,
            }
        )
    )


@pytest.mark.parametrize("where", ["inside the round", "during a checkpoint save"])
def test_resume_after_a_kill_gives_the_uninterrupted_result(
    where: str,
    pairs_file: Path,
    tiny_models: Path,
    tmp_path: Path,
    manager: PluginManager,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import mmaip_plugins.trainers.video_dpo.trainer as trainer_module
    from mmaip_plugins.trainers.video_dpo.loss import TrlDpoObjective

    clean = _trainer(tiny_models).train_round(
        _round_request(tmp_path / "clean", pairs_file, _trainer(tiny_models), manager)
    )
    request = _round_request(tmp_path / "killed", pairs_file, _trainer(tiny_models), manager)
    original_loss, original_mark = TrlDpoObjective.loss, trainer_module.mark_complete
    calls = {"loss": 0, "mark": 0}

    def dying_loss(self: Any, model: Any, batch: Any) -> Any:
        calls["loss"] += 1
        if calls["loss"] == 6:
            raise Killed()
        return original_loss(self, model, batch)

    def dying_mark(tmp: Any, final: Any, info: Any = None) -> None:
        calls["mark"] += 1
        if calls["mark"] == 2:  # the step-4 checkpoint is written but never marked complete
            raise Killed()
        original_mark(tmp, final, info)

    if where == "inside the round":
        monkeypatch.setattr(TrlDpoObjective, "loss", dying_loss)
    else:
        monkeypatch.setattr(trainer_module, "mark_complete", dying_mark)
    with pytest.raises(Killed):
        _trainer(tiny_models).train_round(request)
    assert latest_complete(request.work, "step") == request.work / "step-2" or where == "inside the round"
    assert not is_complete(request.out)
    monkeypatch.undo()
    resumed = _trainer(tiny_models).train_round(RoundRequest(**{**request.__dict__, "resume": True}))
    assert resumed.resumed_from_step == (4 if where == "inside the round" else 2)
    assert resumed.steps == clean.steps == 9
    for name, values in clean.curves.items():
        assert resumed.curves[name] == pytest.approx(values, abs=1e-5), name
    a, b = _weights(tmp_path / "clean" / "policy"), _weights(request.out)
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=1e-6, rtol=1e-5)


def test_non_finite_steps_are_skipped_then_stop_the_run(
    pairs_file: Path, tiny_models: Path, tmp_path: Path, manager: PluginManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mmaip_plugins.trainers.video_dpo.loss import TrlDpoObjective

    original = TrlDpoObjective.loss
    nan_calls: set[int] = {3}
    calls = {"n": 0}

    def flaky(self: Any, model: Any, batch: Any) -> Any:
        calls["n"] += 1
        loss, metrics = original(self, model, batch)
        return (loss * float("nan"), metrics) if calls["n"] in nan_calls else (loss, metrics)

    monkeypatch.setattr(TrlDpoObjective, "loss", flaky)
    result = _trainer(tiny_models).train_round(
        _round_request(tmp_path / "a", pairs_file, _trainer(tiny_models), manager)
    )
    assert result.skipped_steps == 1 and result.steps == 9 and len(result.curves["loss"]) == 8
    assert all(math.isfinite(v.float().abs().max()) for v in _weights(tmp_path / "a" / "policy").values())

    nan_calls.update(range(1, 100))
    request = _round_request(tmp_path / "b", pairs_file, _trainer(tiny_models), manager)
    with pytest.raises(TrainingError, match="3 steps in a row had a non-finite loss"):
        _trainer(tiny_models).train_round(request)
    assert not is_complete(request.out)
    step = latest_complete(request.work, "step")  # skipped steps changed nothing: a checkpoint holds no NaN
    assert step is not None and all(bool(torch.isfinite(t).all()) for t in _weights_any(step).values())


def _weights_any(folder: Path) -> dict[str, torch.Tensor]:
    return {k: v for f in folder.glob("*.safetensors") for k, v in load_file(f).items()}


def test_pairs_that_do_not_fit_are_reported(
    pairs_file: Path, tiny_models: Path, tmp_path: Path, manager: PluginManager
) -> None:
    request = _round_request(tmp_path, pairs_file, _trainer(tiny_models), manager)
    with pytest.raises(TrainingError, match="video tokens are never cut"):
        _trainer(tiny_models, max_length=20).train_round(request)
    from mmaip_plugins.trainers.data import prepare_pairs
    from mmaip_plugins.zoo.hf import load_pretrained

    processor, _ = load_pretrained(str(request.reference))
    full = prepare_pairs(request.pairs, request.frames, processor, system_prompt=None, max_length=None).examples
    lengths = sorted(len(e["prompt_ids"]) + max(len(e["chosen_ids"]), len(e["rejected_ids"])) for e in full)
    result = _trainer(tiny_models, max_length=lengths[4]).train_round(request)
    assert result.pairs + len(result.skipped) == 9 and result.skipped
    assert all(e.error_class == "TooLong" and "video" in e.message for e in result.skipped)


def test_pair_files(tmp_path: Path, demo_dir: Path) -> None:
    path = tmp_path / "p.jsonl"
    good = {"id": "a", "video": "v.mp4", "prompt": "q?", "chosen": "x", "rejected": "y"}
    build = {
        **good,
        "id": "b",
        "sample_id": "s",
        "question": "q?",
        "chosen_score": 2,
        "rejected_score": 1,
        "chosen_model": "m1",
        "rejected_model": "m2",
        "chosen_response_id": "r1",
        "rejected_response_id": "r2",
        "strategy": "best-worst",
        "margin": 1,
        "label_source": "ai:x",
        "frames": "k",
    }
    lines = [json.dumps(good), json.dumps(build), "{not json", json.dumps({"id": "c"}), json.dumps(good)]
    path.write_text("\n".join(lines) + "\n")
    pairs, errors = read_train_pairs(path)
    assert [p.id for p in pairs] == ["a", "b"] and pairs[0].video == str(tmp_path / "v.mp4")
    assert pairs[1].label_source == "ai:x" and pairs[0].label_source == "human"
    assert [e.error_class for e in errors] == ["JSONDecodeError", "ValidationError", "DuplicateId"]
    assert "p.jsonl:4" in errors[1].item
    many = [TrainPair(id=f"{i}", video="v", prompt="q", chosen="a", rejected="b") for i in range(10)]
    shards = [round_shard(many, 3, t, seed=1) for t in (1, 2, 3)]
    assert sorted(p.id for s in shards for p in s) == sorted(p.id for p in many) and {len(s) for s in shards} == {3, 4}


def test_existing_run_needs_resume(pairs_file: Path, tiny_models: Path, tmp_path: Path, manager: PluginManager) -> None:
    config = load_config(_config(tmp_path, pairs_file, tiny_models, rounds=1), manager)
    run_training(config, tmp_path / "out", manager)
    with pytest.raises(UserError, match="--resume"):
        run_training(config, tmp_path / "out", manager)
    again = run_training(config, tmp_path / "out", manager, resume=True)  # nothing left to do
    assert len(again.rounds) == 1


def test_two_process_gloo_run(pairs_file: Path, tiny_models: Path, tmp_path: Path) -> None:
    """`mmaip train --launch 2` on the CPU: two processes share each round (gloo)."""
    path = _config(tmp_path, pairs_file, tiny_models, trainer={"batch_size": 2})
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "mmaip_cli.cli", "train", str(path), "--out", str(tmp_path / "out"), "--launch", "2"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert [r["result"]["steps"] for r in manifest["rounds"]] == [3, 3]  # ceil(9 pairs / (2 per process * 2))
    assert done.stdout.count("final model:") == 1
