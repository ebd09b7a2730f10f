"""The first hour: ``mmaip plugins NAME`` shows a plugin's options, ``mmaip init`` writes config templates that
validate and run offline, and docs/plugin-options.md lists every bundled plugin's options (generated)."""

from __future__ import annotations

import json
import runpy
import subprocess
from pathlib import Path

import pytest
from helpers import MMAIP, ROOT

from mmaip_core import PluginManager
from mmaip_core.config import load_config
from mmaip_core.plugins.options_table import option_rows


def _mmaip(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([MMAIP, *args], capture_output=True, text=True, timeout=300, cwd=cwd)


def test_option_rows_flatten_nested_options_with_their_defaults(manager: PluginManager) -> None:
    rows = {r.name: r for r in option_rows(manager.get("generator", "smoke").spec.options)}
    assert rows["family"].default == '"qwen2-vl"' and "qwen2.5-vl" in rows["family"].type
    # the smoke generator's own default params, not GenerationParams' defaults
    assert (rows["params.max_new_tokens"].default, rows["params.temperature"].default) == ("16", "1.0")
    judge = {r.name: r for r in option_rows(manager.get("evaluator", "vision-judge").spec.options)}
    assert (judge["scale.min"].default, judge["scale.max"].default) == ("0.0", "5.0")
    hf = {r.name: r for r in option_rows(manager.get("generator", "hf").spec.options)}
    assert hf["model"].required and hf["model"].type == "str" and not hf["revision"].required


def test_plugins_name_prints_its_options() -> None:
    shown = _mmaip("plugins", "video-dpo")
    assert shown.returncode == 0, shown.stderr
    for option in ("beta", "loss_type", "learning_rate", "smoke"):
        assert option in shown.stdout
    listed = json.loads(_mmaip("plugins", "reference", "--json").stdout)
    assert {p["kind"] for p in listed} >= {"scorer", "evaluator"}
    assert all(isinstance(p["options"], list) for p in listed)
    every = json.loads(_mmaip("plugins", "--options", "--kind", "generator", "--json").stdout)
    smoke = next(p for p in every if p["name"] == "smoke")
    assert {"name": "seed", "type": "int", "required": False, "default": "0"}.items() <= smoke["options"][1].items()
    unknown = _mmaip("plugins", "smok")
    assert unknown.returncode != 0 and "Did you mean 'smoke'?" in unknown.stderr


@pytest.mark.parametrize("kind", ["build", "evaluate", "train"])
def test_init_writes_a_template_that_validates(kind: str, tmp_path: Path, manager: PluginManager) -> None:
    made = _mmaip("init", kind, "--out", str(tmp_path / "my.yaml"))
    assert made.returncode == 0, made.stderr
    text = (tmp_path / "my.yaml").read_text()
    assert text.startswith(f"# mmaip {kind} config") and "mmaip config validate my.yaml" in text
    config = load_config(tmp_path / "my.yaml", manager)
    assert (config.zoo, config.evaluators, config.train is not None) != ([], [], False)
    again = _mmaip("init", kind, "--out", str(tmp_path / "my.yaml"))
    assert again.returncode != 0 and "--force" in again.stderr
    assert _mmaip("init", kind, "--out", str(tmp_path / "my.yaml"), "--force").returncode == 0


def test_the_build_template_plans_offline_on_the_demo_data(tmp_path: Path) -> None:
    assert _mmaip("init", "build", "--demo-data", cwd=tmp_path).returncode == 0
    assert (tmp_path / "data" / "qa.jsonl").is_file()
    plan = _mmaip("build", "build.yaml", "--out", "runs/build", "--dry-run", cwd=tmp_path)
    assert plan.returncode == 0, plan.stderr
    assert "tiny-a" in plan.stdout and "judgement" in plan.stdout


def test_plugin_options_doc_is_generated_from_the_code() -> None:
    render = runpy.run_path(str(ROOT / "docs" / "plugin_options_doc.py"))["render"]
    text = (ROOT / "docs" / "plugin-options.md").read_text()
    assert text == render(), "run: python docs/plugin_options_doc.py > docs/plugin-options.md"
    for plugin in ("### `smoke`", "### `video-dpo`", "### `hf`", "`fingerprint_endpoint`", "`params.max_new_tokens`"):
        assert plugin in text
