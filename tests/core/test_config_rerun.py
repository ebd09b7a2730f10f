"""A run folder remembers its resolved config: an option that a newer mmaip added (absent from what an older
run remembered) is a change only when its value differs from its default; model folders in nested plugin
sections are taken from the config's folder like top-level ones."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import scripted_plugins
import yaml

from mmaip_core import PluginManager
from mmaip_core.config import load_config, resolve_again
from mmaip_core.stages.build import run_build
from mmaip_core.store.runfolder import ConfigChangedError


@pytest.fixture
def plugins(manager: PluginManager) -> PluginManager:
    manager.register(scripted_plugins, "scripted")
    return manager


def _config(tmp_path: Path, demo_dir: Path, delay: float | None = None) -> Path:
    good = {"name": "good", "generator": "scripted", "answers": ["{truth}"]}
    if delay is not None:
        good["delay"] = delay
    data = {
        "samples": {"reader": "jsonl", "path": str(demo_dir / "qa.jsonl")},
        "frames": {"num_frames": 2, "cache_dir": str(tmp_path / "frames")},
        "zoo": [good, {"name": "bad", "generator": "scripted", "model": "bad", "answers": ["no idea"]}],
        "scorer": {"name": "parsing-judge"},
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _forget(out: Path, *paths: str) -> None:
    """Remove ``paths`` (``zoo.0.delay``) from the folder's remembered config, as an older mmaip, whose
    plugins and sections lacked those options, would have written it."""
    remembered = json.loads((out / "run-config.json").read_text())
    for path in paths:
        *parents, last = path.split(".")
        node = remembered["config"]
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        del node[last]
    (out / "run-config.json").write_text(json.dumps(remembered))


def test_new_options_at_their_default_are_no_change(plugins: PluginManager, demo_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    run_build(load_config(_config(tmp_path, demo_dir), plugins), out, plugins)
    older = ("zoo.0.delay", "zoo.1.log", "zoo.1.n", "frames.backend", "frames.cache", "samples.check_videos")
    _forget(out, *older, "pairs.max_length_ratio")
    summary = run_build(load_config(_config(tmp_path, demo_dir), plugins), out, plugins)  # no config change
    assert summary.pairs == 9 and summary.responses["good"]["new"] == 0
    assert json.loads((out / "run-config.json").read_text())["config"]["zoo"][0]["delay"] == 0.0  # remembered now
    _forget(out, "zoo.0.delay")
    with pytest.raises(ConfigChangedError) as info:  # the user's value on the new option is still a change
        run_build(load_config(_config(tmp_path, demo_dir, delay=0.5), plugins), out, plugins)
    assert info.value.differences == ["config.zoo.0.delay: 0.0 → 0.5"]


def test_what_cannot_be_resolved_again_stays_as_remembered(plugins: PluginManager) -> None:
    """An option since removed, or a plugin no longer installed, is still shown as it was remembered."""
    gone = {"name": "old", "generator": "scripted", "retired_option": 1}
    unknown = {"name": "x", "generator": "no-such-generator", "answers": []}
    again = resolve_again({"previous": "/runs/a", "zoo": [gone], "models": [unknown], "frames": {}}, plugins)
    assert again["previous"] == "/runs/a"
    assert again["zoo"] == [gone] and again["models"] == [unknown]
    assert again["frames"]["backend"] == "auto" and again["frames"]["num_frames"] == 8


def test_model_folders_in_nested_sections_are_taken_from_the_config_folder(
    manager: PluginManager, tmp_path: Path
) -> None:
    """A judge's model folder under an evaluator, and each ensemble member's, like a zoo entry's model."""
    (tmp_path / "judges" / "mine").mkdir(parents=True)
    judge = {"name": "hf-judge", "model": "judges/mine"}  # exists beside the config: a folder
    data = {
        "scorer": {
            "name": "ensemble",
            "members": [judge, {"name": "hf-judge", "model": "./ckpt"}, {"name": "hf-judge", "model": "org/judge"}],
        },
        "evaluators": [{"name": "vision-judge", "judge": judge}],
        "zoo": [{"name": "z", "generator": "hf", "model": "judges/mine"}],
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(data))
    config = load_config(path, manager)
    assert config.scorer is not None
    members = [m["model"] for m in config.scorer.options["members"]]
    assert members == [str(tmp_path / "judges" / "mine"), str(tmp_path / "ckpt"), "org/judge"]
    assert config.evaluators[0].options["judge"] == {"name": "hf-judge", "model": str(tmp_path / "judges" / "mine")}
    assert config.zoo[0].options["model"] == str(tmp_path / "judges" / "mine")
