"""Frame ablations: settings parsed and checked, and a build and an evaluation run per setting, side by side."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import scripted_plugins
import yaml
from api_mock import MockServer

from mmaip_core import ConfigError, EvalRecord, FrameManifest, PluginManager
from mmaip_core.config import load_config
from mmaip_core.frames import FrameSettings
from mmaip_core.stages.ablation import ablate_build, ablate_evaluation, frame_variants, parse_frame_setting
from mmaip_core.store.jsonl import read_jsonl

FAST = {"backoff_s": 0.01, "max_backoff_s": 0.05, "timeout_s": 5}


def test_settings_are_parsed_and_checked(manager: PluginManager, tmp_path: Path) -> None:
    base = FrameSettings.model_validate(
        {"sampler": "uniform", "num_frames": 8, "max_side": 64, "cache_dir": str(tmp_path)}
    )
    assert parse_frame_setting("4", base).sampler_options == {"num_frames": 4}
    other = parse_frame_setting("scene-change:6", base)
    assert (other.sampler, other.sampler_options, other.max_side, other.cache_dir) == (
        "scene-change",
        {"num_frames": 6},
        64,
        tmp_path,
    )
    fps = parse_frame_setting("fps:fps=0.5,max_frames=12", base)
    assert (fps.sampler, fps.sampler_options) == ("fps", {"fps": 0.5, "max_frames": 12})
    assert parse_frame_setting("uniform", base).sampler_options == {"num_frames": 8}, (
        "same sampler: the config's options stay"
    )
    from mmaip_core.config import RunConfig

    config = RunConfig(frames=base)
    labels = [label for label, _ in frame_variants(config, ["4", "uniform:16", "fps:fps=1"], manager)]
    assert labels == ["4", "uniform-16", "fps-fps=1"]
    with pytest.raises(ConfigError) as caught:
        frame_variants(config, ["nosuch:4", "uniform:lots", "uniform:num_frames=0", "4", "4"], manager)
    problems = "\n".join(caught.value.problems)
    assert "--frames nosuch:4: " in problems and "--frames uniform:lots: 'lots' is not key=value" in problems
    assert "--frames uniform:num_frames=0: frame-sampler 'uniform': num_frames" in problems
    assert "settings repeated" in problems


def _config(tmp_path: Path, demo_dir: Path, **sections: object) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"frames": {"num_frames": 8, "cache_dir": str(tmp_path / "frames")}, **sections}))
    return path


def test_evaluation_per_frame_setting(
    server: MockServer, manager: PluginManager, demo_dir: Path, tmp_path: Path
) -> None:
    manager.register(scripted_plugins, "scripted")
    config = load_config(
        _config(
            tmp_path,
            demo_dir,
            benchmarks=[{"name": "demo", "path": str(demo_dir / "qa.jsonl")}],
            models=[{"name": "good", "generator": "scripted"}],
            evaluators=[
                {"name": "vision-judge", "judge": {"name": "openai-judge", "model": "gpt-4o", **FAST}},
                {"name": "exact-match"},
            ],
        ),
        manager,
    )
    out = tmp_path / "ablation"
    ablation = ablate_evaluation(config, ["2", "uniform:3"], out, manager)
    images = sorted(
        sum(
            p.get("type") == "image_url"
            for m in r["body"]["messages"]
            if isinstance(m["content"], list)
            for p in m["content"]
        )
        for r in server.requests
    )
    assert images == [2] * 9 + [3] * 9, "the judge sees each setting's frames, exactly"
    keys = {}
    for label in ("2", "uniform-3"):
        verdicts = list(read_jsonl(out / f"frames-{label}" / "verdicts.jsonl", EvalRecord))
        assert len(verdicts) == 18
        keys[label] = {v.frames for v in verdicts}
    assert not keys["2"] & keys["uniform-3"], "the models answered from each setting's frames"
    assert set(ablation.settings) == {"2", "uniform-3"} and ablation.settings["uniform-3"]["num_frames"] == 3
    rows = {(r.model, r.evaluator): r for r in ablation.rows}
    judge = rows[("good", "vision-judge")]
    assert judge.metrics["2"].ratio.value == 1.0 and judge.metrics["uniform-3"].n == 9
    assert judge.versus_first["uniform-3"].score.value == 0.0 and judge.versus_first["uniform-3"].n == 9
    table = (out / "ablation.md").read_text()
    assert "| demo | good | vision-judge | 100.0 [100.0, 100.0] / 5.00 [5.00, 5.00] |" in table
    assert json.loads((out / "ablation.json").read_text())["kind"] == "evaluation"


def test_build_per_frame_setting(manager: PluginManager, demo_dir: Path, tmp_path: Path) -> None:
    manager.register(scripted_plugins, "scripted")
    config = load_config(
        _config(
            tmp_path,
            demo_dir,
            samples={"path": str(demo_dir / "qa.jsonl")},
            zoo=[
                {"name": "right", "generator": "scripted"},
                {"name": "wrong", "generator": "scripted", "model": "w", "answers": ["no"]},
            ],
            scorer={"name": "exact-match"},
        ),
        manager,
    )
    out = tmp_path / "ablation"
    ablation = ablate_build(config, ["2", "4"], out, manager)
    assert [s.label for s in ablation.settings] == ["2", "4"]
    for setting, count in zip(ablation.settings, (2, 4), strict=True):
        (manifest, *_) = read_jsonl(out / f"frames-{setting.label}" / "frames.jsonl", FrameManifest)
        assert len(manifest.indices) == count
        assert (setting.samples, setting.answers, setting.pairs) == (9, 18, 9)
        assert setting.mean_score == {"right": 5.0, "wrong": 1.0} and setting.mean_margin == 4.0
    assert "| 2 | 9 | 18 | 18 | 0 | 9 | 4.00 | 5.00 | 1.00 | 0.0000 |" in (out / "ablation.md").read_text()
