from __future__ import annotations

from pathlib import Path

from mmaip_core import PluginManager, RunManifest
from mmaip_core.demo import run_demo


def test_demo_runs_offline_and_reuses_the_frame_cache(manager: PluginManager, tmp_path: Path) -> None:
    first = run_demo(tmp_path, manager, num_videos=2)
    assert first.errors == []
    assert len(first.samples) == 6 and len(first.frames) == 2
    assert first.frames_decoded == 2 * 8
    assert [z.name for z in first.config.zoo] == ["tiny-qwen2vl-a", "tiny-qwen2vl-b", "tiny-llava-ov"]
    manifest = RunManifest.model_validate_json((tmp_path / "run-manifest.json").read_text())
    assert manifest.packages["torch"] and manifest.config["frames"]["num_frames"] == 8
    assert {p.kind for p in manifest.plugins} >= {"generator", "scorer", "frame-sampler"}
    second = run_demo(tmp_path, manager, num_videos=2)
    assert second.frames_decoded == 0
    assert {k: f.manifest.key for k, f in second.frames.items()} == {k: f.manifest.key for k, f in first.frames.items()}
