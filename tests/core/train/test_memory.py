"""Training memory does not grow with the number of videos: a round over many videos holds the frames and
pixels of one batch at most (frames come from the frame cache, pixels from the processor, each when a batch
needs them), and vision features are read from their files, never kept."""

from __future__ import annotations

import gc
import json
import weakref
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from mmaip_core import Frames, PluginManager
from mmaip_core.config import load_config
from mmaip_core.frames import FrameLoader
from mmaip_core.testbeds.synthetic import COLOURS, SHAPES, ShapeClip, render_clip, write_video
from mmaip_core.train import run_training
from mmaip_plugins.trainers.data import PIXEL_KEYS, VideoInputs
from mmaip_plugins.trainers.features import FeatureStore

VIDEOS, BATCH = 12, 3


class Live:
    """How many tracked objects are alive now, the most alive at once, and how many were tracked."""

    def __init__(self) -> None:
        self.now = self.peak = self.total = 0

    def track(self, value: Any) -> None:
        self.now += 1
        self.total += 1
        self.peak = max(self.peak, self.now)
        weakref.finalize(value, self._gone)

    def _gone(self) -> None:
        self.now -= 1


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Twelve clips of distinct content (shape x colour), two questions each: 24 pairs."""
    root = tmp_path_factory.mktemp("many")
    colours = list(COLOURS)
    pairs = []
    for i in range(VIDEOS):
        clip = ShapeClip(SHAPES[i % len(SHAPES)], colours[i % len(colours)], "right", num_frames=8, size=64)
        video = str(write_video(root / f"clip{i:02d}.mp4", render_clip(clip)))
        for q, question in enumerate(("What colour is the shape?", "What shape is it?")):
            chosen, rejected = (clip.colour, "purple") if q == 0 else (clip.shape, "star")
            pairs.append(
                {"id": f"p{i}-{q}", "video": video, "prompt": question, "chosen": chosen, "rejected": rejected}
            )
    path = root / "pairs.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in pairs))
    return path


@pytest.mark.parametrize("freeze_vision", [False, True])
def test_a_round_holds_one_batch_of_videos_at_most(
    freeze_vision: bool,
    pairs_file: Path,
    tiny_models: Path,
    tmp_path: Path,
    manager: PluginManager,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``mmaip train`` over 12 videos: frames and pixels are made when a batch needs them and dropped after."""
    frames, pixels = Live(), Live()
    load, inputs = FrameLoader.load, VideoInputs.inputs

    def tracked_load(self: FrameLoader, video: str | Path, *args: Any) -> Frames:
        loaded = load(self, video, *args)
        frames.track(loaded.array)
        return loaded

    def tracked_inputs(self: VideoInputs, key: str) -> dict[str, torch.Tensor]:
        made = inputs(self, key)
        for name in set(PIXEL_KEYS) & set(made):
            pixels.track(made[name])
        return made

    monkeypatch.setattr(FrameLoader, "load", tracked_load)
    monkeypatch.setattr(VideoInputs, "inputs", tracked_inputs)
    trainer = {
        "name": "video-dpo",
        "smoke": {"family": "qwen2-vl", "cache_dir": str(tiny_models)},
        "batch_size": BATCH,
        "freeze_vision": freeze_vision,
    }
    config = {
        "frames": {"sampler": "uniform", "num_frames": 4, "cache_dir": str(tmp_path / "frames")},
        "train": {"pairs": str(pairs_file), "rounds": 1, "alpha": 0.0, "trainer": trainer},
    }
    (tmp_path / "train.yaml").write_text(yaml.safe_dump(config))
    result = run_training(load_config(tmp_path / "train.yaml", manager), tmp_path / "out", manager).rounds[0].result

    assert result.pairs == 2 * VIDEOS and result.steps == 2 * VIDEOS // BATCH
    if freeze_vision:  # each video's pixels made once, for its encoding; the steps read features
        assert result.vision_encodes == pixels.total == VIDEOS and pixels.peak == 1
    else:  # pixels made for every batch (reference pass and steps), never more than one batch's videos at once
        assert pixels.total > 2 * VIDEOS and pixels.peak <= BATCH
    assert frames.total > VIDEOS and frames.peak <= 2  # loaded when needed (the pair being prepared, the one before)
    gc.collect()
    assert frames.now == pixels.now == 0  # nothing is kept after the round


def test_feature_store_reads_every_video_from_its_file(tmp_path: Path) -> None:
    from transformers.modeling_outputs import BaseModelOutputWithPooling

    def outputs(value: float) -> BaseModelOutputWithPooling:
        return BaseModelOutputWithPooling(pooler_output=(torch.full((4, 8), value),))

    writer = FeatureStore(tmp_path)
    for i in range(VIDEOS):
        writer.put(f"v{i}", outputs(float(i)))
    store = FeatureStore(tmp_path)  # a new store reads what another wrote (the output class comes from the file)
    batch = store.batch(["v1", "v1", "v11"], "cpu", torch.float32)
    assert type(batch) is BaseModelOutputWithPooling
    assert [float(t[0, 0]) for t in batch.pooler_output] == [1.0, 1.0, 11.0]
    writer.put("v1", outputs(-1.0))
    assert float(store.batch(["v1"], "cpu", torch.float32).pooler_output[0][0, 0]) == -1.0  # nothing kept in memory


def test_large_blocks_are_mapped_only_while_inside(monkeypatch: pytest.MonkeyPatch) -> None:
    """Preparing pairs maps blocks of 128 KiB and more on their own; after it (an error included), glibc's own
    largest thresholds apply; without glibc nothing is set."""
    from mmaip_plugins.trainers import common

    calls: list[tuple[int, int]] = []
    monkeypatch.setattr(common, "_mallopt", lambda: lambda param, value: calls.append((param, value)) or 1)
    with pytest.raises(KeyError), common.large_blocks_mapped():
        assert calls == [(common.M_MMAP_THRESHOLD, 128 * 2**10)]
        raise KeyError("a pair went wrong")
    assert calls[1:] == [(common.M_MMAP_THRESHOLD, 32 * 2**20), (common.M_TRIM_THRESHOLD, 64 * 2**20)]
    monkeypatch.setattr(common, "_mallopt", lambda: None)
    with common.large_blocks_mapped():
        pass
    assert len(calls) == 3
