"""Frame decoding benchmark: decord vs PyAV on a 300-frame video, and the frame cache.

    python benchmarks/frames.py [--repeats 7] [--size 320]

Prints a Markdown table (median of the repeats; ratios against decord on the same machine in the same
run) for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

from mmaip_core import PluginManager, VideoInfo
from mmaip_core.frames import FrameLoader, FrameSettings, decode
from mmaip_core.testbeds.synthetic import ShapeClip, render_clip, write_video
from mmaip_plugins.samplers import uniform_indices


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up (imports, page cache)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--size", type=int, default=320)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    video = write_video(tmp / "bench.mp4", render_clip(ShapeClip("circle", "red", "right", 300, args.size, 30)), 30)

    def uniform(k: int) -> Callable[[VideoInfo, object], list[int]]:
        return lambda info, _source: uniform_indices(info.num_frames, k)

    rows = []
    for label, k in (("8 uniform frames", 8), ("all 300 frames", 300)):
        select = uniform(k)
        times = {
            b: median_seconds(lambda b=b, select=select: decode(video, select, backend=b), args.repeats)
            for b in ("decord", "pyav")
        }
        rows.append((label, times["decord"], times["pyav"]))

    manager = PluginManager()
    cache = tmp / "cache"

    def cold() -> None:
        FrameLoader(FrameSettings(cache_dir=cache / str(time.perf_counter_ns())), manager).load(video)

    warm_loader = FrameLoader(FrameSettings(cache_dir=cache / "warm"), manager)
    warm_loader.load(video)
    cold_s = median_seconds(cold, args.repeats)
    warm_s = median_seconds(lambda: warm_loader.load(video), args.repeats)

    print(
        f"Machine: {platform.machine()}, {platform.processor() or 'cpu'}; {date.today()}; "
        f"video {args.size}x{args.size}, 300 frames, H.264; median of {args.repeats}"
    )
    print("\n| decode | decord (s) | PyAV (s) | PyAV / decord |\n|---|---|---|---|")
    for label, d, p in rows:
        print(f"| {label} | {d:.4f} | {p:.4f} | {p / d:.2f} |")
    print("\n| FrameLoader, 8 uniform frames | seconds | ratio to first load |\n|---|---|---|")
    print(f"| first load (decode + cache write) | {cold_s:.4f} | 1.00 |")
    print(f"| second load (cache hit, nothing decoded) | {warm_s:.4f} | {warm_s / cold_s:.3f} |")


if __name__ == "__main__":
    main()
