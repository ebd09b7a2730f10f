from __future__ import annotations

import json
import subprocess
from pathlib import Path

from helpers import MMAIP

from mmaip_core import PluginManager, PreferencePair, RunManifest
from mmaip_core.config import load_config
from mmaip_core.stages.build import run_build
from mmaip_core.store.jsonl import read_jsonl
from mmaip_core.testbeds.demo import prepare_demo


def test_demo_command_builds_pairs_offline(tmp_path: Path) -> None:
    # as the README runs it: from a working folder, with a relative --out
    result = subprocess.run(
        [MMAIP, "demo", "--out", "demo-out", "--videos", "2"], cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr
    out = tmp_path / "demo-out"
    assert "Build summary" in result.stdout
    summary = json.loads((out / "build" / "summary.json").read_text())
    assert summary["samples"] == 6
    assert summary["responses"]["tiny-qwen2vl-a"]["done"] == 12  # n = 2
    assert summary["judgements"]["ok"] == 24
    pairs = list(read_jsonl(out / "build" / "pairs.jsonl", PreferencePair))
    assert summary["pairs"] == len(pairs) > 0
    assert all(p.chosen_score > p.rejected_score and p.strategy == "best-worst" for p in pairs)
    manifest = RunManifest.model_validate_json((out / "build" / "run-manifest.json").read_text())
    assert manifest.config["scorer"]["name"] == "reference" and manifest.packages["torch"]
    results = json.loads((out / "evaluation" / "results.json").read_text())
    assert {(m["model"], m["evaluator"]) for m in results["metrics"]} == {
        (model, evaluator)
        for model in ("tiny-qwen2vl", "tiny-llava-ov", "tiny-qwen2vl-trained")
        for evaluator in ("reference", "exact-match", "lmms-eval-judge")
    }
    assert all(m["metrics"]["n"] == 6 for m in results["metrics"])
    # the lmms-eval protocol with a tiny random local judge: unreadable replies, each imputed as no, 0 and reported
    judged = [json.loads(x) for x in (out / "evaluation" / "verdicts.jsonl").read_text().splitlines()]
    judged = [v for v in judged if v["evaluator"] == "lmms-eval-judge"]
    assert len(judged) == 18 and all(v["score"] == 0 and v["correct"] is False for v in judged)
    errors = (out / "evaluation" / "errors.jsonl").read_text()
    assert errors.count('"imputed"') == sum(v["imputed"] for v in judged)
    assert (out / "evaluation" / "report.md").is_file() and "Evaluation" in result.stdout
    # the trained model is evaluated beside its base, with a paired difference
    assert any({p["model_a"], p["model_b"]} == {"tiny-qwen2vl", "tiny-qwen2vl-trained"} for p in results["paired"])
    comparison = json.loads((out / "compare" / "comparison.json").read_text())
    assert [s["name"] for s in comparison["scorers"]] == ["reference", "exact-match"] and comparison["answers"] == 24
    assert comparison["scorers"][0]["reused"] == 24, "the build's judgements are reused"


def test_demo_rerun_asks_no_model(manager: PluginManager, tmp_path: Path) -> None:
    config = prepare_demo(tmp_path, num_videos=1)
    first = run_build(load_config(config, manager), tmp_path / "build", manager)
    second = run_build(load_config(prepare_demo(tmp_path, num_videos=1), manager), tmp_path / "build", manager)
    assert sum(c["new"] for c in first.responses.values()) == 12
    assert sum(c["new"] for c in second.responses.values()) == 0
    assert second.judgements["new"] == 0 and second.pairs == first.pairs
