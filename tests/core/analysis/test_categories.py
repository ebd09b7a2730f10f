"""Per-category results (with bootstrap intervals) and circular evaluation, in the metrics and through the
evaluation stage into results.json and report.md."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import scripted_plugins
import yaml
from helpers import eval_record

from mmaip_core import EvalRecord, ParseStatus, PluginManager
from mmaip_core.analysis.metrics import by_category, circular, paired_difference, summarize
from mmaip_core.config import load_config
from mmaip_core.stages.evaluate import run_evaluation


def _record(sample: str, correct: bool | None, **fields: object) -> EvalRecord:
    ok = correct is not None
    return eval_record(
        sample_id=sample,
        video=f"{sample[:2]}.mp4",
        correct=correct,
        score=(5.0 if correct else 0.0) if ok else None,
        status=ParseStatus.OK if ok else ParseStatus.PARSE_FAILURE,
        **fields,
    )


def test_by_category_summarises_each_value() -> None:
    records = [
        _record("v1-a", True, categories={"type": "CW", "duration": "short"}),
        _record("v1-b", False, categories={"type": "TN", "duration": "short"}),
        _record("v2-a", True, categories={"type": "CW", "duration": "long"}),
        _record("v2-b", True, categories={"type": "CW"}),
        _record("v3-a", None, categories={"type": "TN"}),
    ]
    split = by_category(records)
    assert list(split) == ["duration", "type"] and list(split["duration"]) == ["long", "short"]
    cw, tn = split["type"]["CW"], split["type"]["TN"]
    assert (cw.n, cw.ratio.value, cw.videos) == (3, 1.0, 2)
    assert (tn.n, tn.ratio.value, tn.parse_failures) == (1, 0.0, 1)
    short = split["duration"]["short"]
    assert short.n == 2 and short.ratio.value == 0.5 and short.ratio.low is not None and short.ratio.high is not None
    assert short.ratio.low <= 0.5 <= short.ratio.high
    assert by_category([_record("v1-a", True)]) == {}


def test_circular_groups_count_once_and_need_every_rotation() -> None:
    records = [
        _record("q@r0", True, group="q"),
        _record("q@r1", True, group="q"),
        _record("p@r0", True, group="p"),
        _record("p@r1", False, group="p"),
        _record("u@r0", True, group="u"),
        _record("u@r1", None, group="u"),
        _record("plain", True),
    ]
    merged = circular(records)
    assert [(r.sample_id, r.correct, r.status) for r in merged] == [
        ("q", True, ParseStatus.OK),
        ("p", False, ParseStatus.OK),
        ("u", None, ParseStatus.PARSE_FAILURE),  # an unreadable rotation makes the question unreadable
        ("plain", True, ParseStatus.OK),
    ]
    assert merged[1].rationale == "circular: 1 of 2 rotations correct" and merged[1].score == 0.0
    summary = summarize(records)
    assert (summary.n, summary.ratio.value, summary.parse_failures) == (3, 2 / 3, 1)
    other = [r.model_copy(update={"correct": True, "score": 5.0}) for r in records if r.correct is not None]
    assert paired_difference(records, other).n == 3


@pytest.fixture
def plugins(manager: PluginManager) -> PluginManager:
    manager.register(scripted_plugins, "scripted")
    return manager


def test_results_and_report_break_down_by_category(plugins: PluginManager, demo_dir: Path, tmp_path: Path) -> None:
    rows = [json.loads(line) for line in (demo_dir / "qa.jsonl").read_text().splitlines()]
    qa = tmp_path / "qa.jsonl"
    qa.write_text("".join(json.dumps({**r, "kind": r["id"].split("-")[1]}) + "\n" for r in rows))
    config = tmp_path / "eval.yaml"
    benchmark = {"name": "demo", "path": str(qa), "video_root": str(demo_dir), "categories": ["kind"]}
    config.write_text(
        yaml.safe_dump(
            {
                "frames": {"num_frames": 4, "cache_dir": str(tmp_path / "frames")},
                "benchmarks": [benchmark],
                "models": [{"name": "m", "generator": "scripted", "answers": ["{truth}", "{truth}", "no idea"]}],
                "evaluators": [{"name": "exact-match"}],
            }
        )
    )
    out = tmp_path / "eval"
    results = run_evaluation(load_config(config, plugins), out, plugins)
    (row,) = results.metrics
    assert sorted(row.categories["kind"]) == ["colour", "direction", "shape"]
    assert sum(m.n for m in row.categories["kind"].values()) == row.metrics.n == 9
    saved = json.loads((out / "results.json").read_text())["metrics"][0]["categories"]["kind"]
    assert set(saved) == {"colour", "direction", "shape"} and saved["colour"]["ratio"]["low"] is not None
    report = (out / "report.md").read_text()
    assert "| benchmark | model | category | value | n | ratio % | score |" in report
    assert "| demo | m | kind | colour | 3 |" in report
