from __future__ import annotations

import json
from pathlib import Path

import pytest
import scripted_plugins
import yaml

from mmaip_core import ConfigError, EvalRecord, PluginManager
from mmaip_core.config import load_config
from mmaip_core.stages.evaluate import run_evaluation
from mmaip_core.store.jsonl import read_jsonl


@pytest.fixture
def plugins(manager: PluginManager) -> PluginManager:
    manager.register(scripted_plugins, "scripted")
    return manager


def _config(tmp_path: Path, demo_dir: Path) -> Path:
    path = tmp_path / "eval.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "frames": {"num_frames": 4, "cache_dir": str(tmp_path / "frames")},
                "benchmarks": [{"name": "demo", "path": str(demo_dir / "qa.jsonl")}],
                "models": [
                    {"name": "good", "generator": "scripted"},
                    {"name": "half", "generator": "scripted", "model": "half", "answers": ["no idea"]},
                ],
                "evaluators": [{"name": "exact-match"}],
            }
        )
    )
    return path


def test_evaluation_metrics_outputs_and_resume(plugins: PluginManager, demo_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "eval"
    results = run_evaluation(load_config(_config(tmp_path, demo_dir), plugins), out, plugins)
    rows = {(r.model, r.evaluator): r.metrics for r in results.metrics}
    good, bad = rows[("good", "exact-match")], rows[("half", "exact-match")]
    assert (good.n, good.videos, good.ratio.value, good.score.value) == (9, 3, 1.0, 5.0)
    assert (bad.ratio.value, bad.score.value) == (0.0, 0.0)
    (paired,) = results.paired
    assert (paired.model_a, paired.model_b, paired.difference.ratio.value) == ("good", "half", 1.0)
    verdicts = list(read_jsonl(out / "verdicts.jsonl", EvalRecord))
    assert len(verdicts) == 18 and {v.benchmark for v in verdicts} == {"demo"}
    assert all(v.video and v.frames for v in verdicts)
    assert json.loads((out / "results.json").read_text())["metrics"][0]["metrics"]["confidence"] == 0.95
    report = (out / "report.md").read_text()
    assert "| demo | good | 9 | 100.0 [100.0, 100.0] | 5.00 [5.00, 5.00] | 0 | 0 |" in report
    assert (out / "ratio-exact-match.png").read_bytes()[:4] == b"\x89PNG"
    again = run_evaluation(load_config(_config(tmp_path, demo_dir), plugins), out, plugins)
    assert again.verdicts["new"] == 0 and again.metrics == results.metrics


def test_evaluation_needs_its_sections(plugins: PluginManager, tmp_path: Path) -> None:
    from mmaip_core.config import RunConfig

    with pytest.raises(ConfigError, match="benchmarks: evaluation needs this section"):
        run_evaluation(RunConfig(), tmp_path, plugins)


def test_failed_answers_count_as_errors(
    plugins: PluginManager, demo_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mmaip_core import ErrorInfo

    original = scripted_plugins.ScriptedGenerator.generate

    def sometimes_failing(self, requests, *, model):  # type: ignore[no-untyped-def]
        out = original(self, requests, model=model)
        return [
            r.model_copy(update={"text": None, "error": ErrorInfo(error_class="Boom", message="no")})
            if r.sample_id.endswith("shape")
            else r
            for r in out
        ]

    monkeypatch.setattr(scripted_plugins.ScriptedGenerator, "generate", sometimes_failing)
    results = run_evaluation(load_config(_config(tmp_path, demo_dir), plugins), tmp_path / "eval", plugins)
    good = next(r.metrics for r in results.metrics if r.model == "good")
    assert (good.n, good.errors, good.ratio.value) == (6, 3, 1.0)


def test_an_evaluation_with_nothing_to_show_is_an_error(
    plugins: PluginManager, demo_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mmaip_core import EmptyRunError, ErrorInfo, Response

    config = yaml.safe_load(_config(tmp_path, demo_dir).read_text())
    empty = tmp_path / "empty.jsonl"
    empty.write_text(json.dumps({"id": "a", "video": "x.mp4"}) + "\n")  # a row without a question
    config["benchmarks"].append({"name": "broken", "path": str(empty)})
    (tmp_path / "two.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(EmptyRunError, match=r"benchmark 'broken': no question could be read; first: RowError"):
        run_evaluation(load_config(tmp_path / "two.yaml", plugins), tmp_path / "two", plugins)

    def failing(self, requests, *, model):  # type: ignore[no-untyped-def]
        down = ErrorInfo(error_class="Boom", message="down")
        return [
            Response(
                id=r.id,
                sample_id=r.sample.id,
                model=model,
                model_id="m",
                generator="scripted",
                params={},
                frames=r.frames.manifest.key,
                error=down,
            )
            for r in requests
        ]

    monkeypatch.setattr(scripted_plugins.ScriptedGenerator, "generate", failing)
    out = tmp_path / "eval"
    with pytest.raises(EmptyRunError, match=r"none of the 18 verdicts is usable; first: no answer: Boom: down"):
        run_evaluation(load_config(_config(tmp_path, demo_dir), plugins), out, plugins)
    assert len(list(read_jsonl(out / "verdicts.jsonl", EvalRecord))) == 18


def test_evaluation_shards_merge_into_what_one_process_writes(
    plugins: PluginManager, demo_dir: Path, tmp_path: Path
) -> None:
    from mmaip_core.stages.evaluate_shards import evaluate_shard
    from mmaip_core.stages.stream import Shard

    config = load_config(_config(tmp_path, demo_dir), plugins)
    whole = run_evaluation(config, tmp_path / "one", plugins)
    first = evaluate_shard(config, tmp_path / "sharded", plugins, Shard(0, 2))
    merged = evaluate_shard(config, tmp_path / "sharded", plugins, Shard(1, 2))
    assert first is None and merged is not None  # the last shard to end merges
    assert merged.metrics == whole.metrics and merged.paired == whole.paired

    def verdicts(out: Path) -> list[dict[str, object]]:
        return [
            r.model_dump(exclude={"created_at", "latency_s"}) for r in read_jsonl(out / "verdicts.jsonl", EvalRecord)
        ]

    assert verdicts(tmp_path / "sharded") == verdicts(tmp_path / "one")
    shard_rows = list(read_jsonl(tmp_path / "sharded" / "shards" / "0-of-2" / "verdicts.jsonl", EvalRecord))
    assert 0 < len(shard_rows) < len(verdicts(tmp_path / "one"))
