"""The shared prefix (``trainers/shared_prefix.py``): a pair's prompt and video computed once for both answers
give the log-probs, loss and gradients of the full computation, for every bundled family, and a training round
the same curves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from mmaip_core import VISION_PATTERN, PluginManager, TrainPair
from mmaip_core.frames import FrameLoader, FrameSettings
from mmaip_core.plugins.kinds import RoundRequest
from mmaip_plugins.trainers import shared_prefix
from mmaip_plugins.trainers.data import (
    SHARED_PREFIX,
    PreparedPairs,
    VideoPreferenceCollator,
    prepare_pairs,
    video_token_of,
)
from mmaip_plugins.trainers.features import FeatureStore, encode_video
from mmaip_plugins.trainers.shared_prefix import add_shared_prefix, shares_prefix
from mmaip_plugins.trainers.video_dpo.config import VideoDpoOptions
from mmaip_plugins.trainers.video_dpo.loss import TrlDpoObjective
from mmaip_plugins.trainers.video_dpo.trainer import VideoDpoTrainer

FAMILIES = ["qwen2-vl", "qwen2.5-vl", "qwen3-vl", "llava-onevision", "llava-next-video"]
WRONG = ["red", "it moves left and then stops", "a blue circle", "green", "up", "a yellow square"]
ATOL, RTOL = 1e-5, 1e-6
"""Summed answer log-probs agree within 1e-5, plus fp32 rounding of sums near -80 (1e-6 relative: ~10 ulps)."""
NON_MODEL = ("completion_mask", "ref_chosen_logps", "ref_rejected_logps")


def _pairs(demo_dir: Path) -> list[TrainPair]:
    """Pairs on the demo clips whose answers differ in length (padding in both the prompts and the answers)."""
    rows = [json.loads(line) for line in (demo_dir / "qa.jsonl").read_text().splitlines()]
    return [
        TrainPair(
            id=f"p{i}",
            video=str(demo_dir / row["video"]),
            prompt=row["question"] + " Answer briefly." * (i % 2),
            chosen=row["answer"],
            rejected=WRONG[i % len(WRONG)],
        )
        for i, row in enumerate(rows)
    ]


def _models(family: str, tiny_models: Path) -> tuple[Any, Any, Any]:
    """The processor, a policy (perturbed, fused head, shared prefix) and its reference (fused head, shared
    prefix), in float32."""
    from trl.trainer.utils import add_fused_lm_head

    from mmaip_plugins.zoo.hf import load_pretrained
    from mmaip_plugins.zoo.tiny import build_tiny_model

    folder = build_tiny_model(family, 0, tiny_models)
    processor, policy = load_pretrained(str(folder))
    _, reference = load_pretrained(str(folder))
    with torch.no_grad():
        for name, p in policy.named_parameters():
            if not VISION_PATTERN.search(name):
                p.add_(torch.randn_like(p) * 0.02)
    for model in (policy, reference):
        add_fused_lm_head(model, outputs=("log_probs", "entropy", "mean_logits", "is_top1"))
        assert add_shared_prefix(model) and shares_prefix(model)
    return processor, policy.eval(), reference.eval()


def _answer_logps(model: Any, batch: dict[str, Any]) -> torch.Tensor:
    """Per-answer summed log-probs (rows: chosen, then rejected), as TRL's DPO loss reads them."""
    kwargs = {k: v for k, v in batch.items() if k not in NON_MODEL}
    labels = batch["input_ids"].masked_fill(batch["completion_mask"] == 0, -100)
    return model(**kwargs, labels=labels, fused_lm_head=True, use_cache=False).log_probs.sum(1)  # type: ignore[no-any-return]


def _grads(model: Any) -> dict[str, torch.Tensor]:
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return grads


def _prepared(family: str, processor: Any, demo_dir: Path, tmp_path: Path, manager: PluginManager) -> PreparedPairs:
    loader = FrameLoader(FrameSettings(num_frames=4, cache_dir=tmp_path / "frames"), manager)  # type: ignore[call-arg]
    return prepare_pairs(_pairs(demo_dir)[:4], loader.load, processor, system_prompt=None, max_length=None)


@pytest.mark.parametrize(
    ("family", "features"), [*((f, True) for f in FAMILIES), ("qwen2-vl", False), ("llava-onevision", False)]
)
def test_shared_prefix_equals_the_full_computation(
    family: str, features: bool, demo_dir: Path, tiny_models: Path, tmp_path: Path, manager: PluginManager
) -> None:
    """Policy and reference log-probs (chosen and rejected, summed per answer) within 1e-5 of the full sequences
    in fp32, with cached vision features or pixels; the DPO loss, TRL's metrics and the gradients too."""
    processor, policy, reference = _models(family, tiny_models)
    prepared = _prepared(family, processor, demo_dir, tmp_path, manager)
    store = None
    if features:
        store = FeatureStore(tmp_path / "features")
        token_type_id = video_token_of(processor) if prepared.token_types else None
        for key, recipe in prepared.videos.recipes.items():
            store.put(key, encode_video(policy, recipe.prompt_ids, prepared.videos.inputs(key), token_type_id))
    common = {
        "pad_token_id": processor.tokenizer.pad_token_id,
        "videos": prepared.videos,
        "features": store,
        "token_types": prepared.token_types,
        "video_token_id": video_token_of(processor),
    }
    full, shared = VideoPreferenceCollator(**common), VideoPreferenceCollator(**common, shared_prefix=True)
    examples = prepared.examples
    assert SHARED_PREFIX in shared(examples) and SHARED_PREFIX not in full(examples)
    lengths = {len(e["prompt_ids"]) for e in examples}, {len(e["chosen_ids"]) for e in examples}
    assert all(len(s) > 1 for s in lengths)  # the prompts and the answers are padded

    objective = TrlDpoObjective(VideoDpoOptions(model="tiny"), _accelerator())
    ref_full = torch.cat(objective.reference_logps(reference, full(examples)))
    ref_shared = torch.cat(objective.reference_logps(reference, shared(examples)))
    torch.testing.assert_close(ref_shared, ref_full, atol=ATOL, rtol=RTOL)
    torch.testing.assert_close(
        _answer_logps(policy, shared(examples)), _answer_logps(policy, full(examples)), atol=ATOL, rtol=RTOL
    )

    scored = [
        {**e, "ref_chosen_logps": float(ref_full[i]), "ref_rejected_logps": float(ref_full[len(examples) + i])}
        for i, e in enumerate(examples)
    ]
    results = []
    for collator in (full, shared):
        loss, metrics = objective.loss(policy, collator(scored))
        loss.backward()  # type: ignore[no-untyped-call]
        results.append((float(loss.detach()), metrics, _grads(policy)))
    (loss_full, metrics_full, grads_full), (loss_shared, metrics_shared, grads_shared) = results
    assert loss_shared == pytest.approx(loss_full, abs=1e-6)
    for name in ("logps/chosen", "logps/rejected", "rewards/margins", "entropy", "logits/chosen"):
        assert metrics_shared[name] == pytest.approx(metrics_full[name], abs=1e-5), name
    assert grads_shared.keys() == grads_full.keys() and grads_full
    for name, grad in grads_full.items():
        torch.testing.assert_close(grads_shared[name], grad, atol=1e-6, rtol=1e-4, msg=name)


def _accelerator() -> Any:
    from accelerate import Accelerator

    return Accelerator(cpu=True)


def test_a_round_with_the_shared_prefix_gives_the_same_curves(
    demo_dir: Path, tiny_models: Path, tmp_path: Path, manager: PluginManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two epochs of ``video-dpo`` with and without the shared prefix (the default): the same curves; with it,
    every reference and training forward shares the prefix."""
    calls: list[int] = []
    shared_forward = shared_prefix._shared_forward

    def counted(*args: Any) -> Any:
        calls.append(1)
        return shared_forward(*args)

    monkeypatch.setattr(shared_prefix, "_shared_forward", counted)
    loader = FrameLoader(FrameSettings(num_frames=4, cache_dir=tmp_path / "frames"), manager)  # type: ignore[call-arg]
    smoke = {"family": "qwen2-vl", "seed": 0, "cache_dir": str(tiny_models)}
    curves = []
    for shared in (False, True):
        settings = {"smoke": smoke, "learning_rate": 0.002, "batch_size": 3, "epochs": 2}
        options = VideoDpoOptions.model_validate(settings if shared else {**settings, "shared_prefix": False})
        trainer = VideoDpoTrainer(options)
        base = tmp_path / f"base-{shared}"
        trainer.save_base(base)
        request = RoundRequest(
            round=1,
            reference=base,
            pairs=_pairs(demo_dir),
            out=tmp_path / f"out-{shared}",
            work=tmp_path / f"work-{shared}",
            cache=tmp_path / "cache",
            frames=loader.load,
        )
        curves.append(trainer.train_round(request).curves)
        assert len(calls) == (3 + 6 if shared else 0)  # reference: 3 batches of 3 pairs; 6 training steps
    full, shared_curves = curves
    assert len(full["loss"]) == 6
    for name in ("loss", "margin", "logp_chosen", "logp_rejected", "grad_norm"):
        assert shared_curves[name] == pytest.approx(full[name], abs=1e-4, rel=1e-4), name
    assert full["margin"][-1] > full["margin"][0]
