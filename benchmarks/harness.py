"""Shared parts of benchmarks/pipeline.py and benchmarks/scale.py (not a benchmark itself).

They drive mmaip only through its command line, in subprocesses, against the test suite's OpenAI-compatible
stand-in (tests/api_mock.py) running in a process of its own; this module starts the stand-in and reads its
request timings (GET /stats), runs a command while sampling the resident memory of its whole process tree,
writes synthetic videos (each one different, so no cache or ledger key is shared) and their questions, and
prints Markdown tables.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mmaip_core.testbeds.synthetic import COLOURS, DIRECTIONS, SHAPES, ShapeClip, render_clip, write_video

ROOT = Path(__file__).resolve().parents[1]
MOCK = ROOT / "tests" / "api_mock.py"
PAGE = os.sysconf("SC_PAGE_SIZE")
MIB = 1024 * 1024


def default_mmaip() -> str:
    """The ``mmaip`` command of the environment running the benchmark."""
    return str(Path(sys.executable).parent / "mmaip")


def machine_line() -> str:
    return f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; {date.today()}"


class StandIn:
    """tests/api_mock.py in its own process (it does not share mmaip's interpreter lock); fresh per use."""

    def __init__(self, latency_s: float, tail: tuple[float, float] | None = None) -> None:
        self.command = [sys.executable, str(MOCK), str(latency_s)]
        if tail is not None:
            self.command += ["--tail", f"{tail[0]}:{tail[1]}"]
        self.url = ""
        self.process: subprocess.Popen[str] | None = None

    def __enter__(self) -> StandIn:
        self.process = subprocess.Popen(self.command, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        self.url = self.process.stdout.readline().strip()
        if not self.url:
            raise RuntimeError(f"the stand-in did not start: {' '.join(self.command)}")
        return self

    def __exit__(self, *_: object) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()

    def env(self) -> dict[str, str]:
        """The environment for an mmaip process that talks to this server."""
        return {**os.environ, "OPENAI_BASE_URL": self.url, "OPENAI_API_KEY": "sk-bench", "HF_HUB_OFFLINE": "1"}

    def stats(self) -> dict[str, Any]:
        """GET /stats: every chat request's model, role, status and monotonic start and end."""
        with urllib.request.urlopen(self.url.removesuffix("/v1") + "/stats", timeout=60) as reply:
            result: dict[str, Any] = json.load(reply)
            return result


@dataclass
class Measured:
    """One command's run: its wall time, exit status and memory (bytes)."""

    start: float
    """time.monotonic() just before it started (the stand-in's timings are on the same clock)"""
    seconds: float
    returncode: int
    peak_tree_rss: int
    """largest sum of the resident memory of the process and all its descendants, sampled"""
    max_rss: int
    """the kernel's peak resident memory of the largest single process (wait4's ru_maxrss)"""
    killed: bool
    """stopped because the tree went over the memory limit"""
    log: Path


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            found += [int(child) for child in (task / "children").read_text().split()]
    return found


def tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and all its descendants, now (0 once it is gone)."""
    total, todo, seen = 0, [pid], set()
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        try:
            total += int(Path(f"/proc/{current}/statm").read_text().split()[1]) * PAGE
        except (OSError, IndexError, ValueError):
            continue
        todo += _children(current)
    return total


def run_measured(
    command: Sequence[str], env: dict[str, str], log: Path, rss_limit: int | None = None, interval: float = 0.05
) -> Measured:
    """Run ``command`` (output into ``log``), sampling its process tree's memory every ``interval`` s; kill the
    tree if it holds more than ``rss_limit`` bytes."""
    log.parent.mkdir(parents=True, exist_ok=True)
    peak, killed = 0, False
    with open(log, "wb") as out:
        start = time.monotonic()
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            rss = tree_rss(process.pid)
            peak = max(peak, rss)
            if rss_limit is not None and rss > rss_limit and not killed:
                os.killpg(process.pid, signal.SIGKILL)
                killed = True
            time.sleep(interval)
        seconds = time.monotonic() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    return Measured(start, seconds, process.returncode, peak, usage.ru_maxrss * 1024, killed, log)


def check(measured: Measured, what: str) -> None:
    """Stop the benchmark when a command failed (unless it was killed for memory), showing its output's end."""
    if measured.returncode != 0 and not measured.killed:
        tail = measured.log.read_text(errors="replace")[-3000:]
        raise SystemExit(f"{what} exited with {measured.returncode}; its output ends:\n{tail}")


def clip_frames(index: int, size: int, num_frames: int) -> NDArray[np.uint8]:
    """A moving shape whose top row carries ``index`` in binary (16 cells): every index gives other pixels."""
    clip = ShapeClip(
        shape=SHAPES[index % len(SHAPES)],
        colour=list(COLOURS)[index // len(SHAPES) % len(COLOURS)],
        direction=list(DIRECTIONS)[index // (len(SHAPES) * len(COLOURS)) % len(DIRECTIONS)],
        num_frames=num_frames,
        size=size,
    )
    frames = render_clip(clip).copy()
    cell = max(size // 16, 1)
    for bit in range(16):
        frames[:, :cell, bit * cell : (bit + 1) * cell] = 255 if index >> bit & 1 else 0
    return frames


def make_videos(folder: Path, count: int, size: int, num_frames: int) -> list[str]:
    """Videos 0..count-1 in ``folder/videos`` (those already there are kept); their paths relative to ``folder``."""
    names = []
    made = 0
    for index in range(count):
        name = f"videos/{size}px-{num_frames}f-{index:06d}.mp4"
        path = folder / name
        if not path.is_file():
            partial = path.with_name(f"partial-{path.name}")
            write_video(partial, clip_frames(index, size, num_frames))
            partial.replace(path)
            made += 1
            if made % 1000 == 0:
                print(f"  {made} videos written ({index + 1}/{count})", file=sys.stderr, flush=True)
        names.append(name)
    return names


def write_questions(folder: Path, name: str, videos: Sequence[str]) -> Path:
    """``folder/name``: one question per video (each question text different, so no two share a ledger key)."""
    rows = []
    for index, video in enumerate(videos):
        shape, colour = SHAPES[index % len(SHAPES)], list(COLOURS)[index // len(SHAPES) % len(COLOURS)]
        question = f"Question {index}: what colour is the {shape}?"
        rows.append({"id": f"q{index:06d}", "video": video, "question": question, "answer": colour})
    path = folder / name
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def api_entry(name: str, model: str, concurrency: int) -> dict[str, Any]:
    """A zoo (or evaluated-model) entry of the ``openai`` generator against the stand-in."""
    return {"name": name, "generator": "openai", "model": model, "concurrency": concurrency}


def free_prices(models: Iterable[str]) -> dict[str, dict[str, float]]:
    """A ``prices`` section that makes the stand-in's made-up models free (no warning about unknown prices)."""
    return {model: {"input": 0.0, "output": 0.0} for model in models}


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)
