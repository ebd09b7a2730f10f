"""`mmaip sft CONFIG --out OUT`: supervised fine-tuning from a run config's samples, frames and `sft` section."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import yaml
from helpers import MMAIP

from mmaip_core import is_complete, read_marker
from mmaip_plugins.zoo.tiny import build_tiny_model


def _sft(config: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    command = [MMAIP, "sft", str(config), "--out", str(out), *extra]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)


def test_sft_command(demo_dir: Path, tiny_models: Path, tmp_path: Path) -> None:
    sft = {"model": str(build_tiny_model("qwen2-vl", 0, tiny_models)), "device": "cpu", "max_steps": 3}
    data = {
        "samples": {"reader": "jsonl", "path": str(demo_dir / "qa.jsonl")},
        "frames": {"sampler": "uniform", "num_frames": 4, "cache_dir": str(tmp_path / "frames")},
        "sft": {**sft, "learning_rate": 0.01, "warmup_ratio": 0.0},
    }
    config = tmp_path / "sft.yaml"
    config.write_text(yaml.safe_dump(data))
    result = _sft(config, tmp_path / "out", "--limit", "4")
    assert result.returncode == 0, result.stderr
    assert "4 samples, 3 steps" in result.stdout and is_complete(tmp_path / "out")
    assert read_marker(tmp_path / "out")["result"]["examples"] == 4
    again = _sft(config, tmp_path / "out")
    assert again.returncode == 2 and "already holds a fine-tuned model" in again.stderr
    config.write_text(yaml.safe_dump({**data, "sft": {**sft, "learning_rat": 0.01}}))
    bad = _sft(config, tmp_path / "other")
    assert bad.returncode == 2 and "sft.learning_rat: unknown key 'learning_rat'" in bad.stderr, bad.stderr
    assert "Traceback" not in bad.stderr and not (tmp_path / "other").exists()
