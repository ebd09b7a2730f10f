"""Every nested plugin section (an evaluator's judge, an ensemble's members, the trainer's options) is checked
with its plugin's own options model, and every problem is reported at once with its path: by ``load_config``,
so by ``mmaip config validate``, ``mmaip evaluate`` and ``mmaip build`` alike."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import MMAIP

from mmaip_core import ConfigError, PluginManager
from mmaip_core.config import load_config

BROKEN: dict[str, Any] = {
    "benchmarks": [{"name": "b", "path": "qa.jsonl"}],
    "models": [{"name": "m", "generator": "openai", "model": "gpt-4o-mini"}],
    "evaluators": [
        {"name": "vision-judge", "judge": {"name": "openai-judge", "max_frames": "lots"}},
        {"name": "text-judge", "judge": {"name": "openai-judge", "temprature": 0.5}},
        {"name": "reference"},
        {"name": "exact-match", "judge": {"name": "openai-judge"}},
    ],
    "scorer": {"name": "ensemble", "members": [{"name": "reference", "flor": 1}, {"model": "x"}]},
    "train": {"pairs": "pairs.jsonl", "trainer": {"name": "video-dpo", "smoke": {}, "beta": "high"}},
}
EXPECTED = [
    "evaluators.0.judge.max_frames: Input should be a valid integer",
    "evaluators.1.judge.temprature: unknown key 'temprature'",
    "Did you mean 'temperature'?",
    "evaluators.3: evaluator 'exact-match': judge: unknown key 'judge'",
    "scorer.members.0.flor: unknown key 'flor'",
    "scorer.members.1: must be a mapping of 'name' (the scorer plugin) and its options",
    "train.trainer: trainer 'video-dpo': beta: Input should be a valid number",
]


def _write(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_every_nested_problem_is_reported_with_its_path(manager: PluginManager, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(_write(tmp_path, BROKEN), manager)
    text = "\n".join(caught.value.problems)
    for expected in EXPECTED:
        assert expected in text, text


def test_an_unknown_or_malformed_nested_plugin_is_named(manager: PluginManager, tmp_path: Path) -> None:
    data = {
        "evaluators": [
            {"name": "vision-judge", "judge": {"name": "opnai-judge"}},
            {"name": "text-judge", "judge": {"model": "gpt-4o"}},
        ],
        "scorer": {"name": "ensemble", "members": [{"name": "reference"}, {"name": "ensemble", "members": "x"}]},
    }
    with pytest.raises(ConfigError) as caught:
        load_config(_write(tmp_path, data), manager)
    problems = caught.value.problems
    assert any(p.startswith("evaluators.0.judge.name: unknown scorer 'opnai-judge'") for p in problems), problems
    assert any("Did you mean 'openai-judge'?" in p for p in problems), problems
    assert "evaluators.1.judge: must be a mapping of 'name' (the scorer plugin) and its options" in problems
    assert any(p.startswith("scorer.members.1.members: Input should be a valid list") for p in problems), problems


def test_valid_nested_sections_pass(manager: PluginManager, tmp_path: Path) -> None:
    data = {
        "evaluators": [
            {"name": "vision-judge", "judge": {"name": "anthropic-judge", "max_frames": 8}},
            {"name": "text-judge"},
        ],
        "scorer": {
            "name": "ensemble",
            "members": [{"name": "reference", "floor": 0.5}, {"name": "openai-judge", "model": "gpt-4o-mini"}],
        },
    }
    config = load_config(_write(tmp_path, data), manager)
    assert [e.plugin for e in config.evaluators] == ["vision-judge", "text-judge"]


@pytest.mark.parametrize(
    "command",
    [["config", "validate", "CONFIG"], ["evaluate", "CONFIG", "--out", "OUT"], ["build", "CONFIG", "-o", "OUT"]],
)
def test_every_command_reports_every_problem(tmp_path: Path, command: list[str]) -> None:
    places = {"CONFIG": str(_write(tmp_path, BROKEN)), "OUT": str(tmp_path / "out")}
    result = subprocess.run([MMAIP, *(places.get(a, a) for a in command)], capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    for expected in EXPECTED:
        assert expected in result.stderr, result.stderr
    assert not (tmp_path / "out").exists()
