"""The paper in miniature, reduced (``QUICK``): the whole pipeline runs through the CLI with relative folders;
the video-gap benchmarks, the controls, both seeds' spread, the validation fit and the paired tests are in
results.json with numbers; alpha is chosen per round on validation and the on-policy control samples the current
model each round; the trained models differ from the base, every config it wrote loads, and a second
run trains and asks nothing again."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import torch
import yaml
from helpers import MMAIP
from safetensors import safe_open

from mmaip_core import PluginManager
from mmaip_core.config import load_config
from mmaip_core.train.extrapolate import VISION_PATTERN, tensor_files
from mmaip_miniature import QUICK, MiniatureResults, run_miniature
from mmaip_miniature.chain import choose_alpha


def _language_weights(folder: Path) -> dict[str, torch.Tensor]:
    out = {}
    for name, shard in tensor_files(folder).items():
        if not VISION_PATTERN.search(name):
            with safe_open(folder / shard, framework="pt") as f:
                out[name] = f.get_tensor(name)
    return out


def _table_rows(stdout: str) -> dict[str, list[str]]:
    """The printed results table: model -> its cells."""
    rows = [line.strip().strip("|").split("|") for line in stdout.splitlines() if line.startswith("| llava-")]
    return {cells[0].strip(): [c.strip() for c in cells[1:]] for cells in rows}


def _check_tables(stdout: str, results: MiniatureResults) -> None:
    """The printed table: every zoo member and trained variant with numbers; the paired tests below it."""
    table, estimate, base = _table_rows(stdout), r"-?\d+\.\d \[-?\d+\.\d, -?\d+\.\d\]", results.models[0].model
    assert re.fullmatch(estimate, table[base][1]), table[base]
    for v in results.variants:  # pooled accuracy, seeds' mean ± sd, change, video gaps: numbers, not dashes
        cells = table[v.model]
        assert re.fullmatch(estimate, cells[1]) and re.fullmatch(r"\d+\.\d ± \d+\.\d", cells[2]), cells
        assert all(re.fullmatch(estimate, c) for c in (cells[3], cells[7], cells[8])), cells
    assert "| (c) vs (a) | held-out | 0, 1 | 36 |" in stdout


def _check_video_gap(out: Path, results: MiniatureResults) -> None:
    """Shuffled and blank frames: the same questions, every one on another video; a gap for every model."""
    real = [json.loads(line) for line in (out / "data" / "held-out.jsonl").read_text().splitlines()]
    shuffled = [json.loads(line) for line in (out / "data" / "held-out-shuffled.jsonl").read_text().splitlines()]
    assert [r["id"] for r in shuffled] == [r["id"] for r in real]
    assert all(s["video"] != r["video"] for s, r in zip(shuffled, real, strict=True))
    assert {s["video"] for s in shuffled} == {r["video"] for r in real}  # a derangement of the split's videos
    for model in results.models:
        assert (
            model.metrics["held-out-shuffled/exact-match"].n
            + model.metrics["held-out-shuffled/exact-match"].parse_failures
            == 18
        )
        assert {c: d.n for c, d in model.video_gap.items()} == {"shuffled": 18, "blank": 18}, model.model
    for variant in results.variants:
        assert variant.video_gap["shuffled"].n == 36 and variant.video_gap["shuffled"].ratio.value is not None


def _check_seeds_controls_tests(out: Path, results: MiniatureResults) -> None:
    """Every variant and control under both seeds, their spread, the validation fit and the paired tests."""
    trained = {v.variant for v in results.variants}
    assert {"a", "b", "c", "c-val", "sft", "fixed", "oracle", "on-policy"} <= trained
    assert trained | {k.removeprefix(f"{results.models[0].model}+") for k in results.untrained} == {
        "a",
        "b",
        "c",
        "d",
        "c-val",
        "sft",
        "fixed",
        "oracle",
        "on-policy",
    }
    assert results.pairs["validation"] > 0 and results.pairs["oracle train"] > 0
    for v in results.variants:
        assert v.seeds == [0, 1] and v.pooled["held-out"].n == 36
        spread = v.accuracy["held-out"]
        assert set(spread.values) == {0, 1} and spread.mean is not None and spread.sd is not None
        assert v.fit["validation accuracy"].mean is not None and v.fit["validation margin"].mean is not None
    for model in (m for m in results.models if m.variant is not None):
        assert model.fit and all(f.validation["pairs"] == results.pairs["validation"] for f in model.fit)
    names = {(t.name, t.benchmark) for t in results.tests}
    wanted = {"(c) vs (a)", "(c) vs (b)", "(c) vs (fixed)", "(c) vs (sft)", "(oracle) vs (c)", "(on-policy) vs (c)"}
    wanted |= {"(c-val) vs (c)", "(c-val) vs (b)"}
    assert {(n, b) for n in wanted for b in ("held-out", "ood")} <= names
    assert all(t.p_value is not None and 0 < t.p_value <= 1 and t.difference.n == 36 for t in results.tests)
    validation = {
        json.loads(line)["video"] for line in (out / "pairs" / "build-zoo-validation.jsonl").read_text().splitlines()
    }
    training = {
        json.loads(line)["video"] for line in (out / "pairs" / "build-zoo-train.jsonl").read_text().splitlines()
    }
    assert validation and not validation & training


def _check_alpha_per_round(out: Path, results: MiniatureResults) -> None:
    """(c-val): in every round the policy and its extrapolation answered the validation questions, and the
    recorded alpha is the rule's choice among their accuracies; the next round starts from the chosen model."""
    chained = [m for m in results.models if m.variant == "c-val"]
    assert len(chained) == 2
    for m in chained:
        assert [f.round for f in m.fit] == [1, 2] and m.final_round == 2
        for f in m.fit:
            assert set(f.alpha_validation) == {"0", "0.5"} and all(v is not None for v in f.alpha_validation.values())
            assert f.alpha == choose_alpha({float(a): v for a, v in f.alpha_validation.items()}, 0.0)
    run = out / "train-c-val-s0"
    first = json.loads((run / "round-1" / "train" / "manifest.json").read_text())
    second = json.loads((run / "round-2" / "train" / "manifest.json").read_text())
    chosen = chained[0].fit[0].alpha
    expected = first["final"] if chosen == 0 else str(run / "round-1" / f"alpha-{chosen:g}")
    assert yaml.safe_load((run / "round-2" / "train.yaml").read_text())["train"]["trainer"]["model"] == expected
    assert second["rounds"][0]["reference"] == second["base"]  # round 2: DPO against the chosen model


def _check_on_policy(out: Path) -> None:
    """The on-policy control: before every round the model the round starts from answered the round's questions
    (an ordinary build through the mmaip_round_pairs hook), and the round trained on its pairs too."""
    run = out / "train-on-policy-s0"
    manifest = json.loads((run / "manifest.json").read_text())
    for r in manifest["rounds"]:
        build = yaml.safe_load((run / "on-policy" / f"round-{r['round']}" / "build.yaml").read_text())
        assert build["zoo"][0]["model"] == r["init"] and build["zoo"][0]["n"] == QUICK.onpolicy_answers
        questions = (run / "on-policy" / f"round-{r['round']}" / "questions.jsonl").read_text().splitlines()
        summary = json.loads((run / "on-policy" / f"round-{r['round']}" / "build" / "summary.json").read_text())
        assert questions and summary["responses"]["current"]["new"] == QUICK.onpolicy_answers * len(questions)
        own = [p for p in _lines(Path(r["pairs_file"])) if p["id"].startswith(f"on-policy-r{r['round']}-")]
        pairs = _lines(run / "on-policy" / f"round-{r['round']}" / "build" / "pairs.jsonl")
        assert len(own) == len(pairs) and r["result"]["pairs"] >= len(own)


def _lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _check_choices(out: Path, results: MiniatureResults) -> None:
    """The base chosen by base.py's rule among the candidates on validation questions, the recipe by recipe.py's
    rule on validation pairs; both recorded with their numbers, and the chosen recipe is what the variants use."""
    base = results.base
    assert base is not None and base.chosen == results.models[0].model
    assert [c.name for c in base.candidates] == ["llava-weak", "llava-alt"]
    assert [c.name for c in base.others] == ["qwen2vl", "llava-strong"]
    assert all(c.gap.n == 12 and c.accuracy is not None for c in [*base.candidates, *base.others])
    assert base.chosen in base.qualified or (not base.qualified and base.chosen == "llava-weak")
    validation = {json.loads(line)["video"] for line in (out / "data" / "validation.jsonl").read_text().splitlines()}
    held_out = {json.loads(line)["video"] for line in (out / "data" / "held-out.jsonl").read_text().splitlines()}
    assert len(validation) == 4 and not validation & held_out
    recipe = results.recipe
    assert recipe is not None and len(recipe.fits) == 2 and recipe.chosen in [f.options for f in recipe.fits]
    assert all(f.validation["pairs"] == results.pairs["validation"] for f in recipe.fits)
    trainer = yaml.safe_load((out / "configs" / "train-c-s0.yaml").read_text())["train"]["trainer"]
    assert all(trainer[k] == v for k, v in recipe.chosen.items())


def test_quick_miniature_end_to_end(manager: PluginManager, tmp_path: Path) -> None:
    # as the README runs it: the CLI, from a working folder, with relative --out and --cache
    first = subprocess.run(
        [MMAIP, "miniature", "run", "--out", "mini", "--quick", "--cache", "cache"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        timeout=900,
    )
    assert first.returncode == 0, first.stderr
    out, cache = tmp_path / "mini", tmp_path / "cache"
    results = MiniatureResults.model_validate_json((out / "results.json").read_text())
    names = [m.model for m in results.models]
    base_name = names[0]
    assert names == [base_name, "qwen2vl", "llava-strong", *names[3:]]
    _check_choices(out, results)
    _check_tables(first.stdout, results)
    _check_video_gap(out, results)
    _check_seeds_controls_tests(out, results)
    _check_alpha_per_round(out, results)
    _check_on_policy(out)
    for model in results.models:
        summary = model.metrics["held-out/exact-match"]
        assert summary.n + summary.parse_failures + summary.errors == 18  # 6 videos, 3 questions each
        assert set(model.versus_base) == (set() if model.model == base_name else {"held-out", "ood"})
    # the trained models differ from the base they started from
    base = _language_weights(next(cache.glob(f"{base_name}-[0-9a-f]*")))
    for variant in ("a", "b", "c", "sft", "oracle"):
        manifest = json.loads((out / f"train-{variant}-s0" / "manifest.json").read_text())
        final = _language_weights(Path(manifest["final"]))
        assert set(final) == set(base)
        assert any(not torch.equal(final[n], base[n]) for n in base), variant
        assert len(manifest["rounds"]) == (1 if variant in ("a", "sft") else QUICK.rounds)
    for config in (out / "configs").glob("*.yaml"):
        load_config(config, manager)  # every config it ran can be rerun by hand
    report = (out / "results.md").read_text()
    assert f"| {base_name}+c | (c) T rounds, reference updated, extrapolated (the paper) (2 seeds) |" in report
    assert "## Training and validation fit" in report and f"| {base_name}+c-s1 | 2 (evaluated) |" in report
    assert "## The base" in report and "## The recipe" in report and "## Alpha per round" in report
    assert "## The text-only judge against the truth" in report and (out / "results.png").stat().st_size > 0
    assert {r.benchmark for r in results.text_judge} == {"held-out", "ood"}

    # a second run, from Python with the absolute folders: the same run, so nothing is trained or asked again
    on_policy = {p: p.read_text() for p in (out / "train-on-policy-s0" / "on-policy").glob("round-*/build/*.json*")}
    again = run_miniature(out, QUICK, manager, cache)
    assert again.models == results.models and again.tests == results.tests
    summary = json.loads((out / "build-zoo" / "summary.json").read_text())
    assert all(counts["new"] == 0 for counts in summary["responses"].values())
    assert on_policy and all(p.read_text() == text for p, text in on_policy.items())  # not sampled again
