"""Bounded-memory benchmark: peak memory and time per question of `mmaip build` and `mmaip evaluate` as the
number of questions grows.

    python benchmarks/scale.py [--sizes 500,2000,10000] [--quick] [--latency 0.01] [--concurrency 8]
                               [--videos DIR] [--rss-limit-gib 16] [--no-evaluate] [--vision-judge]
                               [--extra-args "--engine ray"] [--keep]

For each size N: N questions, one synthetic video each (320×320, 8 frames, every video different), 8 frames
sampled (`uniform`); `mmaip build` with a zoo of two `openai` models (whose answers differ) and an
`openai-judge` scorer (text-only; `--vision-judge` sends it the frames), then `mmaip evaluate` of the same two
models on the same questions with the `text-judge` evaluator (`vision-judge` with `--vision-judge`); each API
plugin has `concurrency` 8; all against the test suite's OpenAI-compatible stand-in (tests/api_mock.py, fixed
latency) in its own process. `--quick` runs sizes 100 and 400 (a smoke run).

The videos are written once into `--videos` (default: mmaip-bench-videos in the temporary folder) and reused by
later runs and sizes. The frame cache lives in this run's temporary folder (removed at the end unless
`--keep`; it holds 2.4 MB per video: about 24 GB at 10,000). Before each size, `mmaip build --dry-run` (which
calls nothing) decodes into it every video it lacks, so the figures are for a warm frame cache; that pass is
reported too. Every command runs in a subprocess into a fresh run folder (nothing comes from a ledger) against
a fresh stand-in; the resident memory of its process tree is sampled every 0.1 s and the tree is killed above
`--rss-limit-gib` (the machine is shared).

Prints Markdown tables: per command and N, wall seconds (start-up included), milliseconds per question, peak
RSS of the process tree (sampled) and of its largest process (the kernel's ru_maxrss), requests the stand-in
answered, and peak(N) / peak(first size) and time per question(N) / time per question(first size).
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from harness import (
    MIB,
    Measured,
    StandIn,
    api_entry,
    check,
    default_mmaip,
    free_prices,
    machine_line,
    make_videos,
    run_measured,
    table,
    write_questions,
)

MODELS = ("signed-zoo-a", "signed-zoo-b")  # the stand-in's "signed" models answer differently
JUDGE = "bench-judge"
GIB = 1024 * MIB


@dataclass
class Row:
    """One command at one size."""

    command: str
    size: int
    measured: Measured
    requests: int
    failed: int


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="500,2000,10000", help="numbers of questions (500,2000,10000)")
    parser.add_argument("--quick", action="store_true", help="sizes 100,400 (a smoke run)")
    parser.add_argument("--latency", type=float, default=0.01, help="seconds per request (0.01)")
    parser.add_argument("--concurrency", type=int, default=8, help="of each API model and judge (8)")
    parser.add_argument("--size", type=int, default=320, help="video side in pixels (320)")
    parser.add_argument("--frames", type=int, default=8, help="frames per video, all sampled (8)")
    parser.add_argument("--videos", type=Path, default=Path(tempfile.gettempdir()) / "mmaip-bench-videos")
    parser.add_argument("--rss-limit-gib", type=float, default=16.0, help="kill a command's tree above this (16)")
    parser.add_argument("--no-evaluate", action="store_true", help="measure `mmaip build` only")
    parser.add_argument("--vision-judge", action="store_true", help="the judges see the frames")
    parser.add_argument("--mmaip", default=default_mmaip(), help="the mmaip command")
    parser.add_argument("--extra-args", default="", help="more options for build and evaluate, e.g. '--engine ray'")
    parser.add_argument("--keep", action="store_true", help="keep the run folders and the frame cache")
    args = parser.parse_args()
    args.sizes = [100, 400] if args.quick else [int(n) for n in args.sizes.split(",")]
    return args


def write_config(args: argparse.Namespace, work: Path, qa: Path, size: int) -> Path:
    """One config for both commands: build sections and evaluation sections."""
    judge = {"name": "openai-judge", "model": JUDGE, "concurrency": args.concurrency}
    config: dict[str, Any] = {
        "samples": {"reader": "jsonl", "path": str(qa)},
        "frames": {"sampler": "uniform", "num_frames": args.frames, "cache_dir": str(work / "frames")},
        "zoo": [api_entry(f"zoo-{m[-1]}", m, args.concurrency) for m in MODELS],
        "scorer": {**judge, "vision": args.vision_judge},
        "pairs": {"strategy": "best-worst"},
        "prices": free_prices([*MODELS, JUDGE]),
        "benchmarks": [{"name": "synthetic", "reader": "jsonl", "path": str(qa)}],
        "models": [api_entry(f"model-{m[-1]}", m, args.concurrency) for m in MODELS],
        "evaluators": [{"name": "vision-judge" if args.vision_judge else "text-judge", "judge": judge}],
    }
    path = work / f"run-{size}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def measure(args: argparse.Namespace, command: list[str], out: Path, size: int) -> Row:
    """``mmaip COMMAND CONFIG --out OUT ...`` against a fresh stand-in."""
    with StandIn(args.latency) as server:
        argv = [args.mmaip, *command[:2], "--out", str(out), *command[2:]]
        measured = run_measured(
            argv, server.env(), out.with_name(out.name + ".log"), int(args.rss_limit_gib * GIB), interval=0.1
        )
        check(measured, " ".join(argv))
        timings = server.stats()["timings"]
    name = command[0] + (" --dry-run" if "--dry-run" in command else "")
    return Row(name, size, measured, len(timings), sum(t["status"] != 200 for t in timings))


def run_size(args: argparse.Namespace, work: Path, size: int) -> list[Row]:
    qa = write_questions(args.videos, f"qa-{args.size}px-{args.frames}f-{size}.jsonl", videos_for(args, size))
    config = str(write_config(args, work, qa, size))
    extra = shlex.split(args.extra_args)
    rows = [measure(args, ["build", config, "--dry-run"], work / f"warm-{size}", size)]
    rows.append(measure(args, ["build", config, *extra], work / f"build-{size}", size))
    if not args.no_evaluate:
        rows.append(measure(args, ["evaluate", config, *extra], work / f"evaluate-{size}", size))
    for row in rows:
        print(f"  {row.command} N={size}: {row.measured.seconds:.1f} s", flush=True)
    return rows


def videos_for(args: argparse.Namespace, size: int) -> list[str]:
    return make_videos(args.videos, size, args.size, args.frames)


def _cells(row: Row, first: Row | None) -> list[str]:
    m = row.measured
    per_question = m.seconds / row.size
    cells = [row.command, str(row.size), "killed at the memory limit" if m.killed else f"{m.seconds:.1f}"]
    cells += [f"{1000 * per_question:.1f}", f"{m.peak_tree_rss / MIB:.0f}", f"{m.max_rss / MIB:.0f}"]
    cells += [f"{row.requests}" + (f" ({row.failed} failed)" if row.failed else "")]
    if first is None:
        return [*cells, "1.00", "1.00"]
    base = first.measured
    return [*cells, f"{m.peak_tree_rss / base.peak_tree_rss:.2f}", f"{per_question / (base.seconds / first.size):.2f}"]


def report(args: argparse.Namespace, rows: list[Row]) -> None:
    judge = "vision" if args.vision_judge else "text-only"
    print(
        f"\n{machine_line()}; stand-in latency {args.latency:g} s; {args.size}×{args.size} videos of {args.frames} "
        f"frames, {args.frames} sampled; 2 API models + API judge ({judge}), concurrency {args.concurrency} each; "
        f"warm frame cache (build --dry-run first); command: {args.mmaip}"
        + (f" (with {args.extra_args})" if args.extra_args else "")
    )
    head = ["command", "N", "wall (s)", "ms per question", "peak RSS, tree (MiB)", "max RSS, one process (MiB)"]
    head += ["requests", f"peak / peak(N={args.sizes[0]})", f"time per question / (N={args.sizes[0]})"]
    lines = []
    for command in dict.fromkeys(row.command for row in rows):
        mine = [row for row in rows if row.command == command]
        lines += [_cells(row, None if i == 0 else mine[0]) for i, row in enumerate(mine)]
    print("\n" + table(head, lines))


def main() -> None:
    args = parse_args()
    print(f"Writing {max(args.sizes)} videos into {args.videos} (those already there are reused)", flush=True)
    videos_for(args, max(args.sizes))
    work = Path(tempfile.mkdtemp(prefix="mmaip-bench-scale-"))
    try:
        rows = [row for size in args.sizes for row in run_size(args, work, size)]
        report(args, rows)
    finally:
        if args.keep:
            print(f"\nRun folders, logs and frame cache: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
