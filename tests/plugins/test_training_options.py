"""Training options of issue 14: mixed precision (fp32 master weights, bf16 autocast) in video-dpo and SFT; rounds
that continue from the last round's model while the reference follows its policy (and resume); a trainable
projector with a frozen tower; per-module learning rates; held-out pairs scored every round with the best round
kept; and the fingerprint of each option."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from helpers import round_request
from safetensors.torch import load_file

from mmaip_core import ConfigError, PluginManager, TrainingError, UserError, VideoQA, is_complete
from mmaip_core.config import load_config
from mmaip_core.frames import FrameLoader, FrameSettings
from mmaip_core.plugins.kinds import RoundRequest
from mmaip_core.train import run_training
from mmaip_core.train.extrapolate import tensor_files
from mmaip_plugins.trainers.common import (
    freeze_vision_parts,
    is_projector,
    is_vision,
    parameter_groups,
    resolve_mixed_precision,
)
from mmaip_plugins.trainers.video_dpo.config import VideoDpoOptions
from mmaip_plugins.trainers.video_dpo.trainer import VideoDpoTrainer

WRONG = ["red", "it moves left", "a blue circle", "green", "up", "a yellow square"]


@pytest.fixture
def pairs_file(demo_dir: Path, tmp_path: Path) -> Path:
    """Nine pairs on the three demo clips: the right answer against a wrong one."""
    rows = [json.loads(line) for line in (demo_dir / "qa.jsonl").read_text().splitlines()]
    path = tmp_path / "pairs.jsonl"
    lines = [
        {"id": f"p{i}", "video": str(demo_dir / r["video"]), "question": r["question"], "chosen": r["answer"]}
        | {"rejected": WRONG[i % len(WRONG)] + " maybe"}
        for i, r in enumerate(rows)
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def _weights(folder: str | Path) -> dict[str, torch.Tensor]:
    folder = Path(folder)
    return {k: v for shard in set(tensor_files(folder).values()) for k, v in load_file(folder / shard).items()}


def _options(tiny_models: Path, **extra: Any) -> dict[str, Any]:
    return {
        "name": "video-dpo",
        "smoke": {"family": "qwen2-vl", "seed": 0, "cache_dir": str(tiny_models)},
        "learning_rate": 0.002,
        "batch_size": 3,
        "warmup_ratio": 0.0,
        **extra,
    }


def _config(
    tmp_path: Path, pairs: Path, tiny_models: Path, trainer: dict[str, Any] | None = None, **train: Any
) -> Path:
    data = {
        "frames": {"sampler": "uniform", "num_frames": 4, "cache_dir": str(tmp_path / "frames")},
        "train": {
            "pairs": str(pairs),
            "rounds": 2,
            "alpha": 0.5,
            "trainer": _options(tiny_models, **(trainer or {})),
            **train,
        },
    }
    path = tmp_path / f"train-{len(list(tmp_path.glob('train-*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _trainer(tiny_models: Path, **extra: Any) -> VideoDpoTrainer:
    options = {k: v for k, v in _options(tiny_models, batch_size=1, **extra).items() if k != "name"}
    return VideoDpoTrainer(VideoDpoOptions.model_validate(options))


def _round(
    tmp_path: Path, pairs_file: Path, tiny_models: Path, manager: PluginManager, **extra: Any
) -> tuple[Any, Path]:
    """One round from the base (batch 1: nine steps) with ``extra`` options; its result and the base's folder."""
    trainer = _trainer(tiny_models, **extra)
    base = tmp_path / "base"
    trainer.save_base(base)
    return trainer.train_round(round_request(tmp_path, pairs_file, manager, base)), base


# --- mixed precision ---------------------------------------------------------------------------------


def test_bf16_autocast_trains_like_fp32(
    pairs_file: Path, tiny_models: Path, tmp_path: Path, manager: PluginManager
) -> None:
    """fp32 master weights with bf16 autocast change the language model and lower the loss as fp32 does; the
    saved weights are the fp32 master weights, and the autocast is really on (the curves differ)."""
    results, fraction = {}, {}
    for precision in ("no", "bf16"):
        result, base = _round(tmp_path / precision, pairs_file, tiny_models, manager, mixed_precision=precision)
        before, after = _weights(base), _weights(tmp_path / precision / "policy")
        language = [n for n in after if not is_vision(n) and after[n].is_floating_point()]
        changed = sum(after[n].numel() - int((after[n] == before[n]).sum()) for n in language)
        fraction[precision] = changed / sum(after[n].numel() for n in language)  # unused embedding rows stay
        assert all(after[n].dtype == torch.float32 for n in language)
        loss = result.curves["loss"]
        assert sum(loss[-3:]) / 3 < sum(loss[:3]) / 3 and result.curves["margin"][-1] > 0.05, precision
        results[precision] = result
    assert fraction["no"] > 0.5 and fraction["bf16"] > 0.9 * fraction["no"]
    assert results["no"].curves["loss"] != pytest.approx(results["bf16"].curves["loss"], abs=1e-6)


def test_precision_defaults_and_fingerprints(tiny_models: Path) -> None:
    assert resolve_mixed_precision("auto", "cpu") == "no"
    assert resolve_mixed_precision("bf16", "cpu") == "bf16"
    with pytest.raises(TrainingError, match="fp16 needs a GPU"):
        resolve_mixed_precision("fp16", "cpu")
    base = {k: v for k, v in _options(tiny_models).items() if k != "name"}
    prints = {
        VideoDpoTrainer(VideoDpoOptions.model_validate({**base, **extra})).fingerprint
        for extra in (
            {},
            {"mixed_precision": "bf16"},
            {"train_projector": True},
            {"learning_rates": {"projector": 1e-5}},
            {"dtype": "bfloat16"},
        )
    }
    assert len(prints) == 5
    assert VideoDpoTrainer(VideoDpoOptions.model_validate(base)).fingerprint in prints


def test_sft_follows_the_precision_option(demo_dir: Path, tiny_models: Path, tmp_path: Path) -> None:
    from mmaip_plugins.trainers.sft import SftOptions, _training_arguments, sft
    from mmaip_plugins.zoo.tiny import build_tiny_model

    options = SftOptions(device="cpu", mixed_precision="bf16", learning_rate=1e-2, warmup_ratio=0.0, max_steps=6)
    args = _training_arguments(options, tmp_path / "work")
    assert args.bf16 and not args.fp16
    rows = [json.loads(line) for line in (demo_dir / "qa.jsonl").read_text().splitlines()][:3]
    samples = [VideoQA(**{**row, "video": str(demo_dir / row["video"])}) for row in rows]
    loader = FrameLoader(FrameSettings(num_frames=4, cache_dir=tmp_path / "frames"), PluginManager(env={}))  # type: ignore[call-arg]
    frames = {s.video: loader.load(s.video) for s in samples if s.video}
    result = sft(build_tiny_model("qwen2-vl", 0, tiny_models), samples, frames, tmp_path / "sft", options)
    assert result.steps == 6 and result.losses[-1] < result.losses[0]
    assert all(t.dtype == torch.float32 for t in _weights(tmp_path / "sft").values() if t.is_floating_point())


# --- rounds: init and reference ----------------------------------------------------------------------


def test_fixed_reference_continues_training_and_resumes(
    pairs_file: Path, tiny_models: Path, tmp_path: Path, manager: PluginManager
) -> None:
    """`fixed`: every round is DPO against the base, but round 2 starts from round 1's model, so it starts with
    the margin round 1 reached; a run stopped after round 1 and resumed ends as an uninterrupted one."""
    fixed = {"policy": "fixed"}
    path = _config(tmp_path, pairs_file, tiny_models, reference=fixed, trainer={"epochs": 2})
    manifest = run_training(load_config(path, manager), tmp_path / "whole", manager)
    r1, r2 = manifest.rounds
    assert r1.init == r1.reference == manifest.base
    assert r2.reference == manifest.base and r2.init == r1.strong
    assert r2.result.curves["margin"][0] > 0.5 * r1.result.curves["margin"][-1] > 0.1
    assert r2.result.reference_forwards == 18 and manifest.final == r2.strong
    one = _config(tmp_path, pairs_file, tiny_models, reference=fixed, trainer={"epochs": 2}, rounds=1)
    run_training(load_config(one, manager), tmp_path / "stopped", manager)
    resumed = run_training(load_config(path, manager), tmp_path / "stopped", manager, resume=True)
    assert Path(resumed.rounds[1].init or "") == tmp_path / "stopped" / "round-1" / "strong"
    a, b = _weights(r2.policy), _weights(resumed.rounds[1].policy)
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=1e-6, rtol=1e-5)


class Killed(Exception):
    pass


def test_a_round_from_the_last_model_resumes_mid_round(
    pairs_file: Path, tiny_models: Path, tmp_path: Path, manager: PluginManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A round that starts from a trained model, against the base: the reference log-probs are the base's (the
    first margin is the trained model's, not 0), and a kill mid-round resumes to the uninterrupted result."""
    from mmaip_plugins.trainers.video_dpo.loss import TrlDpoObjective

    _, base = _round(tmp_path / "first", pairs_file, tiny_models, manager)
    start = tmp_path / "first" / "policy"
    clean = _trainer(tiny_models, save_steps=2).train_round(
        round_request(tmp_path / "clean", pairs_file, manager, base, start)
    )
    assert clean.curves["margin"][0] > 0.05 and clean.reference_forwards == 18
    request = round_request(tmp_path / "killed", pairs_file, manager, base, start)
    original, calls = TrlDpoObjective.loss, {"n": 0}

    def dying_loss(self: Any, model: Any, batch: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 6:
            raise Killed()
        return original(self, model, batch)

    monkeypatch.setattr(TrlDpoObjective, "loss", dying_loss)
    with pytest.raises(Killed):
        _trainer(tiny_models, save_steps=2).train_round(request)
    monkeypatch.undo()
    resumed = _trainer(tiny_models, save_steps=2).train_round(RoundRequest(**{**request.__dict__, "resume": True}))
    assert resumed.resumed_from_step == 4 and resumed.reference_forwards == 0  # stored: the base not loaded again
    for name, values in clean.curves.items():
        assert resumed.curves[name] == pytest.approx(values, abs=1e-5), name
    a, b = _weights(tmp_path / "clean" / "policy"), _weights(request.out)
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=1e-6, rtol=1e-5)


# --- modules: projector, learning rates --------------------------------------------------------------


def test_parameter_groups_by_module(tiny_models: Path) -> None:
    from mmaip_plugins.zoo.hf import load_pretrained
    from mmaip_plugins.zoo.tiny import build_tiny_model

    _, model = load_pretrained(str(build_tiny_model("qwen2-vl", 0, tiny_models)))
    rates = {"projector": 2e-5, "language_model": 1e-6, "model.language_model.norm": 3e-6}
    options = VideoDpoOptions.model_validate(
        {"model": "m", "train_projector": True, "learning_rate": 5e-6, "learning_rates": rates}
    )
    freeze_vision_parts(model, options)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any(is_projector(n) for n in trainable)
    assert not any(is_vision(n) and not is_projector(n) for n in trainable)
    by_rate = {group["lr"]: {id(p) for p in group["params"]} for group in parameter_groups(model, options)}
    names = {id(p): n for n, p in model.named_parameters()}
    assert {names[i] for i in by_rate[2e-5]} == {n for n in trainable if is_projector(n)}
    assert {names[i] for i in by_rate[3e-6]} == {"model.language_model.norm.weight"}  # the longest match wins
    assert by_rate[1e-6] and not any(is_vision(names[i]) for i in by_rate[1e-6])  # the LM, lm_head included
    assert 5e-6 not in by_rate  # every trainable parameter is in a named module
    with pytest.raises(TrainingError, match="'vision_tower' matches no trainable parameter"):
        parameter_groups(model, options.model_copy(update={"learning_rates": {"vision_tower": 1e-5}}))
    with pytest.raises(ValueError, match="train_projector needs freeze_vision"):
        VideoDpoOptions.model_validate({"model": "m", "train_projector": True, "freeze_vision": False})


def test_projector_trains_with_a_frozen_tower(
    pairs_file: Path, tiny_models: Path, tmp_path: Path, manager: PluginManager
) -> None:
    extra = {"train_projector": True, "learning_rates": {"projector": 0.01}, "epochs": 1}
    result, base = _round(tmp_path, pairs_file, tiny_models, manager, **extra)
    before, after = _weights(base), _weights(tmp_path / "policy")
    tower = [n for n in after if is_vision(n) and not is_projector(n)]
    projector = [n for n in after if is_projector(n)]
    assert tower and all(torch.equal(after[n], before[n]) for n in tower)
    assert projector and all(not torch.equal(after[n], before[n]) for n in projector)
    assert result.vision_encodes == 0  # pixels go through the frozen tower each step


# --- held-out pairs and the kept round ---------------------------------------------------------------


def test_held_out_pairs_scored_every_round_and_best_kept(
    pairs_file: Path, tiny_models: Path, tmp_path: Path, manager: PluginManager
) -> None:
    path = _config(tmp_path, pairs_file, tiny_models, alpha=0.0, eval_fraction=0.34, keep="best", rounds=2)
    out = tmp_path / "out"
    manifest = run_training(load_config(path, manager), out, manager)
    held = [json.loads(line)["id"] for line in (out / "eval_pairs.jsonl").read_text().splitlines()]
    assert len(held) == 3
    for record in manifest.rounds:
        assert set(record.result.eval) == {"loss", "accuracy", "margin", "pairs"} and record.result.eval["pairs"] == 3
        assert record.result.pairs == 6
        trained = {json.loads(line)["id"] for line in Path(record.pairs_file).read_text().splitlines()}
        assert not trained & set(held)
    best = max(manifest.rounds, key=lambda r: (r.result.eval["accuracy"], -r.result.eval["loss"], -r.round))
    assert manifest.final_round == best.round and manifest.final == best.policy and manifest.keep == "best"
    assert is_complete(manifest.final)
    assert (out / "curves.png").stat().st_size > 1000
    saved = json.loads((out / "manifest.json").read_text())
    assert saved["rounds"][0]["result"]["eval"]["pairs"] == 3


def test_held_out_settings_are_checked(
    pairs_file: Path, tiny_models: Path, tmp_path: Path, manager: PluginManager
) -> None:
    with pytest.raises(ConfigError, match="keep: best needs held-out pairs"):
        load_config(_config(tmp_path, pairs_file, tiny_models, keep="best"), manager)
    with pytest.raises(ConfigError, match="eval_pairs or eval_fraction, not both"):
        load_config(_config(tmp_path, pairs_file, tiny_models, eval_fraction=0.2, eval_pairs=str(pairs_file)), manager)
    same = load_config(_config(tmp_path, pairs_file, tiny_models, eval_pairs=str(pairs_file)), manager)
    with pytest.raises(UserError, match="pair ids also in"):
        run_training(same, tmp_path / "out", manager)
