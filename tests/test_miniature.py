"""The paper in miniature, reduced (``QUICK``): the whole pipeline runs, the trained models differ from the
base, every config it wrote loads, and a second run (through the CLI) trains and asks nothing again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from safetensors import safe_open

from mmaip_core import PluginManager
from mmaip_core.config import load_config
from mmaip_core.extrapolate import VISION_PATTERN, tensor_files
from mmaip_miniature import QUICK, run_miniature


def _language_weights(folder: Path) -> dict[str, torch.Tensor]:
    out = {}
    for name, shard in tensor_files(folder).items():
        if not VISION_PATTERN.search(name):
            with safe_open(folder / shard, framework="pt") as f:
                out[name] = f.get_tensor(name)
    return out


def test_quick_miniature_end_to_end(manager: PluginManager, tmp_path: Path) -> None:
    out, cache = tmp_path / "mini", tmp_path / "cache"
    results = run_miniature(out, QUICK, manager, cache)
    names = [m.model for m in results.models]
    assert names[:3] == ["llava-weak", "qwen2vl", "llava-strong"]
    trained = {n for n in names if "+" in n} | set(results.untrained)
    assert trained == {f"llava-weak+{v}" for v in "abcd"}, "every variant is trained or says why not"
    assert {"llava-weak+a", "llava-weak+b", "llava-weak+c"} <= set(names) and results.pairs["zoo"] > 0
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

    # a second run, through the CLI: the zoo is cached, the builds and the evaluation come from their ledgers
    mmaip = str(Path(sys.executable).parent / "mmaip")
    again = subprocess.run([mmaip, "miniature", "run", "--out", str(out), "--quick", "--cache", str(cache)],
                           capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert "llava-weak+c" in again.stdout
    summary = json.loads((out / "build-zoo" / "summary.json").read_text())
    assert all(counts["new"] == 0 for counts in summary["responses"].values())
