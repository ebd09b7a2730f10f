"""The command line: a frame ablation stopped by --max-cost exits like a plain build; `mmaip config
validate` checks the `sft` section."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml
from api_mock import MockServer
from helpers import MMAIP, ONE_FAST_ATTEMPT
from typer.testing import CliRunner

from mmaip_cli import cli


def test_a_frame_ablation_stopped_by_max_cost_has_the_budget_exit_code(
    server: MockServer, demo_dir: Path, tmp_path: Path
) -> None:
    """Each setting's folder has the limit; both are stopped, both are reported, and the exit code is 3."""
    config = tmp_path / "run.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "samples": {"path": str(demo_dir / "qa.jsonl")},
                "frames": {"num_frames": 2, "cache_dir": str(tmp_path / "frames")},
                "zoo": [{"name": "mini", "generator": "openai", "model": "gpt-4o-mini", **ONE_FAST_ATTEMPT}],
                "scorer": {"name": "exact-match"},
            }
        )
    )
    out = tmp_path / "run"
    args = ["build", str(config), "--out", str(out), "--frames", "2", "--frames", "3", "--max-cost", "0.0001"]
    result = CliRunner().invoke(cli.app, args)
    assert result.exit_code == cli.EXIT_BUDGET, result.output
    assert "stopped by --max-cost $0.0001:" in result.output
    settings = json.loads((out / "ablation.json").read_text())["settings"]
    assert [s["label"] for s in settings] == ["2", "3"]
    assert all(s["refused_by_budget"] > 0 for s in settings)
    refused = sum(s["refused_by_budget"] for s in settings)
    assert f"{refused} API call(s) not made" in result.output


def _validate(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([MMAIP, "config", "validate", str(path)], capture_output=True, text=True)


def test_config_validate_checks_the_sft_section(tmp_path: Path) -> None:
    """The `sft` section's options are checked with the rest of the config, every problem at once."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("zoo:\n  - {name: a, generator: smok}\nsft: {model: org/m, learning_rate: -1, epoch: 2}\n")
    result = _validate(bad)
    assert result.returncode == 2 and "3 configuration error(s)" in result.stderr, result.stderr
    assert "zoo.0: unknown generator 'smok'" in result.stderr
    assert "sft.learning_rate: Input should be greater than 0 (got -1)" in result.stderr
    assert "sft.epoch: unknown key 'epoch'" in result.stderr and "Did you mean 'epochs'?" in result.stderr
    only_sft = tmp_path / "sft.yaml"
    only_sft.write_text("sft: {model: org/m, learning_rate: -1}\n")
    result = _validate(only_sft)
    assert result.returncode == 2 and "sft.learning_rate: Input should be greater than 0" in result.stderr
    good = tmp_path / "good.yaml"
    good.write_text("sft: {model: org/m, learning_rate: 0.0001, epochs: 2}\n")
    result = _validate(good)
    assert result.returncode == 0 and f"ok {good}: sft" in result.stdout.replace("\n", ""), result.stderr
