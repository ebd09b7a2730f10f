"""One DPO step of mmaip's video trainer against the standard step, same model, batch and machine.

    python benchmarks/train_step.py                      # tiny Qwen2-VL on the CPU (seconds)
    python benchmarks/train_step.py --shape qwen2vl-2b   # random weights with the real Qwen2-VL-2B shape (GPU)

- **standard**: what TRL's DPO trainer does with video: every step the policy runs forward and backward and
  the reference model (a second copy in memory) runs forward, each encoding the video from pixels for the
  chosen and the rejected sequence.
- **mmaip**: the reference log-probs are precomputed (no reference model in memory) and the frozen vision
  tower's features are computed once and passed as ``mm_encoder_outputs``.
- **mmaip + shared prefix**: as mmaip, and each pair's prompt and video run once for both answers
  (``trainers/shared_prefix.py``; the ``video-dpo`` default).

All use TRL's DPO objective and fused LM head (answer tokens only), a frozen vision tower, AdamW, and the
same batch (``--pairs`` pairs: prompt + video + answer tokens per sequence, as in docs/performance.md).
Precision: on a GPU fp32 weights under bf16 autocast (``--precision bf16``: bf16 weights), on the CPU fp32.
Prints one table: per variant the language-model tokens a step runs, the median seconds per step, its ratio to
the standard step, peak GPU memory, and on a known GPU the MFU (6 x language-model parameters x tokens run, over
the dense bf16 peak).
"""

from __future__ import annotations

import argparse
import gc
import math
import platform
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

import torch

VARIANTS = ("standard", "mmaip", "mmaip + shared prefix")
PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12}
"""Dense bf16 peak FLOP/s by GPU name (for MFU)."""


def _qwen2vl_2b() -> Any:
    """The configuration of Qwen2-VL-2B (random weights are built from it)."""
    from transformers import Qwen2VLConfig

    return Qwen2VLConfig(
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
    )


def _tiny() -> Any:
    """The configuration of the tests' tiny Qwen2-VL."""
    from transformers import AutoConfig

    from mmaip_plugins.zoo.tiny import build_tiny_model

    return AutoConfig.from_pretrained(build_tiny_model("qwen2-vl", 0, Path(tempfile.mkdtemp())))


def _batch(
    config: Any, pairs: int, frames: int, size: int, prompt: int, answer: int
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Examples and per-video pixel inputs shaped like the processor's (Qwen2-VL layout), for a model of
    ``config``."""
    vision = config.vision_config
    patch, merge, temporal = vision.patch_size, vision.spatial_merge_size, vision.temporal_patch_size
    side = size // patch
    grid = torch.tensor([[frames // temporal, side, side]])
    video_tokens = int(grid.prod()) // merge**2
    vocab = config.get_text_config().vocab_size
    g = torch.Generator().manual_seed(0)
    examples, videos = [], {}
    for i in range(pairs):
        ids = torch.randint(10, min(vocab, 5000), (prompt + 2 * answer,), generator=g).tolist()
        prompt_ids = ids[: prompt // 2] + [config.vision_start_token_id] + [config.video_token_id] * video_tokens
        prompt_ids += [config.vision_end_token_id, *ids[prompt // 2 : prompt - 2]]
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


def _time_steps(steps: dict[str, Any], count: int, device: torch.device) -> dict[str, tuple[float, float]]:
    """Median seconds and peak GiB (GPU) of each variant's step after a warm-up. On the CPU the variants take
    turns, step by step, so load from other work on the machine falls on all of them alike."""
    cuda = device.type == "cuda"
    order = [[name] * count for name in steps] if cuda else [list(steps)] * count
    times: dict[str, list[float]] = {name: [] for name in steps}
    peaks = dict.fromkeys(steps, float("nan"))
    for step in steps.values():
        step()  # warm-up
    for names in order:
        for name in names:
            if cuda:
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            start = time.perf_counter()
            steps[name]()
            if cuda:
                torch.cuda.synchronize()
                peaks[name] = torch.cuda.max_memory_allocated() / 2**30
            times[name].append(time.perf_counter() - start)
    return {name: (statistics.median(times[name]), peaks[name]) for name in steps}


def _variant_step(variant: str, build: Any, policy: Any, setup: dict[str, Any]) -> tuple[Any, Any]:
    """The objective and a function giving the batch of one step of ``variant``, the policy prepared for it."""
    from trl.trainer.utils import add_fused_lm_head

    from mmaip_plugins.trainers.data import VideoPreferenceCollator
    from mmaip_plugins.trainers.features import FeatureStore, encode_video
    from mmaip_plugins.trainers.shared_prefix import add_shared_prefix
    from mmaip_plugins.trainers.video_dpo.loss import TrlDpoObjective

    examples, videos, common, options, acc = (setup[k] for k in ("examples", "videos", "common", "options", "acc"))
    objective = TrlDpoObjective(options, acc)
    add_fused_lm_head(policy, outputs=objective.fused_outputs)
    if variant == "standard":
        reference = build().to(common["device"], common["dtype"]).eval().requires_grad_(False)
        add_fused_lm_head(reference)
        batch = VideoPreferenceCollator(**common)(examples)
        return TrlDpoObjective(options, acc, ref_model=reference), lambda: batch
    shared = variant == "mmaip + shared prefix"
    if shared:
        add_shared_prefix(policy)
    store = FeatureStore(Path(tempfile.mkdtemp()))
    for key, inputs in videos.items():
        prompt = next(e["prompt_ids"] for e in examples if e["video"] == key)
        store.put(key, encode_video(policy, prompt, inputs, policy.config.video_token_id))
    collator = VideoPreferenceCollator(**common, features=store, shared_prefix=shared)
    with setup["autocast"]():
        chosen, rejected = objective.reference_logps(policy.eval(), collator(examples))
    policy.train()
    scored = [
        {**e, "ref_chosen_logps": float(c), "ref_rejected_logps": float(r)}
        for e, c, r in zip(examples, chosen, rejected, strict=True)
    ]
    return objective, lambda: collator(scored)


def _prepared(variant: str, build: Any, setup: dict[str, Any]) -> tuple[Any, int]:
    """One optimizer step of ``variant`` (a function) and the language model's parameter count."""
    from mmaip_core import VISION_PATTERN

    policy = build().to(setup["common"]["device"], setup["common"]["dtype"]).train()
    for name, p in policy.named_parameters():
        p.requires_grad_(not VISION_PATTERN.search(name))
    objective, batch = _variant_step(variant, build, policy, setup)
    optimizer = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=1e-6)

    def step() -> None:
        with setup["autocast"]():
            loss, _ = objective.loss(policy, batch())
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step, sum(p.numel() for name, p in policy.named_parameters() if not VISION_PATTERN.search(name))


def _measure(build: Any, setup: dict[str, Any]) -> dict[str, tuple[float, float, int]]:
    """Median s/step, peak GiB and language-model parameters of every variant. On a GPU one variant is in memory
    at a time (freed before the next), for its own peak; on the CPU they are all built, then take turns."""
    device = setup["common"]["device"]
    if device.type != "cuda":
        prepared = {v: _prepared(v, build, setup) for v in VARIANTS}
        timed = _time_steps({v: step for v, (step, _) in prepared.items()}, setup["steps"], device)
        return {v: (*timed[v], prepared[v][1]) for v in VARIANTS}
    results = {}
    for variant in VARIANTS:
        gc.collect()
        torch.cuda.empty_cache()
        step, llm = _prepared(variant, build, setup)
        results[variant] = (*_time_steps({variant: step}, setup["steps"], device)[variant], llm)
        del step
    return results


def _tokens(variant: str, examples: list[dict[str, Any]]) -> int:
    """Tokens the language model runs per step: both full sequences of a pair, or (shared prefix) its prompt
    but the last token once, then the last prompt token and the answer for each answer."""
    if variant == "mmaip + shared prefix":
        return sum(len(e["prompt_ids"]) + 1 + len(e["chosen_ids"]) + len(e["rejected_ids"]) for e in examples)
    return sum(len(e["prompt_ids"]) * 2 + len(e["chosen_ids"]) + len(e["rejected_ids"]) for e in examples)


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shape", choices=["tiny", "qwen2vl-2b"], default="tiny")
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=336)
    parser.add_argument("--prompt", type=int, default=64)
    parser.add_argument("--answer", type=int, default=128)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads of torch (default: torch's)")
    parser.add_argument(
        "--precision",
        choices=["autocast", "bf16", "fp32"],
        default=None,
        help="autocast: fp32 weights, bf16 autocast (GPU default); bf16: bf16 weights; fp32 (CPU default)",
    )
    args = parser.parse_args()
    if args.shape == "tiny":
        args.size, args.prompt, args.answer = 112, 16, 16
    args.precision = args.precision or ("autocast" if torch.cuda.is_available() else "fp32")
    return args


def _setup(args: argparse.Namespace, config: Any) -> dict[str, Any]:
    """What every variant shares: the examples and videos, the collator's settings, options, precision."""
    from accelerate import Accelerator

    from mmaip_plugins.trainers.video_dpo.config import VideoDpoOptions

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if args.precision == "bf16" else torch.float32
    examples, videos = _batch(config, args.pairs, args.frames, args.size, args.prompt, args.answer)
    common = {
        "pad_token_id": 0,
        "videos": _Videos(videos),
        "token_types": True,
        "video_token_id": config.video_token_id,
        "device": device,
        "dtype": dtype,
    }
    autocast = args.precision == "autocast"
    return {
        "examples": examples,
        "videos": videos,
        "common": common,
        "options": VideoDpoOptions(model="bench", learning_rate=1e-6),
        "acc": Accelerator(cpu=device.type == "cpu"),
        "steps": args.steps,
        "autocast": lambda: torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast),
    }


def main() -> None:
    args = _arguments()
    torch.manual_seed(0)
    if args.threads:
        torch.set_num_threads(args.threads)
    from transformers import AutoModelForImageTextToText

    config = _qwen2vl_2b() if args.shape == "qwen2vl-2b" else _tiny()
    setup = _setup(args, config)

    def build() -> Any:
        return AutoModelForImageTextToText.from_config(config, attn_implementation="sdpa")

    results = _measure(build, setup)
    cuda = torch.cuda.is_available()
    machine = torch.cuda.get_device_name() if cuda else f"{platform.processor() or platform.machine()} CPU"
    peak = next((flops for name, flops in PEAK_BF16.items() if cuda and name in machine), None)
    print(
        f"# {date.today()} {machine}, torch {torch.__version__}, {args.shape}, {args.pairs} pairs, "
        f"{args.frames} frames at {args.size}px, precision {args.precision}, {args.steps} timed steps, "
        f"{torch.get_num_threads()} threads"
    )
    print("| variant | LLM tokens/step | s/step | × standard | peak GiB | MFU |\n|---|---|---|---|---|---|")
    standard = results["standard"][0]
    for name, (seconds, memory, llm) in results.items():
        tokens = _tokens(name, setup["examples"])
        mfu = f"{6 * llm * tokens / seconds / peak:.2f}" if peak else "-"
        gib = "-" if math.isnan(memory) else f"{memory:.1f}"
        print(f"| {name} | {tokens:,} | {seconds:.4f} | {seconds / standard:.3f} | {gib} | {mfu} |")


if __name__ == "__main__":
    main()
