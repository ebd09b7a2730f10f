"""Peak memory of training against the number of videos (issue 13): the same round on 200 and on 2,000 videos.

    python benchmarks/train_memory.py                      # 200 and 2,000 videos (a few minutes on 2 CPU cores)
    python benchmarks/train_memory.py --videos 100 1000 --batch-size 4

Synthetic clips (64x64, 8 frames; a moving shape plus a noise patch of their own, so every video's content and
frame-cache entry differ), one preference pair per video. Each run is one round of ``mmaip train`` (the
``video-dpo`` trainer on the tests' tiny random Qwen2-VL, frozen vision tower, one epoch, no extrapolation) with
its own frame cache and vision-feature cache, in a fresh process, whose peak resident set size (``ru_maxrss``)
it reports; ``--trainable-vision``: pixels go in every step (made per batch) instead of cached features. Training
memory that does not grow with the data gives a ratio near 1. Prints a Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import yaml

from mmaip_core.testbeds.synthetic import COLOURS, DIRECTIONS, SHAPES, ShapeClip, render_clip, write_video

SIZE, FRAMES = 64, 8


def make_videos(folder: Path, count: int) -> list[dict[str, str]]:
    """``count`` distinct clips in ``folder`` and one preference pair on each (chosen: the clip's colour)."""
    colours, directions = list(COLOURS), list(DIRECTIONS)
    pairs = []
    for i in range(count):
        colour = colours[i % len(colours)]
        clip = ShapeClip(SHAPES[i % len(SHAPES)], colour, directions[(i // 3) % len(directions)], FRAMES, SIZE)
        frames = render_clip(clip)
        rng = np.random.default_rng(i)  # a patch of its own: no two videos share content
        frames[:, :8, :8] = rng.integers(0, 256, (1, 8, 8, 3), dtype=np.uint8)
        path = folder / f"clip{i:05d}.mp4"
        if not path.is_file():
            write_video(path, frames)
        other = colours[(i + 1) % len(colours)]
        pairs.append(
            {
                "id": f"p{i}",
                "video": str(path),
                "prompt": "What colour is the shape?",
                "chosen": colour,
                "rejected": other,
            }
        )
    return pairs


def write_config(run: Path, pairs: list[dict[str, str]], models: Path, batch_size: int, freeze: bool) -> Path:
    """A one-round training config on ``pairs``, with the run's own frame cache."""
    pairs_file = run / "pairs.jsonl"
    pairs_file.write_text("".join(json.dumps(p) + "\n" for p in pairs))
    trainer = {
        "name": "video-dpo",
        "smoke": {"family": "qwen2-vl", "seed": 0, "cache_dir": str(models)},
        "device": "cpu",
        "learning_rate": 1e-4,
        "batch_size": batch_size,
        "freeze_vision": freeze,
        "epochs": 1,
        "save_steps": 10**6,
    }
    config = {
        "frames": {"sampler": "uniform", "num_frames": FRAMES, "cache_dir": str(run / "frames")},
        "train": {"pairs": str(pairs_file), "rounds": 1, "alpha": 0.0, "trainer": trainer},
    }
    path = run / "train.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def train(config: Path, out: Path) -> None:
    """Run the training (in the measured process) and print its peak RSS, steps and wall time as JSON."""
    from mmaip_core import PluginManager
    from mmaip_core.config import load_config
    from mmaip_core.train import run_training

    start = time.perf_counter()
    manager = PluginManager()
    manifest = run_training(load_config(config, manager), out, manager)
    result = manifest.rounds[0].result
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    report = {"peak_mib": peak_kib / 1024, "steps": result.steps, "pairs": result.pairs}
    print(json.dumps({**report, "wall_s": time.perf_counter() - start}))


def measure(config: Path, out: Path) -> dict[str, float]:
    """One training in a fresh Python process; what it reported."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}
    command = [sys.executable, __file__, "--train", str(config), str(out)]
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"training failed:\n{done.stderr[-3000:]}")
    report: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return report


def machine() -> str:
    """The CPU's model name and count (Linux), else what ``platform`` knows."""
    info = Path("/proc/cpuinfo")
    lines = info.read_text().splitlines() if info.is_file() else []
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return f"{names[0] if names else platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--videos", type=int, nargs=2, default=[200, 2000], metavar=("SMALL", "LARGE"))
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--trainable-vision", action="store_true", help="Pixels every step instead of features.")
    parser.add_argument(
        "--work", type=Path, default=None, help="Folder for videos and runs (default: a temporary one)."
    )
    parser.add_argument("--train", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.train:
        train(*args.train)
        return
    from mmaip_plugins.zoo.tiny import build_tiny_model

    work = args.work or Path(tempfile.mkdtemp(prefix="mmaip-train-memory-"))
    models = work / "tiny-models"
    build_tiny_model("qwen2-vl", 0, models)
    (work / "videos").mkdir(parents=True, exist_ok=True)
    pairs = make_videos(work / "videos", max(args.videos))
    results = {}
    for count in args.videos:
        run = work / f"run-{count}-{time.time_ns()}"
        run.mkdir()
        config = write_config(run, pairs[:count], models, args.batch_size, not args.trainable_vision)
        results[count] = measure(config, run / "out")
    small, large = args.videos
    tower = "trainable" if args.trainable_vision else "frozen"
    setup = f"tiny Qwen2-VL, {FRAMES} frames of {SIZE}x{SIZE}, batch {args.batch_size}, {tower} vision tower"
    print(f"# {date.today()} {machine()}; {setup}\n")
    print("| videos (= pairs) | steps | wall s | peak RSS MiB |\n|---|---|---|---|")
    for count, r in results.items():
        print(f"| {count:,} | {r['steps']:.0f} | {r['wall_s']:.1f} | {r['peak_mib']:,.0f} |")
    print(f"\npeak RSS {large:,} / {small:,} videos = {results[large]['peak_mib'] / results[small]['peak_mib']:.2f}")


if __name__ == "__main__":
    main()
