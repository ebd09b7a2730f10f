"""The streaming build: a window of samples in flight, outputs in reader order, every model's calls at once,
text-only questions, --limit, and shards that merge into what one process writes."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from api_mock import MockServer
from helpers import MMAIP, TESTS, fake_distribution
from test_build import ZOO
from test_build import _config as _scripted_config

from mmaip_core import PluginManager, VideoQA
from mmaip_core.config import load_config
from mmaip_core.stages.build import plan_build, run_build
from mmaip_core.stages.shards import shard_folder
from mmaip_core.stages.stream import Shard, stream_in_order
from mmaip_core.store.runfolder import RunFolderBusyError, locked

FAST = {"backoff_s": 0.01, "max_backoff_s": 0.05, "timeout_s": 5.0}


def test_a_window_bounds_the_samples_in_flight_and_outcomes_keep_reader_order() -> None:
    samples = [VideoQA(id=str(i), video=None, question="q") for i in range(20)]
    running, peak, emitted = 0, 0, []

    async def handle(sample: VideoQA) -> str:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.001 * (20 - int(sample.id)))  # later samples finish first
        running -= 1
        return sample.id

    asyncio.run(stream_in_order(samples, 3, handle, emitted.append))
    assert peak == 3 and emitted == [s.id for s in samples]


def test_a_failing_sample_stops_the_stream_with_its_error() -> None:
    async def handle(sample: VideoQA) -> str:
        if sample.id == "2":
            raise ValueError("bad sample 2")
        await asyncio.sleep(0.01)
        return sample.id

    samples = [VideoQA(id=str(i), video=None, question="q") for i in range(6)]
    with pytest.raises(ExceptionGroup) as raised:
        asyncio.run(stream_in_order(samples, 2, handle, lambda _: None))
    assert "bad sample 2" in str(raised.value.exceptions[0])


def _config(tmp_path: Path, samples: Path, text_only: bool = False, models: int = 3) -> Path:
    zoo = [{"name": f"m{i}", "generator": "openai", "model": f"model-{i}", **FAST} for i in range(models)]
    config = tmp_path / "run.yaml"
    reader: dict[str, Any] = {"path": str(samples), **({"text_only": True} if text_only else {})}
    config.write_text(
        yaml.safe_dump(
            {
                "samples": reader,
                "frames": {"num_frames": 2, "cache_dir": str(tmp_path / "frames")},
                "zoo": zoo,
                "scorer": {"name": "openai-judge", "model": "judge-model", **FAST},
            }
        )
    )
    return config


def _questions(tmp_path: Path, n: int) -> Path:
    path = tmp_path / "qa.jsonl"
    path.write_text(
        "".join(json.dumps({"id": f"q{i}", "question": f"colour {i}?", "answer": "red"}) + "\n" for i in range(n))
    )
    return path


def test_judgements_start_while_the_zoo_is_still_answering(
    server: MockServer, manager: PluginManager, tmp_path: Path
) -> None:
    server.latency_s = 0.05
    config = _config(tmp_path, _questions(tmp_path, 40), text_only=True)
    summary = run_build(load_config(config, manager), tmp_path / "run", manager)
    assert summary.pairs == 0 and summary.judgements["ok"] == 120  # the mock's answers all score alike
    timings = sorted(server.timings, key=lambda t: t["start"])
    first_judge = min(t["start"] for t in timings if t["role"] == "judge")
    last_answer = max(t["start"] for t in timings if t["role"] == "generator")
    assert first_judge < last_answer  # no stage barrier between the zoo and the judge
    overlap = {t["model"] for t in timings if t["start"] < first_judge + 0.05}
    assert {"model-0", "model-1", "model-2"} <= overlap  # every zoo entry's calls run at once


def test_text_only_questions_are_built_without_frames(
    server: MockServer, manager: PluginManager, tmp_path: Path
) -> None:
    config = _config(tmp_path, _questions(tmp_path, 3), text_only=True, models=2)
    out = tmp_path / "run"
    summary = run_build(load_config(config, manager), out, manager)
    assert summary.samples == 3 and summary.video_errors == 0
    assert (out / "frames.jsonl").read_text() == ""
    lines = [json.loads(line) for line in (out / "responses.jsonl").read_text().splitlines()]
    assert len(lines) == 6 and all(line["response"]["frames"] is None for line in lines)
    assert all("[0 images]" in line["response"]["text"] for line in lines)  # the mock counts images sent


def test_rows_without_a_video_are_bad_rows_unless_text_only_is_set(
    server: MockServer, manager: PluginManager, tmp_path: Path
) -> None:
    from mmaip_core.errors import EmptyRunError

    config = _config(tmp_path, _questions(tmp_path, 2), text_only=False, models=2)
    with pytest.raises(EmptyRunError, match="text_only: true"):
        run_build(load_config(config, manager), tmp_path / "run", manager)


def test_limit_builds_the_first_questions_only(server: MockServer, manager: PluginManager, tmp_path: Path) -> None:
    config = load_config(_config(tmp_path, _questions(tmp_path, 10), text_only=True, models=2), manager)
    summary = run_build(config, tmp_path / "run", manager, limit=4)
    assert summary.samples == 4 and summary.responses["m0"]["new"] == 4
    assert plan_build(config, tmp_path / "plan", manager, limit=4).rows[0].calls == 4


def _outputs(out: Path) -> dict[str, list[Any]]:
    """The build's outputs without what differs between any two runs (times, latencies)."""

    def clean(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items() if k not in ("created_at", "latency_s")}
        return [clean(v) for v in value] if isinstance(value, list) else value

    names = ("samples.jsonl", "frames.jsonl", "responses.jsonl", "pairs.jsonl")
    return {name: [clean(json.loads(line)) for line in (out / name).read_text().splitlines()] for name in names}


def test_shards_merge_into_what_one_process_writes(
    server: MockServer, manager: PluginManager, demo_dir: Path, tmp_path: Path
) -> None:
    rows = [json.loads(line) for line in (demo_dir / "qa.jsonl").read_text().splitlines()]
    qa = tmp_path / "qa.jsonl"
    qa.write_text("".join(json.dumps({**r, "video": str(demo_dir / r["video"])}) + "\n" for r in rows))
    qa.write_text(qa.read_text() + "{oops\n")
    config = load_config(_config(tmp_path, qa, models=2), manager)
    whole = run_build(config, tmp_path / "one", manager)
    parts = [run_build(config, tmp_path / "sharded", manager, shard=Shard(i, 3)) for i in range(3)]
    assert 0 < parts[0].samples < whole.samples  # each shard built its own share
    merged = parts[-1]  # the last shard to end merged
    assert _outputs(tmp_path / "one") == _outputs(tmp_path / "sharded")
    for field in ("samples", "row_errors", "pairs", "responses", "judgements", "skipped"):
        assert getattr(merged, field) == getattr(whole, field), field
    asked = len(server.timings)
    run_build(config, tmp_path / "sharded", manager, shard=Shard(1, 3))  # a rerun asks nothing, merges again
    assert len(server.timings) == asked and _outputs(tmp_path / "one") == _outputs(tmp_path / "sharded")


def test_a_second_process_on_the_same_shard_stops_at_once(
    server: MockServer, manager: PluginManager, tmp_path: Path
) -> None:
    config = load_config(_config(tmp_path, _questions(tmp_path, 4), text_only=True, models=2), manager)
    with locked(shard_folder(tmp_path / "run", Shard(0, 2))), pytest.raises(RunFolderBusyError):
        run_build(config, tmp_path / "run", manager, shard=Shard(0, 2))
    assert run_build(config, tmp_path / "run", manager, shard=Shard(1, 2)).samples >= 0  # the other shard runs


def test_the_command_line_builds_shards_with_a_limit_and_plans_the_frames_memory(
    demo_dir: Path, tmp_path: Path
) -> None:
    site = fake_distribution(tmp_path / "site", "mmaip-scripted", {"scripted": "scripted_plugins"}, {})
    shutil.copy(TESTS / "scripted_plugins.py", site / "scripted_plugins.py")
    env = {**os.environ, "PYTHONPATH": str(site)}
    config, out = _scripted_config(tmp_path, demo_dir, ZOO), tmp_path / "run"

    def mmaip(*args: str) -> str:
        done = subprocess.run(
            [MMAIP, "build", str(config), "--out", str(out), *args], env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        return " ".join(done.stdout.split())

    plan = mmaip("--dry-run", "--limit", "5")
    assert "5 questions" in plan and "hold frames at once" in plan and not out.exists()
    assert "merges them into" in mmaip("--shard", "0/2", "--limit", "5")
    mmaip("--shard", "1/2", "--limit", "5")
    assert len((out / "samples.jsonl").read_text().splitlines()) == 5  # merged: the first 5 questions
