"""Build benchmark against a local OpenAI-compatible server with a fixed latency.

    python benchmarks/build.py [--latency 0.1] [--calls 256]

1. Achieved requests/s of the API call layer at several concurrency levels, against the ideal
   min(concurrency, calls) / latency. The server runs in its own process, so it does not share the
   client's interpreter lock.
2. A whole build (two API zoo models + an API judge on the demo questions), then the same command again:
   the rerun makes no call, and its time is the overhead of reading the ledger, frames and files.

Prints Markdown tables for docs/benchmarks.md. Uses the test suite's local server (tests/api_mock.py).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


from mmaip_core import GenerationRequest, PluginManager, VideoQA
from mmaip_core.config import load_config
from mmaip_core.frames import FrameLoader, FrameSettings
from mmaip_core.stages.build import run_build
from mmaip_core.testbeds.synthetic import make_demo_dataset


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--calls", type=int, default=256)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    qa = make_demo_dataset(tmp / "data", num_videos=6)
    os.environ["OPENAI_API_KEY"] = "sk-bench"
    manager = PluginManager()
    mock = Path(__file__).resolve().parents[1] / "tests" / "api_mock.py"
    server = subprocess.Popen([sys.executable, str(mock), str(args.latency)], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        os.environ["OPENAI_BASE_URL"] = server.stdout.readline().strip()
        _run(args, tmp, qa, manager)
    finally:
        server.kill()


def _run(args: argparse.Namespace, tmp: Path, qa: Path, manager: PluginManager) -> None:
    frames = FrameLoader(FrameSettings(cache_dir=tmp / "frames"), manager).load(tmp / "data/videos/clip000.mp4")
    sample = VideoQA(id="q", video="v", question="What moves?")
    print(
        f"Machine: {platform.machine()}, {os.cpu_count()} cores; {date.today()}; server latency {args.latency} s; "
        f"{args.calls} calls, 1 frame each"
    )
    print("\n| concurrency | seconds | requests/s | ideal requests/s | achieved / ideal |\n|---|---|---|---|---|")
    for concurrency in (1, 4, 16, 64):
        calls = args.calls if concurrency > 1 else max(16, args.calls // 16)
        requests = [
            GenerationRequest(id=f"c{concurrency}-{i}", sample=sample, frames=frames, sample_index=i)
            for i in range(calls)
        ]
        generator = manager.create(
            "generator",
            "openai",
            {
                "model": "gpt-4o-mini",
                "concurrency": concurrency,
                "max_frames": 1,
                "params": {"seed": concurrency * 100000},
            },
        )
        start = time.perf_counter()
        responses = generator.generate(requests, model="bench")
        seconds = time.perf_counter() - start
        assert all(r.error is None for r in responses)
        ideal = min(concurrency, calls) / args.latency
        print(
            f"| {concurrency} | {seconds:.2f} | {calls / seconds:.1f} | {ideal:.1f} | {calls / seconds / ideal:.2f} |"
        )

    config = tmp / "run.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "samples": {"path": str(qa)},
                "frames": {"num_frames": 8, "cache_dir": str(tmp / "frames")},
                "zoo": [
                    {"name": "a", "generator": "openai", "model": "gpt-4o-mini", "n": 2, "concurrency": 16},
                    {"name": "b", "generator": "openai", "model": "gpt-4o", "concurrency": 16},
                ],
                "scorer": {"name": "openai-judge", "model": "gpt-4o", "vision": True, "concurrency": 16},
            }
        )
    )
    timings = []
    for _ in range(2):
        start = time.perf_counter()
        summary = run_build(load_config(config, manager), tmp / "run", manager)
        new_calls = sum(c["new"] for c in summary.responses.values()) + summary.judgements["new"]
        timings.append((time.perf_counter() - start, new_calls, summary))
    (first, first_calls, s), (again, again_calls, _) = timings
    print(
        "\n| build (18 questions, 3 answers each, 54 judgements; concurrency 16) | seconds | API calls |\n|---|---|---|"
    )
    print(f"| first run | {first:.2f} | {first_calls} |")
    print(f"| rerun of the finished build | {again:.2f} | {again_calls} |")
    print(f"\nRerun / first run: {again / first:.3f}; pairs {s.pairs}; cost ${s.cost_usd:.4f} (list prices)")


if __name__ == "__main__":
    main()
