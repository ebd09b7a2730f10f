"""The command line's habits: flags as --flag/--no-flag, -o always --out, --set for plugin options, pairs that
leave the build's pairs.jsonl alone, exit codes a script can trust, errors that name the model and the sample,
progress that ends at its total, tables and summaries readable in a log."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import scripted_plugins
import yaml
from api_mock import MockServer
from helpers import ONE_FAST_ATTEMPT
from rich.console import Console
from typer.testing import CliRunner

from mmaip_cli import cli
from mmaip_core import PluginManager, UnknownPluginError
from mmaip_core.analysis.metrics import Estimate, MetricSummary
from mmaip_core.config import load_config
from mmaip_core.stages.build import run_build
from mmaip_core.stages.evaluate import EvalResults, MetricRow
from mmaip_core.stages.run import BuildSummary, ErrorCount

runner = CliRunner()


def _config(tmp_path: Path, demo_dir: Path, zoo: list[dict[str, object]], scorer: str = "parsing-judge") -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "samples": {"path": str(demo_dir / "qa.jsonl")},
                "frames": {"num_frames": 2, "cache_dir": str(tmp_path / "frames")},
                "zoo": zoo,
                "scorer": {"name": scorer},
            }
        )
    )
    return path


GOOD = {"name": "good", "generator": "scripted", "answers": ["{truth}"]}
WRONG = {"name": "wrong", "generator": "scripted", "model": "wrong", "answers": ["no idea"]}
DOWN = {"name": "down", "generator": "openai", "model": "alwaysfail", **ONE_FAST_ATTEMPT}


@pytest.mark.parametrize("command", ["build", "evaluate", "pairs", "frames", "extrapolate", "train", "compare-scorers"])
def test_help_shows_flags_as_pairs_and_o_always_means_out(command: str) -> None:
    result = runner.invoke(cli.app, [command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.output
    lines = result.output.splitlines()
    assert all("--out" in line for line in lines if "-o," in line or "-o " in line.lstrip()[:3])
    if command == "build":
        assert "--dry-run / --no-dry-run" in result.output
    if command in ("pairs", "frames"):
        assert "-s, --set KEY=VALUE" in result.output and "--option" not in result.output


def _finished_build(tmp_path: Path, demo_dir: Path, manager: PluginManager) -> Path:
    manager.register(scripted_plugins, "scripted")
    out = tmp_path / "run"
    run_build(load_config(_config(tmp_path, demo_dir, [GOOD, WRONG]), manager), out, manager)
    return out


def test_pairs_leaves_the_builds_pairs_alone_unless_told(
    manager: PluginManager, demo_dir: Path, tmp_path: Path
) -> None:
    out = _finished_build(tmp_path, demo_dir, manager)
    before = (out / "pairs.jsonl").read_bytes()
    result = runner.invoke(cli.app, ["pairs", str(out), "--strategy", "margin", "-s", "min_margin=10"])
    assert result.exit_code == cli.EXIT_EMPTY, "a margin of 10 on a 1-5 scale makes no pair"
    assert "questions without a pair: " in result.output and "{" not in result.output
    assert (out / "pairs-margin.jsonl").read_text() == "" and (out / "pairs.jsonl").read_bytes() == before
    elsewhere = tmp_path / "margin.jsonl"
    result = runner.invoke(
        cli.app, ["pairs", str(out), "--strategy", "margin", "--set", "min_margin=2", "-o", str(elsewhere)]
    )
    assert result.exit_code == 0, result.output
    assert len(elsewhere.read_text().splitlines()) == 9 and (out / "pairs.jsonl").read_bytes() == before
    result = runner.invoke(cli.app, ["pairs", str(out), "--strategy", "margin", "-s", "min_margin=10", "--replace"])
    assert result.exit_code == cli.EXIT_EMPTY and (out / "pairs.jsonl").read_text() == ""
    assert json.loads((out / "summary.json").read_text())["pairs"] == 0


def test_errors_name_the_model_and_the_sample_and_progress_ends_at_its_total(
    server: MockServer, manager: PluginManager, demo_dir: Path, tmp_path: Path
) -> None:
    manager.register(scripted_plugins, "scripted")
    config = load_config(_config(tmp_path, demo_dir, [GOOD, WRONG, DOWN]), manager)
    seen: dict[str, tuple[int, int]] = {}

    def progress(stage: str, done: int, total: int, spent: float) -> None:
        seen[stage] = (done, total)

    for attempt in ("first", "from the ledger"):
        seen.clear()
        summary = run_build(config, tmp_path / "run", manager, progress)
        assert seen["judgement"] == (27, 27), "the 9 answers that failed are settled, not left out"
        assert all(done == total for done, total in seen.values()), (attempt, seen)
    errors = [json.loads(line) for line in (tmp_path / "run" / "errors.jsonl").read_text().splitlines()]
    assert {(e["stage"], e["model"]) for e in errors} == {("generation", "down")}
    assert sorted(e["sample_id"] for e in errors) == sorted(
        json.loads(line)["id"] for line in (demo_dir / "qa.jsonl").read_text().splitlines()
    )
    assert summary.errors == [ErrorCount(stage="generation", model="down", error_class="InternalServerError", count=9)]
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["errors"][0]["model"] == "down"


def test_a_build_stopped_by_max_cost_has_its_own_exit_code(server: MockServer, demo_dir: Path, tmp_path: Path) -> None:
    zoo = [{"name": "mini", "generator": "openai", "model": "gpt-4o-mini", **ONE_FAST_ATTEMPT}]
    config = _config(tmp_path, demo_dir, zoo, scorer="exact-match")
    result = runner.invoke(cli.app, ["build", str(config), "--out", str(tmp_path / "run"), "--max-cost", "0.0001"])
    assert result.exit_code == cli.EXIT_BUDGET, result.output
    assert "stopped by --max-cost $0.0001:" in result.output and "not made" in result.output
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["refused_by_budget"] > 0 and summary["responses"]["mini"].get("done", 0) < 9
    assert summary["skipped"].get("calls not made (--max-cost)", 0) > 0, "not counted as answers that tie or fail"


def _long_names_table(width: int) -> str:
    estimate = Estimate(value=0.5, low=0.4, high=0.6)
    rows = [
        MetricRow(
            model=name,
            benchmark="demo",
            evaluator="reference",
            metrics=MetricSummary(n=9, videos=9, parse_failures=0, errors=0, ratio=estimate, score=estimate),
        )
        for name in ("tiny-qwen2-vl-2b-instruct-base", "tiny-qwen2-vl-2b-instruct-dpo-round-3")
    ]
    buffer = io.StringIO()
    saved = cli.console
    cli.console = Console(file=buffer, width=width)
    try:
        cli._print_results(EvalResults(metrics=rows, paired=[], verdicts={"new": 9, "reused": 9}), Path("out"))
    finally:
        cli.console = saved
    return buffer.getvalue()


def test_tables_keep_the_end_of_long_names_and_summaries_are_plain() -> None:
    narrow = _long_names_table(70)
    assert "…" not in narrow, "cells wrap; they are not cut"
    assert "verdicts: 9 new, 9 from the ledger" in narrow and "{" not in narrow
    wide = _long_names_table(cli.LOG_WIDTH)
    assert "tiny-qwen2-vl-2b-instruct-base " in wide and "tiny-qwen2-vl-2b-instruct-dpo-round-3 " in wide


def test_build_summary_in_words(capsys: pytest.CaptureFixture[str]) -> None:
    summary = BuildSummary(
        samples=9,
        pairs=0,
        skipped={"all scores tie": 7, "fewer than two scored answers": 2},
        errors=[ErrorCount(stage="judgement", model="wordy", error_class="parse_failure", count=2)],
    )
    cli._print_summary(summary, Path("out"))
    text = " ".join(capsys.readouterr().out.split())
    assert "questions without a pair: all scores tie (7), fewer than two scored answers (2)" in text
    assert "judgement │ wordy │ parse_failure │ 2" in text and "out/errors.jsonl" in text


def test_plural_of_a_plugin_kind(manager: PluginManager) -> None:
    with pytest.raises(UnknownPluginError, match="Known pair-strategies: "):
        manager.create("pair-strategy", "best-wurst", {})
