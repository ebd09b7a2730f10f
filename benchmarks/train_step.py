"""One DPO step of mmaip's video trainer against the standard step, same model, batch and machine.

    python benchmarks/train_step.py                      # tiny Qwen2-VL on the CPU (seconds)
    python benchmarks/train_step.py --shape qwen2vl-2b   # random weights with the real Qwen2-VL-2B shape (GPU)

- **standard**: what TRL's DPO trainer does with video: every step the policy runs forward and backward and
  the reference model (a second copy in memory) runs forward, each encoding the video from pixels for the
  chosen and the rejected sequence.
- **mmaip**: the reference log-probs are precomputed (no reference model in memory) and the frozen vision
  tower's features are computed once and passed as ``mm_encoder_outputs``.

Both use TRL's DPO objective and fused LM head (answer tokens only), a frozen vision tower, AdamW, and the
same batch (``--pairs`` pairs: prompt + video + answer tokens per sequence, as in docs/performance.md).
Reports median seconds per step and peak memory, and their ratios (mmaip / standard).
"""

from __future__ import annotations

import argparse
import gc
import platform
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

import torch


def _qwen2vl_2b() -> Any:
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

    config = Qwen2VLConfig(
        text_config={
            "hidden_size": 1536,
            "num_hidden_layers": 28,
            "num_attention_heads": 12,
            "num_key_value_heads": 2,
            "intermediate_size": 8960,
            "vocab_size": 151936,
            "max_position_embeddings": 32768,
            "rope_parameters": {"rope_type": "default", "rope_theta": 1e6, "mrope_section": [16, 24, 24]},
            "tie_word_embeddings": True,
        },
        vision_config={
            "depth": 32,
            "embed_dim": 1280,
            "hidden_size": 1536,
            "num_heads": 16,
            "mlp_ratio": 4,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
        },
        video_token_id=151656,
        image_token_id=151655,
        vision_start_token_id=151652,
        vision_end_token_id=151653,
        attn_implementation="sdpa",
    )
    return Qwen2VLForConditionalGeneration(config)


def _tiny() -> Any:
    from transformers import AutoModelForImageTextToText

    from mmaip_plugins.zoo.tiny import build_tiny_model

    return AutoModelForImageTextToText.from_pretrained(build_tiny_model("qwen2-vl", 0, Path(tempfile.mkdtemp())))


def _batch(
    model: Any, pairs: int, frames: int, size: int, prompt: int, answer: int
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Examples and per-video pixel inputs shaped like the processor's (Qwen2-VL layout)."""
    vision = model.config.vision_config
    patch, merge, temporal = vision.patch_size, vision.spatial_merge_size, vision.temporal_patch_size
    side = size // patch
    grid = torch.tensor([[frames // temporal, side, side]])
    video_tokens = int(grid.prod()) // merge**2
    vocab = model.config.get_text_config().vocab_size
    g = torch.Generator().manual_seed(0)
    examples, videos = [], {}
    for i in range(pairs):
        ids = torch.randint(10, min(vocab, 5000), (prompt + 2 * answer,), generator=g).tolist()
        prompt_ids = (
            ids[: prompt // 2] + [model.config.vision_start_token_id] + [model.config.video_token_id] * video_tokens
        )
        prompt_ids += [model.config.vision_end_token_id, *ids[prompt // 2 : prompt - 2]]
        examples.append(
            {
                "id": f"p{i}",
                "video": f"v{i}",
                "prompt_ids": prompt_ids,
                "chosen_ids": ids[prompt : prompt + answer],
                "rejected_ids": ids[prompt + answer :],
            }
        )
        pixels = torch.randn(int(grid.prod()), 3 * temporal * patch * patch, generator=g)
        videos[f"v{i}"] = {"pixel_values_videos": pixels, "video_grid_thw": grid}
    return examples, videos


class _Videos:
    """Pixel inputs made beforehand, by video key (the collator's ``videos``: a VideoInputSource)."""

    def __init__(self, inputs: dict[str, dict[str, torch.Tensor]]) -> None:
        self._inputs = inputs

    def kept(self, key: str) -> dict[str, torch.Tensor]:
        return {k: v for k, v in self._inputs[key].items() if not k.startswith("pixel_values")}

    def inputs(self, key: str) -> dict[str, torch.Tensor]:
        return self._inputs[key]


def _time_steps(step: Any, steps: int, device: torch.device) -> tuple[float, float]:
    step()  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
    return statistics.median(times), peak


def _run_variant(
    variant: str, build: Any, args: Any, options: Any, acc: Any, device: torch.device, dtype: torch.dtype
) -> tuple[float, float, int]:
    """Median s/step, peak GiB and tokens per step of one variant; what it allocates is freed when it returns."""
    from trl.trainer.utils import add_fused_lm_head

    from mmaip_core import VISION_PATTERN
    from mmaip_plugins.trainers.data import VideoPreferenceCollator
    from mmaip_plugins.trainers.features import FeatureStore, encode_video
    from mmaip_plugins.trainers.video_dpo.loss import TrlDpoObjective

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    policy = build().to(device, dtype).train()
    for name, p in policy.named_parameters():
        p.requires_grad_(not VISION_PATTERN.search(name))
    examples, videos = _batch(policy, args.pairs, args.frames, args.size, args.prompt, args.answer)
    common = {
        "pad_token_id": 0,
        "videos": _Videos(videos),
        "token_types": True,
        "video_token_id": policy.config.video_token_id,
        "device": device,
        "dtype": dtype,
    }
    objective = TrlDpoObjective(options, acc)
    add_fused_lm_head(policy, outputs=objective.fused_outputs)
    batch = None
    if variant == "standard":
        reference = build().to(device, dtype).eval().requires_grad_(False)
        add_fused_lm_head(reference)
        objective = TrlDpoObjective(options, acc, ref_model=reference)
        collator = VideoPreferenceCollator(**common)
        batch = collator(examples)
    else:
        store = FeatureStore(Path(tempfile.mkdtemp()))
        for key, inputs in videos.items():
            prompt = next(e["prompt_ids"] for e in examples if e["video"] == key)
            store.put(key, encode_video(policy, prompt, inputs, policy.config.video_token_id))
        collator = VideoPreferenceCollator(**common, features=store)
        chosen, rejected = objective.reference_logps(policy.eval(), collator(examples))
        policy.train()
        examples = [
            {**e, "ref_chosen_logps": float(c), "ref_rejected_logps": float(r)}
            for e, c, r in zip(examples, chosen, rejected, strict=True)
        ]
    optimizer = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=1e-6)

    def step() -> None:
        loss, _ = objective.loss(policy, batch if batch is not None else collator(examples))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    tokens = sum(len(e["prompt_ids"]) * 2 + len(e["chosen_ids"]) + len(e["rejected_ids"]) for e in examples)
    return (*_time_steps(step, args.steps, device), tokens)


def main() -> None:
    from accelerate import Accelerator

    from mmaip_plugins.trainers.video_dpo.config import VideoDpoOptions

    parser = argparse.ArgumentParser()
    parser.add_argument("--shape", choices=["tiny", "qwen2vl-2b"], default="tiny")
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=336)
    parser.add_argument("--prompt", type=int, default=64)
    parser.add_argument("--answer", type=int, default=128)
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    dtype = torch.bfloat16 if cuda else torch.float32
    if args.shape == "tiny":
        args.size, args.prompt, args.answer = 112, 16, 16
    torch.manual_seed(0)
    build = _qwen2vl_2b if args.shape == "qwen2vl-2b" else _tiny
    options = VideoDpoOptions(model="bench", learning_rate=1e-6)
    acc = Accelerator(cpu=not cuda)
    results = {v: _run_variant(v, build, args, options, acc, device, dtype) for v in ("standard", "mmaip")}
    tokens = results["mmaip"][2]
    machine = torch.cuda.get_device_name() if cuda else f"{platform.processor() or platform.machine()} CPU"
    print(
        f"# {date.today()} {machine}, torch {torch.__version__}, {args.shape}, {args.pairs} pairs, "
        f"{tokens} tokens/step, {args.frames} frames at {args.size}px, dtype {dtype}"
    )
    print("| variant | s/step | tokens/s | peak GiB |\n|---|---|---|---|")
    for name, (seconds, peak, _) in results.items():
        print(f"| {name} | {seconds:.4f} | {tokens / seconds:,.0f} | {peak:.1f} |")
    (s_std, m_std, _), (s_ours, m_ours, _) = results["standard"], results["mmaip"]
    print(f"\nstep time mmaip / standard = {s_ours / s_std:.3f}; peak memory ratio = {m_ours / m_std:.3f}")


if __name__ == "__main__":
    main()
