"""The paper in miniature, reduced (``QUICK``): the whole pipeline runs through the CLI with relative folders,
the trained models differ from the base, every config it wrote loads, and a second run trains and asks nothing
again."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import torch
from helpers import MMAIP
from safetensors import safe_open

from mmaip_core import PluginManager
from mmaip_core.config import load_config
from mmaip_core.train.extrapolate import VISION_PATTERN, tensor_files
from mmaip_miniature import QUICK, MiniatureResults, run_miniature


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
    assert names[:3] == ["llava-weak", "qwen2vl", "llava-strong"]
    trained = {n for n in names if "+" in n} | set(results.untrained)
    assert trained == {f"llava-weak+{v}" for v in "abcd"}, "every variant is trained or says why not"
    assert {"llava-weak+a", "llava-weak+b", "llava-weak+c"} <= set(names) and results.pairs["zoo"] > 0
    table, estimate = _table_rows(first.stdout), r"-?\d+\.\d \[-?\d+\.\d, -?\d+\.\d\]"
    assert re.fullmatch(estimate, table["llava-weak"][1]), table["llava-weak"]
    for name in ("llava-weak+a", "llava-weak+b", "llava-weak+c"):  # held-out accuracy and change: numbers, not dashes
        assert all(re.fullmatch(estimate, cell) for cell in table[name][1:3]), table[name]
    for model in results.models:
        summary = model.metrics["held-out/exact-match"]
        assert summary.n + summary.parse_failures + summary.errors == 18  # 6 videos, 3 questions each
        assert set(model.versus_base) == (set() if model.model == "llava-weak" else {"held-out", "ood"})
    # the trained models differ from the base they started from
    base = _language_weights(next(cache.glob("llava-weak-*")))
    for variant in "abc":
        manifest = json.loads((out / f"train-{variant}" / "manifest.json").read_text())
        final = _language_weights(Path(manifest["final"]))
        assert set(final) == set(base)
        assert any(not torch.equal(final[n], base[n]) for n in base), variant
        assert len(manifest["rounds"]) == (1 if variant == "a" else QUICK.rounds)
    for config in (out / "configs").glob("*.yaml"):
        load_config(config, manager)  # every config it ran can be rerun by hand
    report = (out / "results.md").read_text()
    assert "| llava-weak+c | (c) T rounds, reference updated, extrapolated (the paper) |" in report
    assert "## The text-only judge against the truth" in report and (out / "results.png").stat().st_size > 0
    assert {r.benchmark for r in results.text_judge} == {"held-out", "ood"}

    # a second run, from Python with the absolute folders: the same run, so nothing is trained or asked again
    again = run_miniature(out, QUICK, manager, cache)
    assert again.models == results.models
    summary = json.loads((out / "build-zoo" / "summary.json").read_text())
    assert all(counts["new"] == 0 for counts in summary["responses"].values())
