"""The third-party example in examples/mmaip-shorter, installed for real and used through its entry point."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def installed(example_plugin_env: dict[str, str]) -> dict[str, str]:
    return example_plugin_env


def test_mmaip_finds_and_lists_it(installed: dict[str, str]) -> None:
    result = subprocess.run(
        [BIN / "mmaip", "plugins", "--json", "--kind", "scorer"], capture_output=True, text=True, env=installed
    )
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["shorter"]["package"] == "mmaip-shorter"
    assert rows["shorter"]["version"] == "0.1.0"
    assert rows["shorter"]["description"] == "example third-party scorer: prefers shorter answers"
    assert rows["exact-match"]["package"] == "mmaip"


def test_it_is_used_by_name(installed: dict[str, str], tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text("scorer: {name: shorter, target_words: 2}\n")
    ok = subprocess.run(
        [BIN / "mmaip", "config", "validate", str(config)], capture_output=True, text=True, env=installed
    )
    assert ok.returncode == 0, ok.stderr
    script = """
from mmaip_core import get_plugin_manager, ScoreRequest, Response, VideoQA
scorer = get_plugin_manager().create("scorer", "shorter", {"target_words": 2})
sample = VideoQA(id="s", video="v.mp4", question="q?")
def answer(rid, text):
    return Response(id=rid, sample_id="s", model="m", model_id="m", generator="hf", params={}, text=text, frames="k")
print([j.score for j in scorer.score([ScoreRequest(sample, answer("a", "red")),
                                      ScoreRequest(sample, answer("b", "it is a red one and I think it moves left"))])])
"""
    used = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=installed)
    assert used.returncode == 0, used.stderr
    assert json.loads(used.stdout) == [5.0, 1.0]


def test_without_it_the_name_is_unknown(tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text("scorer: {name: shorter}\n")
    result = subprocess.run([BIN / "mmaip", "config", "validate", str(config)], capture_output=True, text=True)
    assert result.returncode == 2 and "unknown scorer 'shorter'" in result.stderr
