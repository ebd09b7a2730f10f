"""A benchmark's own generation and frame settings: every model answers it with them (through the local
OpenAI-compatible server, which echoes the question and the number of images it got), answers under other settings
are cached apart and identical settings share them, and a bad setting is reported with its benchmark's name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from api_mock import MockServer

from mmaip_core import EvalRecord, PluginManager
from mmaip_core.config import BenchmarkConfig, ZooEntry, load_config
from mmaip_core.errors import ConfigError
from mmaip_core.frames import FrameSettings
from mmaip_core.stages.evaluate import run_evaluation
from mmaip_core.store.jsonl import read_jsonl

FAST = {"backoff_s": 0.01, "max_backoff_s": 0.05, "timeout_s": 5}
LETTERS = {"generation": {"max_new_tokens": 16, "temperature": 0}, "frames": {"num_frames": 4}}


def _config(tmp_path: Path, demo_dir: Path, benchmarks: list[dict[str, Any]], **model: Any) -> Path:
    path = tmp_path / "eval.yaml"
    qa = str(demo_dir / "qa.jsonl")
    mini = {"name": "mini", "generator": "openai", "model": "gpt-4o-mini", "params": {"max_tokens": 100}, **FAST}
    path.write_text(
        yaml.safe_dump(
            {
                "frames": {"num_frames": 8, "cache_dir": str(tmp_path / "frames")},
                "benchmarks": [{"path": qa, **b} for b in benchmarks],
                "models": [{**mini, **model}],
                "evaluators": [{"name": "vision-judge", "judge": {"name": "openai-judge", "model": "gpt-4o", **FAST}}],
            }
        )
    )
    return path


def _answers(server: MockServer) -> list[dict[str, Any]]:
    return [r["body"] for r in server.requests if r["body"].get("model") == "gpt-4o-mini"]


def _images(body: dict[str, Any]) -> int:
    content = body["messages"][-1]["content"]
    return sum(1 for part in content if isinstance(part, dict) and part.get("type") == "image_url")


def test_each_benchmark_answers_with_its_own_settings(
    server: MockServer, manager: PluginManager, demo_dir: Path, tmp_path: Path
) -> None:
    benchmarks = [{"name": "letters", **LETTERS}, {"name": "open"}, {"name": "letters-again", **LETTERS}]
    config = load_config(_config(tmp_path, demo_dir, benchmarks), manager)
    run_evaluation(config, tmp_path / "eval", manager)
    answers = _answers(server)
    assert len(answers) == 18, "9 questions under each of two settings; letters-again shares the letters answers"
    by_tokens = {tokens: [a for a in answers if a["max_tokens"] == tokens] for tokens in (16, 100)}
    assert [len(v) for v in by_tokens.values()] == [9, 9]
    assert {_images(a) for a in by_tokens[16]} == {4} and {_images(a) for a in by_tokens[100]} == {8}
    verdicts = list(read_jsonl(tmp_path / "eval" / "verdicts.jsonl", EvalRecord))
    predictions = {
        b: {v.prediction.rsplit("[", 1)[1] for v in verdicts if v.benchmark == b} for b in ("letters", "open")
    }
    assert predictions == {"letters": {"4 images]"}, "open": {"8 images]"}}
    judged = [r["body"] for r in server.requests if r["body"].get("model") == "gpt-4o"]
    assert len(judged) == 18 and sorted({_images(j) for j in judged}) == [4, 8], "the judge sees the benchmark's frames"
    by_benchmark = {b: {v.frames for v in verdicts if v.benchmark == b} for b in ("letters", "open", "letters-again")}
    assert (
        by_benchmark["letters"] == by_benchmark["letters-again"] and not by_benchmark["letters"] & by_benchmark["open"]
    )

    server.requests.clear()
    run_evaluation(config, tmp_path / "eval", manager)
    assert server.requests == [], "a rerun asks nothing again"


def test_settings_equal_to_the_models_own_share_its_answers(
    server: MockServer, manager: PluginManager, demo_dir: Path, tmp_path: Path
) -> None:
    benchmarks = [{"name": "plain"}, {"name": "same", "generation": {"max_new_tokens": 100}, "frames": {}}]
    run_evaluation(load_config(_config(tmp_path, demo_dir, benchmarks), manager), tmp_path / "eval", manager)
    assert len(_answers(server)) == 9


@pytest.mark.parametrize(
    ("benchmark", "problem"),
    [
        ({"generation": {"temperature": 3}}, "benchmarks.0 (letters).generation: models.0 (mini): "),
        ({"generation": {"max_new_tokens": 0}}, "benchmarks.0.generation.max_new_tokens"),
        ({"generation": {"max_tokens": 16}}, "benchmarks.0.generation.max_tokens"),
        ({"frames": {"num_frames": 0}}, "benchmarks.0 (letters).frames: "),
        ({"frames": {"sampler": "fps", "num_frames": 4}}, "benchmarks.0 (letters).frames: "),
        ({"frames": {"max_side": 2}}, "benchmarks.0 (letters).frames.max_side"),
    ],
)
def test_bad_settings_name_their_benchmark(
    manager: PluginManager, demo_dir: Path, tmp_path: Path, benchmark: dict[str, Any], problem: str
) -> None:
    path = _config(tmp_path, demo_dir, [{"name": "letters", **benchmark}])
    with pytest.raises(ConfigError) as caught:
        load_config(path, manager)
    assert any(p.startswith(problem) for p in caught.value.problems), caught.value.problems


def test_settings_go_over_the_models_params_and_the_runs_frames() -> None:
    benchmark = BenchmarkConfig.model_validate({"name": "b", **LETTERS, "frames": {"sampler": "fps", "fps": 2}})
    params = {"top_p": 0.9, "max_new_tokens": 256}
    entry = ZooEntry.model_validate({"name": "m", "generator": "hf", "model": "x", "params": params})
    merged = {"top_p": 0.9, "max_new_tokens": 16, "temperature": 0.0}
    assert benchmark.model_entry(entry).options == {"model": "x", "params": merged}
    assert entry.options["params"] == params, "the model's own entry is left as it is"
    frames = benchmark.frame_settings(FrameSettings.model_validate({"num_frames": 8, "max_side": 224}))
    assert (frames.sampler, frames.max_side, frames.sampler_options) == ("fps", 224, {"fps": 2})
    plain = BenchmarkConfig.model_validate({"name": "p"})
    assert plain.model_entry(entry) is entry
