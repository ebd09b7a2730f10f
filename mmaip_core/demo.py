"""The bundled demo: synthetic videos, a run config, frames sampled through the frame layer.

It needs no network and no GPU. Later stages (build, train, evaluate) extend what it runs.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from mmaip_core.config import RunConfig, load_config
from mmaip_core.errors import VideoError
from mmaip_core.frames import FrameLoader, decode_stats
from mmaip_core.interfaces import Frames, RowError
from mmaip_core.manifest import run_manifest
from mmaip_core.plugins import PluginManager
from mmaip_core.records import VideoQA
from mmaip_core.synthetic import make_demo_dataset

__all__ = ["DEMO_CONFIG", "DemoResult", "run_demo"]

DEMO_CONFIG = """\
# The bundled demo run config (see docs/config.md for every key).
samples:
  reader: jsonl
  path: data/qa.jsonl
frames:
  sampler: uniform
  num_frames: 8
  cache_dir: cache/frames
zoo:
  - name: tiny-qwen2vl-a
    generator: smoke
    family: qwen2-vl
    seed: 0
  - name: tiny-qwen2vl-b
    generator: smoke
    family: qwen2-vl
    seed: 1
  - name: tiny-llava-ov
    generator: smoke
    family: llava-onevision
    seed: 0
scorer:
  name: exact-match
pairs:
  strategy: best-worst
"""


@dataclass
class DemoResult:
    """What the demo produced."""

    config: RunConfig
    samples: list[VideoQA] = field(default_factory=list)
    frames: dict[str, Frames] = field(default_factory=dict)  # by video path
    errors: list[str] = field(default_factory=list)
    frames_decoded: int = 0


def run_demo(out: str | Path, manager: PluginManager, num_videos: int = 6) -> DemoResult:
    """Write the demo dataset and config into ``out``, then read the samples and sample their frames."""
    out = Path(out)
    make_demo_dataset(out / "data", num_videos=num_videos)
    config_path = out / "demo.yaml"
    config_path.write_text(DEMO_CONFIG)
    config = load_config(config_path, manager)
    result = DemoResult(config=config)
    assert config.samples is not None
    reader = manager.create("sample-reader", config.samples.plugin, config.samples.options)
    loader = FrameLoader(config.frames, manager)
    before = decode_stats.total_frames
    for item in reader.read():
        if isinstance(item, RowError):
            result.errors.append(str(item))
            continue
        result.samples.append(item)
        try:
            result.frames[item.video] = loader.load(item.video)
        except VideoError as exc:
            result.errors.append(str(exc))
    result.frames_decoded = decode_stats.total_frames - before
    manifest = run_manifest(config.resolved(manager), manager, sys.argv)
    (out / "run-manifest.json").write_text(manifest.model_dump_json(indent=2))
    return result
