"""Judge drift (``mmaip evaluate --rejudge``): figures by hand on scripted verdicts, and a rejudge of a
finished evaluation by API judges on the local server, which runs no model again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import scripted_plugins
import yaml
from api_mock import MockServer
from helpers import MMAIP, eval_record

from mmaip_core import EvalRecord, ParseStatus, PluginManager, UserError
from mmaip_core.config import load_config
from mmaip_core.stages.drift import judge_drift, rejudge
from mmaip_core.stages.evaluate import run_evaluation
from mmaip_core.store.jsonl import read_jsonl

FAST = {"backoff_s": 0.01, "max_backoff_s": 0.05, "timeout_s": 5}


def _record(model: str, sample: int, evaluator: str, correct: bool | None, score: float | None) -> EvalRecord:
    status = ParseStatus.OK if score is not None else ParseStatus.PARSE_FAILURE
    return eval_record(
        sample_id=f"s{sample}",
        video=f"v{sample // 2}",
        model=model,
        evaluator=evaluator,
        fingerprint=f"{evaluator}-fp",
        correct=correct,
        score=score,
        status=status,
    )


def test_drift_by_hand() -> None:
    old = [_record("m", i, "old", c, s) for i, (c, s) in enumerate([(True, 5), (True, 4), (False, 1), (False, 0)])]
    new = [
        _record("m", i, "new", c, s)
        for i, (c, s) in enumerate([(True, 5), (True, 4), (False, 1), (True, 3), (None, None)])
    ]
    old += [_record("m2", i, "old", True, 3) for i in range(4)]
    new += [_record("m2", i, "new", False, 2) for i in range(4)]
    report = judge_drift("prev", old, new)
    row = next(r for r in report.rows if r.model == "m")
    assert (row.old, row.new, row.n) == ("old@old-fp", "new@new-fp", 4)  # the unreadable 5th verdict is left out
    assert (row.ratio_old, row.ratio_new, row.score_old, row.score_new) == (0.5, 0.75, 2.5, 3.25)
    assert row.difference.score.value == pytest.approx(0.75) and row.difference.n == 4
    assert row.verdict_agreement == 0.75 and row.mean_abs_score_change == 0.75
    # old y y n n, new y y n y: p_o = 3/4, p_e = 1/2 * 3/4 + 1/2 * 1/4 = 1/2, kappa = (3/4 - 1/2) / (1/2)
    assert row.kappa == pytest.approx(0.5)
    (ranking,) = report.rankings
    assert (ranking.order_old, ranking.order_new, ranking.kendall) == (["m2", "m"], ["m", "m2"], pytest.approx(-1.0))


def _config(path: Path, demo_dir: Path, evaluators: list[dict[str, object]]) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "frames": {"num_frames": 2, "cache_dir": str(path.parent / "frames")},
                "benchmarks": [{"name": "demo", "path": str(demo_dir / "qa.jsonl")}],
                "models": [
                    {"name": "good", "generator": "scripted"},
                    {"name": "wordy", "generator": "scripted", "model": "wordy", "answers": ["{truth}ish"]},
                ],
                "evaluators": evaluators,
            }
        )
    )
    return path


def test_rejudge_runs_no_model_and_reports_drift(
    server: MockServer, manager: PluginManager, demo_dir: Path, tmp_path: Path
) -> None:
    manager.register(scripted_plugins, "scripted")
    first = tmp_path / "first"
    run_evaluation(
        load_config(_config(tmp_path / "a.yaml", demo_dir, [{"name": "exact-match"}]), manager), first, manager
    )
    assert server.requests == []
    judges = [
        {"name": "vision-judge", "judge": {"name": "openai-judge", "model": "gpt-4o", "max_frames": 2, **FAST}},
        {"name": "text-judge", "judge": {"name": "openai-judge", "model": "garbage-x", **FAST}},
    ]
    config = load_config(_config(tmp_path / "b.yaml", demo_dir, judges), manager)
    original = scripted_plugins.ScriptedGenerator.generate
    scripted_plugins.ScriptedGenerator.generate = None  # type: ignore[assignment,method-assign]  # no model may run
    try:
        results, drift = rejudge(config, first, tmp_path / "second", manager)
    finally:
        scripted_plugins.ScriptedGenerator.generate = original  # type: ignore[method-assign]
    images: dict[str, list[int]] = {"gpt-4o": [], "garbage-x": []}
    for body in (r["body"] for r in server.requests):
        parts = [p for m in body["messages"] if isinstance(m["content"], list) for p in m["content"]]
        images[body["model"]].append(sum(p.get("type") == "image_url" for p in parts))
    assert images["gpt-4o"] == [2] * 18, "vision-judge sends the 2 configured frames"
    assert len(images["garbage-x"]) >= 18 and set(images["garbage-x"]) == {0}, "text-judge sends none"
    rows = {(r.model, r.new.split("@")[0]): r for r in drift.rows}
    # exact match: good right (5), wordy ("redish") wrong (0); the mock judge: both contain the truth (yes, 5)
    good, wordy = rows[("good", "vision-judge")], rows[("wordy", "vision-judge")]
    assert (good.n, good.ratio_old, good.ratio_new, good.verdict_agreement) == (9, 1.0, 1.0, 1.0)
    assert (wordy.ratio_old, wordy.ratio_new, wordy.score_old, wordy.score_new) == (0.0, 1.0, 0.0, 5.0)
    assert wordy.verdict_agreement == 0.0 and wordy.difference.score.value == 5.0
    assert rows[("good", "text-judge")].n == 0, "unreadable verdicts are never compared"
    metrics = {(m.model, m.evaluator): m.metrics for m in results.metrics}
    assert metrics[("good", "text-judge")].parse_failures == 9
    (ranking,) = [k for k in drift.rankings if k.new.startswith("vision-judge")]
    assert ranking.order_old == ["good", "wordy"]
    second = tmp_path / "second"
    assert json.loads((second / "drift.json").read_text())["previous"] == str(first)
    assert "## Judge drift against" in (second / "report.md").read_text()
    assert len(list(read_jsonl(second / "verdicts.jsonl", EvalRecord))) == 36
    calls = len(server.requests)
    rejudge(config, first, second, manager)
    assert len(server.requests) == calls, "a rerun asks no judge again"
    with pytest.raises(UserError, match="needs a new --out folder"):
        rejudge(config, first, first, manager)
    with pytest.raises(UserError, match=r"is .* a finished evaluation"):
        rejudge(config, tmp_path / "nothing", tmp_path / "third", manager)


def test_rejudge_command(demo_dir: Path, tmp_path: Path) -> None:
    """``mmaip evaluate --rejudge`` through the CLI, offline: exact-match verdicts judged again by reference."""
    import subprocess

    config = tmp_path / "eval.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "frames": {"num_frames": 2, "cache_dir": str(tmp_path / "frames")},
                "benchmarks": [{"name": "demo", "path": str(demo_dir / "qa.jsonl")}],
                "models": [
                    {"name": "tiny", "generator": "smoke", "family": "qwen2-vl", "params": {"max_new_tokens": 4}}
                ],
                "evaluators": [{"name": "exact-match"}],
            }
        )
    )
    first = subprocess.run(
        [MMAIP, "evaluate", str(config), "--out", str(tmp_path / "a")], capture_output=True, text=True
    )
    assert first.returncode == 0, first.stderr
    config.write_text(config.read_text().replace("exact-match", "reference"))
    second = subprocess.run(
        [MMAIP, "evaluate", str(config), "--out", str(tmp_path / "b"), "--rejudge", str(tmp_path / "a")],
        capture_output=True,
        text=True,
    )
    assert second.returncode == 0, second.stderr
    assert "Judge drift" in second.stdout and (tmp_path / "b" / "drift.json").is_file()
    (row,) = json.loads((tmp_path / "b" / "drift.json").read_text())["rows"]
    assert row["old"].startswith("exact-match@") and row["new"].startswith("reference@") and row["n"] == 9
