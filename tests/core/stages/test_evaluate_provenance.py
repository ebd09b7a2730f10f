"""Provenance and retries of verdicts: evaluators named by instance side by side, the frames the judge saw,
verdict failures in errors.jsonl, repairs retried on 429 like first calls, ``--retry-unreadable``."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import scripted_plugins
import yaml
from api_mock import MockServer
from helpers import MMAIP

from mmaip_core import EvalRecord, ParseStatus, PluginManager
from mmaip_core.config import load_config
from mmaip_core.stages.evaluate import EvalResults, run_evaluation
from mmaip_core.store.jsonl import read_jsonl

FAST = {"backoff_s": 0.01, "max_backoff_s": 0.05, "timeout_s": 5}


def _run(
    manager: PluginManager, demo_dir: Path, out: Path, evaluators: list[dict[str, object]], **kwargs: bool
) -> tuple[EvalResults, list[EvalRecord]]:
    manager.register(scripted_plugins, "scripted")  # a second registration is skipped with a warning
    out.parent.mkdir(parents=True, exist_ok=True)
    path = out.parent / "eval.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "frames": {"num_frames": 4, "cache_dir": str(out.parent / "frames")},
                "benchmarks": [{"name": "demo", "path": str(demo_dir / "qa.jsonl")}],
                "models": [{"name": "good", "generator": "scripted"}],
                "evaluators": evaluators,
            }
        )
    )
    results = run_evaluation(load_config(path, manager), out, manager, **kwargs)
    return results, list(read_jsonl(out / "verdicts.jsonl", EvalRecord))


def test_two_instances_of_one_evaluator_side_by_side_with_the_frames_each_judge_saw(
    server: MockServer, manager: PluginManager, demo_dir: Path, tmp_path: Path
) -> None:
    evaluators: list[dict[str, object]] = [
        {"name": "gpt4o-vision", "evaluator": "vision-judge", "judge": {"name": "openai-judge", "max_frames": 2}},
        {"name": "mini-vision", "evaluator": "vision-judge", "judge": {"name": "openai-judge", "model": "gpt-4o-mini"}},
        {"name": "exact-match"},  # an entry without an instance name keeps working
    ]
    results, verdicts = _run(manager, demo_dir, tmp_path / "eval", evaluators)
    assert {m.evaluator for m in results.metrics} == {"gpt4o-vision", "mini-vision", "exact-match"}
    by_name = {name: [v for v in verdicts if v.evaluator == name] for name in ("gpt4o-vision", "mini-vision")}
    assert [len(v) for v in by_name.values()] == [9, 9]
    assert by_name["gpt4o-vision"][0].fingerprint != by_name["mini-vision"][0].fingerprint
    assert all(v.judge_frames == v.frames for v in by_name["mini-vision"]), "all 4 frames shown"
    capped = by_name["gpt4o-vision"]
    assert all(v.judge_frames and v.judge_frames != v.frames for v in capped), "2 of the 4 frames: their own key"
    assert len({(v.frames, v.judge_frames) for v in capped}) == len({v.frames for v in capped})
    report = (tmp_path / "eval" / "report.md").read_text()
    assert "gpt4o-vision" in report and "mini-vision" in report


def test_repairs_are_retried_on_rate_limits_and_failed_verdicts_are_in_errors(
    server: MockServer, manager: PluginManager, demo_dir: Path, tmp_path: Path
) -> None:
    judge = {"name": "openai-judge", "model": "garbage-ratelimit", "max_repairs": 2, **FAST}
    evaluators: list[dict[str, object]] = [{"name": "text-judge", "judge": judge}, {"name": "exact-match"}]
    _, verdicts = _run(manager, demo_dir, tmp_path / "eval", evaluators)
    verdicts = [v for v in verdicts if v.evaluator == "text-judge"]
    assert {(v.status, v.score) for v in verdicts} == {(ParseStatus.PARSE_FAILURE, None)}
    assert all(v.usage and v.usage.completion_tokens > 0 for v in verdicts)
    statuses = [r["status"] for r in server.timings]
    assert statuses.count(429) == len(statuses) // 2, "every call (repairs too) met one 429, then went through"
    errors = [json.loads(line) for line in (tmp_path / "eval" / "errors.jsonl").read_text().splitlines()]
    assert len(errors) == 9
    assert {(e["stage"], e["error_class"], e["model"]) for e in errors} == {("evaluation", "parse_failure", "good")}
    assert all(e["item"].startswith("text-judge:demo:good:") for e in errors)


def test_retry_unreadable_asks_again_only_the_unreadable_verdicts(
    server: MockServer, manager: PluginManager, demo_dir: Path, tmp_path: Path
) -> None:
    judge = {"name": "openai-judge", "model": "garbagefirst", "max_repairs": 0, **FAST}
    evaluators: list[dict[str, object]] = [
        {"name": "text-judge", "protocol": "video-chatgpt", "judge": judge},
        {"name": "exact-match"},  # an evaluation with no usable verdict at all stops with an error
    ]
    out = tmp_path / "eval"
    _, verdicts = _run(manager, demo_dir, out, evaluators)
    verdicts = [v for v in verdicts if v.evaluator == "text-judge"]
    assert {v.status for v in verdicts} == {ParseStatus.PARSE_FAILURE}
    calls = len(server.requests)
    again, _ = _run(manager, demo_dir, out, evaluators)
    assert again.verdicts["new"] == 0 and len(server.requests) == calls, "unreadable verdicts are final..."
    retried, verdicts = _run(manager, demo_dir, out, evaluators, retry_unreadable=True)
    verdicts = [v for v in verdicts if v.evaluator == "text-judge"]
    assert retried.verdicts["new"] == calls and len(server.requests) == 2 * calls
    assert {(v.status, v.correct, v.score) for v in verdicts} == {(ParseStatus.OK, True, 4.0)}
    assert not (out / "errors.jsonl").read_text().strip()
    _run(manager, demo_dir, out, evaluators, retry_unreadable=True)
    assert len(server.requests) == 2 * calls, "...and read ones are never asked again"


def test_the_retry_unreadable_flag(server: MockServer, demo_dir: Path, tmp_path: Path) -> None:
    judge = {"name": "openai-judge", "model": "garbagefirst", "max_repairs": 0, **FAST}
    path = tmp_path / "eval.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "frames": {"num_frames": 2, "cache_dir": str(tmp_path / "frames")},
                "benchmarks": [{"name": "demo", "path": str(demo_dir / "qa.jsonl")}],
                "models": [{"name": "tiny", "generator": "smoke", "params": {"max_new_tokens": 4}}],
                "evaluators": [
                    {"name": "text-judge", "protocol": "video-chatgpt", "judge": judge},
                    {"name": "reference"},
                ],
            }
        )
    )
    out = tmp_path / "eval"

    def evaluate(*flags: str) -> subprocess.CompletedProcess[str]:
        command = [MMAIP, "evaluate", str(path), "--out", str(out), *flags]
        return subprocess.run(command, capture_output=True, text=True, timeout=600)

    assert evaluate().returncode == 0
    first = len(server.requests)
    assert evaluate("--retry-unreadable").returncode == 0
    assert len(server.requests) == 2 * first, "every unreadable verdict asked once more, and read"
    verdicts = [v for v in read_jsonl(out / "verdicts.jsonl", EvalRecord) if v.evaluator == "text-judge"]
    assert {v.status for v in verdicts} == {ParseStatus.OK}
    refused = evaluate("--retry-unreadable", "--frames", "4")
    assert refused.returncode != 0 and "--retry-unreadable works on a plain evaluation" in refused.stderr
