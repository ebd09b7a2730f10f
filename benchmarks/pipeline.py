"""Pipelined build benchmark: does `mmaip build` keep every API endpoint busy, tail latencies included?

    python benchmarks/pipeline.py [--questions 200] [--runs 3] [--latency 0.05] [--tail 0.2:2]
                                  [--concurrency 8] [--judge-concurrency 8] [--extra-args "--engine ray"] [--keep]

200 questions, one synthetic video each (64×64, 8 frames), a zoo of three `openai` generators (different model
names, whose answers differ: the stand-in's `signed` models sign them) and an `openai-judge` scorer (text-only),
each with `concurrency` 8, against the test suite's OpenAI-compatible stand-in (tests/api_mock.py) in its own
process: 600 answers and 600 judgements. (The stand-in's judge gives every answer the same score, so the build
writes no pair; the benchmark measures the calls.) Two conditions: every request takes the
latency (0.05 s); and 20% of requests (chosen by a hash of the body, so the same ones every run) take 2 s.
Each condition runs `mmaip build` in a subprocess `--runs` times, each into a fresh run folder against a fresh
stand-in (nothing comes from a ledger); the frame cache is warm (a `mmaip build --dry-run` decodes every video
first). `--mmaip` names the command (default: the one beside this Python), `--extra-args` adds options.

Prints Markdown tables, each figure the median of the runs:

- wall: seconds of the `mmaip build` process, start to exit (start-up and output writing included);
- ideal: total requests × mean latency / total requests in flight (the sum of every endpoint's concurrency),
  with the mean latency taken from the stand-in's recorded request durations;
- wall / ideal (the rewrite's target: at most 1.2 with the tail);
- first judge request start and last generator request end, in seconds after the process started: a judge
  request that starts before the last generator request ends shows the stages overlapping;
- peak RSS of the mmaip process tree (sampled every 0.05 s);
- and, in a second table, the span of the requests (first start to last end), the start-up (process start to
  first request), and the endpoint bound: max over endpoints of (its requests' total latency / its concurrency).
  No schedule beats that bound; it exceeds the ideal when one endpoint gets more requests per slot than the
  others. With the defaults the judge gets three requests per question and each generator one, at the same
  concurrency, so the bound is about twice the ideal and wall / ideal cannot go below about 2;
  `--judge-concurrency 24` balances the endpoints (bound = ideal), which makes the 1.2 target reachable.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import statistics
import sys
import tempfile
from dataclasses import astuple, dataclass
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

GENERATORS = ("signed-gen-a", "signed-gen-b", "signed-gen-c")  # "signed": each answers differently
JUDGE = "bench-judge"


@dataclass
class Figures:
    """One build's figures (seconds after the process started, unless said otherwise)."""

    requests: float
    failed: float
    mean_latency: float
    wall: float
    ideal: float
    ratio: float
    first_judge_start: float
    last_generator_end: float
    peak_rss_mib: float
    span: float
    startup: float
    bound: float


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--questions", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per request (0.05)")
    parser.add_argument("--tail", default="0.2:2", help="FRACTION:SECONDS of the tail condition (0.2:2)")
    parser.add_argument("--concurrency", type=int, default=8, help="of each zoo model (8)")
    parser.add_argument("--judge-concurrency", type=int, default=None, help="of the judge (--concurrency)")
    parser.add_argument("--size", type=int, default=64, help="video side in pixels (64)")
    parser.add_argument("--frames", type=int, default=8, help="frames per video, all sampled (8)")
    parser.add_argument("--mmaip", default=default_mmaip(), help="the mmaip command")
    parser.add_argument("--extra-args", default="", help="more options for `mmaip build`, e.g. '--engine ray'")
    parser.add_argument("--keep", action="store_true", help="keep the run folders and logs")
    return parser.parse_args()


def concurrency_of(args: argparse.Namespace) -> dict[str, int]:
    """The concurrency of each model id (the stand-in records model ids)."""
    return {**dict.fromkeys(GENERATORS, args.concurrency), JUDGE: args.judge_concurrency or args.concurrency}


def write_config(args: argparse.Namespace, work: Path) -> tuple[Path, dict[str, int]]:
    """The run config, and the concurrency of each model id."""
    videos = make_videos(work, args.questions, args.size, args.frames)
    qa = write_questions(work, "qa.jsonl", videos)
    concurrency = concurrency_of(args)
    config: dict[str, Any] = {
        "samples": {"reader": "jsonl", "path": str(qa)},
        "frames": {"sampler": "uniform", "num_frames": args.frames, "cache_dir": str(work / "frames")},
        "zoo": [api_entry(f"gen-{m[-1]}", m, concurrency[m]) for m in GENERATORS],
        "scorer": {"name": "openai-judge", "model": JUDGE, "concurrency": concurrency[JUDGE]},
        "pairs": {"strategy": "best-worst"},
        "prices": free_prices([*GENERATORS, JUDGE]),
    }
    path = work / "run.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path, concurrency


def figures(measured: Measured, stats: dict[str, Any], concurrency: dict[str, int]) -> Figures:
    timings = stats["timings"]
    durations: dict[str, float] = dict.fromkeys(concurrency, 0.0)
    for t in timings:
        durations[t["model"]] = durations.get(t["model"], 0.0) + t["end"] - t["start"]
    total = sum(durations.values())
    ideal = total / sum(concurrency.values())
    bound = max(ideal, *(durations[m] / c for m, c in concurrency.items()))
    starts = [t["start"] - measured.start for t in timings]
    ends = [t["end"] - measured.start for t in timings]
    judged = [t["start"] - measured.start for t in timings if t["role"] == "judge"]
    generated = [t["end"] - measured.start for t in timings if t["role"] == "generator"]
    return Figures(
        requests=len(timings),
        failed=sum(t["status"] != 200 for t in timings),
        mean_latency=total / len(timings),
        wall=measured.seconds,
        ideal=ideal,
        ratio=measured.seconds / ideal,
        first_judge_start=min(judged),
        last_generator_end=max(generated),
        peak_rss_mib=measured.peak_tree_rss / MIB,
        span=max(ends) - min(starts),
        startup=min(starts),
        bound=bound,
    )


def one_build(
    args: argparse.Namespace, config: Path, out: Path, tail: tuple[float, float] | None, concurrency: dict[str, int]
) -> Figures:
    with StandIn(args.latency, tail) as server:
        command = [args.mmaip, "build", str(config), "--out", str(out), *shlex.split(args.extra_args)]
        measured = run_measured(command, server.env(), out.with_name(out.name + ".log"))
        check(measured, " ".join(command))
        return figures(measured, server.stats(), concurrency)


def median(runs: list[Figures]) -> Figures:
    return Figures(*(statistics.median(values) for values in zip(*(astuple(r) for r in runs), strict=True)))


def _seconds(*values: float) -> list[str]:
    return [f"{v:.2f}" for v in values]


def report(args: argparse.Namespace, results: dict[str, Figures], concurrency: dict[str, int]) -> None:
    in_flight = sum(concurrency.values())
    print(
        f"{machine_line()}; {args.questions} questions ({args.size}×{args.size}, {args.frames} frames), "
        f"3 generators + 1 judge, concurrency {', '.join(str(c) for c in concurrency.values())} "
        f"({in_flight} in flight); warm frame cache; median of {args.runs} runs; command: {args.mmaip} build"
        + (f" {args.extra_args}" if args.extra_args else "")
    )
    head = ["condition", "requests", "mean latency (s)", "wall (s)", "ideal (s)", "wall / ideal"]
    head += ["first judge request starts (s)", "last generator request ends (s)", "peak RSS (MiB)"]
    rows = [
        [
            name,
            f"{f.requests:.0f}",
            f"{f.mean_latency:.3f}",
            *_seconds(f.wall, f.ideal, f.ratio, f.first_judge_start),
            *_seconds(f.last_generator_end),
            f"{f.peak_rss_mib:.0f}",
        ]
        for name, f in results.items()
    ]
    print("\n" + table(head, rows))
    head = ["condition", "start-up (s)", "requests span (s)", "span / ideal", "endpoint bound (s)", "wall / bound"]
    rows = [
        [name, *_seconds(f.startup, f.span, f.span / f.ideal, f.bound, f.wall / f.bound)] for name, f in results.items()
    ]
    print("\n" + table(head, rows))
    failed = {name: f.failed for name, f in results.items() if f.failed}
    if failed:
        print(f"\nRequests answered with an error (median per run): {failed}")


def main() -> None:
    args = parse_args()
    fraction, _, seconds = args.tail.partition(":")
    tail = (float(fraction), float(seconds))
    work = Path(tempfile.mkdtemp(prefix="mmaip-bench-pipeline-"))
    try:
        report(args, measure_conditions(args, work, tail), concurrency_of(args))
    finally:
        if args.keep:
            print(f"\nRun folders and logs: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def measure_conditions(args: argparse.Namespace, work: Path, tail: tuple[float, float]) -> dict[str, Figures]:
    """The median figures of each condition (no tail, then the tail), after a warm-up that decodes the videos."""
    config, concurrency = write_config(args, work)
    with StandIn(args.latency) as server:  # fills the frame cache; calls nothing
        check(
            run_measured(
                [args.mmaip, "build", str(config), "--out", str(work / "warm"), "--dry-run"],
                server.env(),
                work / "warm.log",
            ),
            "the warm-up (mmaip build --dry-run)",
        )
    conditions = {f"latency {args.latency:g} s": None, f"{tail[1]:g} s tail on {tail[0]:.0%}": tail}
    results: dict[str, Figures] = {}
    for c, (name, condition) in enumerate(conditions.items()):
        runs = []
        for i in range(args.runs):
            runs.append(one_build(args, config, work / f"run-{c}-{i}", condition, concurrency))
            print(f"  {name}, run {i + 1}: {runs[-1].wall:.2f} s, wall / ideal {runs[-1].ratio:.2f}", file=sys.stderr)
        results[name] = median(runs)
    return results


if __name__ == "__main__":
    main()
