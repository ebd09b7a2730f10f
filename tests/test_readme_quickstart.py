"""The README's five-minute path is copy-paste correct: its config validates against the real plugin options, and
its commands run as written up to the first model call (`--dry-run`)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mmaip_core import PluginManager
from mmaip_core.config import load_config
from mmaip_core.testbeds.synthetic import make_demo_dataset

README = Path(__file__).resolve().parents[1] / "README.md"
HEADING = "### Five minutes with an OpenAI-compatible endpoint"


def _blocks(language: str) -> list[str]:
    section = README.read_text().split(HEADING, 1)[1].split("\n## ", 1)[0]
    return re.findall(rf"```{language}\n(.*?)```", section, flags=re.S)


def test_quick_config_validates(tmp_path: Path, manager: PluginManager) -> None:
    (tmp_path / "quick.yaml").write_text(_blocks("yaml")[0])
    make_demo_dataset(tmp_path / "data", num_videos=2)
    config = load_config(tmp_path / "quick.yaml", manager)
    assert [(z.generator, z.options["base_url"]) for z in config.zoo] == [("openai", "http://localhost:8000/v1")]
    assert config.scorer.plugin == "openai-judge" and config.scorer.options["vision"] is True


def test_quick_commands_run_to_the_dry_run(
    tmp_path: Path, manager: PluginManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mmaip_cli.cli import app

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setattr("mmaip_cli.cli._manager", lambda: manager)
    (tmp_path / "quick.yaml").write_text(_blocks("yaml")[0])
    make_demo_dataset(tmp_path / "data", num_videos=2)
    commands = [line.split("#")[0].split() for line in _blocks("bash")[0].splitlines() if line.startswith("mmaip ")]
    assert commands[0] == ["mmaip", "config", "validate", "quick.yaml"] and "--dry-run" in commands[1]
    for command in commands[:2]:
        result = CliRunner().invoke(app, command[1:])
        assert result.exit_code == 0, f"{shlex.join(command)}: {result.output}"
    assert "Qwen/Qwen2.5-VL-7B-Instruct" in result.output
