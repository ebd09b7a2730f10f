"""`mmaip train` reads TRL's preference formats, LLaVA-Hound-DPO pair files and every `mmaip export` as the same
pairs, with the same frames, as the build's own pairs.jsonl."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scripted_plugins
import yaml
from datasets import Dataset, DatasetDict, Image, List
from PIL import Image as PILImage

from mmaip_core import PluginManager
from mmaip_core.config import load_config
from mmaip_core.frames import FrameLoader, FrameSettings
from mmaip_core.records import TrainPair
from mmaip_core.stages.build import run_build
from mmaip_core.stages.export import export_pairs
from mmaip_core.train import read_train_pairs


@pytest.fixture
def build_dir(manager: PluginManager, demo_dir: Path, tmp_path: Path) -> Path:
    manager.register(scripted_plugins, "scripted")
    config = tmp_path / "run.yaml"
    frames = {"num_frames": 4, "cache_dir": str(tmp_path / "frames")}
    config.write_text(
        yaml.safe_dump(
            {
                "samples": {"path": str(demo_dir / "qa.jsonl")},
                "frames": frames,
                "zoo": [
                    {"name": "good", "generator": "scripted"},
                    {"name": "bad", "generator": "scripted", "model": "bad", "answers": ["no idea"]},
                ],
                "scorer": {"name": "parsing-judge"},
            }
        )
    )
    run_build(load_config(config, manager), tmp_path / "run", manager)
    return tmp_path / "run"


def _text(pair: TrainPair) -> tuple[str, str, str, str, str]:
    return pair.id, pair.prompt, pair.chosen, pair.rejected, pair.label_source


@pytest.mark.parametrize(
    ("fmt", "as_images", "folder"),
    [
        ("trl", True, False),
        ("trl", False, False),
        ("hf", True, True),
        ("parquet", True, False),
        ("llava-hound", True, True),
    ],
)
def test_exports_train_as_the_builds_pairs(
    build_dir: Path, tmp_path: Path, manager: PluginManager, fmt: Any, as_images: bool, folder: bool
) -> None:
    """Every export reads back as the build's pairs, and the trainer's frame loader (the build's frame settings)
    gets the very frames it gets from the build's own videos."""
    exported = export_pairs(build_dir, tmp_path / "export", fmt, as_images)
    theirs, errors = read_train_pairs(tmp_path / "export" if folder else exported)
    ours, _ = read_train_pairs(build_dir / "pairs.jsonl")
    assert errors == [] and len(ours) == 9
    key = {"llava-hound": 0}.get(fmt)  # LLaVA-Hound-DPO's files carry no label source
    assert sorted(_text(p)[:key] for p in theirs) == sorted(_text(p)[:key] for p in ours)
    settings = FrameSettings(num_frames=4, cache_dir=tmp_path / "train-frames")
    load = FrameLoader(settings, manager).load
    by_id = {p.id: p for p in ours}
    for pair in theirs:
        assert (Path(pair.video).is_dir()) is as_images
        np.testing.assert_array_equal(load(pair.video).array, load(by_id[pair.id].video).array)


def _png(color: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    PILImage.new("RGB", (8, 6), color).save(out, format="PNG")
    return out.getvalue()


def _rows(video: str) -> list[dict[str, Any]]:
    """One row in each of TRL's preference formats."""
    user = [{"role": "user", "content": "What is shown?"}]
    parts = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "What is shown?"}]}]
    return [
        {"prompt": "What is shown?", "chosen": "A dog.", "rejected": "The cat.", "video": video},
        {
            "prompt": [{"role": "system", "content": "Be brief."}, *parts],
            "chosen": [{"role": "assistant", "content": [{"type": "text", "text": "A dog."}]}],
            "rejected": [{"role": "assistant", "content": "The cat."}],
            "videos": [video],
        },
        {  # implicit prompt, conversational
            "chosen": [*user, {"role": "assistant", "content": "A dog."}],
            "rejected": [*user, {"role": "assistant", "content": "The cat."}],
            "videos": video,
        },
        {"chosen": "What is shown? A dog.", "rejected": "What is shown? The cat.", "video": video},  # implicit, plain
    ]


def test_trl_formats_read_as_one_pair(tmp_path: Path, demo_video: Path) -> None:
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in _rows(str(demo_video))))
    pairs, errors = read_train_pairs(path)
    assert errors == []
    assert [p.id for p in pairs] == [f"pairs.jsonl:{n}" for n in range(1, 5)]  # no id: the row's place
    assert {(p.prompt.strip(), p.chosen.strip(), p.rejected.strip(), p.video, p.label_source) for p in pairs} == {
        ("What is shown?", "A dog.", "The cat.", str(demo_video), "human")
    }


def test_images_become_one_frame_folder(tmp_path: Path, manager: PluginManager) -> None:
    """Images as bytes (parquet, save_to_disk) or as paths (JSONL) become a folder of frames in order; the same
    frames twice are one folder."""
    colors = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    (tmp_path / "img").mkdir()
    for i, color in enumerate(colors):
        (tmp_path / "img" / f"{i}.png").write_bytes(_png(color))
    row = {"id": "a", "prompt": "q", "chosen": "x", "rejected": "y"}
    (tmp_path / "p.jsonl").write_text(json.dumps({**row, "images": [f"img/{i}.png" for i in range(3)]}) + "\n")
    data = Dataset.from_list([{**row, "images": [{"bytes": _png(c), "path": None} for c in colors]}])
    data = data.cast_column("images", List(Image()))
    data.to_parquet(str(tmp_path / "p.parquet"))
    DatasetDict({"train": data}).save_to_disk(str(tmp_path / "saved"))
    images = tmp_path / "images"
    read = [read_train_pairs(tmp_path / name, images)[0] for name in ("p.jsonl", "p.parquet", "saved")]
    assert len({pairs[0].video for pairs in read}) == 1 and len(list(images.iterdir())) == 1
    frames = FrameLoader(FrameSettings(num_frames=3, cache=False), manager).load(read[0][0].video).array
    assert [tuple(int(v) for v in frame[0, 0]) for frame in frames] == colors


def test_bad_rows_are_reported_and_the_rest_read(tmp_path: Path, demo_video: Path) -> None:
    good = {"id": "ok", "prompt": "q", "chosen": "x", "rejected": "y", "video": str(demo_video)}
    bad = [
        {**good, "id": "two", "videos": ["a.mp4", "b.mp4"]},
        {**good, "id": "img", "images": ["p.jsonl"]},
        {**good, "id": "num", "prompt": 3},
        {"id": "short", "chosen": "x"},
    ]
    path = tmp_path / "p.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in [good, *bad[:2]]) + json.dumps(bad[2]) + "\n")
    pairs, errors = read_train_pairs(path)
    assert [p.id for p in pairs] == ["ok"]
    assert [(e.item, e.error_class) for e in errors] == [(f"p.jsonl:{n}", "ValueError") for n in (2, 3, 4)]
    assert "one video path per pair" in errors[0].message and "images[0]: not a readable image" in errors[1].message
    path.write_text(json.dumps(bad[3]) + "\n")
    _, errors = read_train_pairs(path)
    assert errors[0].error_class == "ValidationError" and "video" in errors[0].message


def test_a_folder_without_rows_is_named(tmp_path: Path) -> None:
    from mmaip_core import UserError

    with pytest.raises(UserError, match="no training rows found"):
        read_train_pairs(tmp_path)
    with pytest.raises(UserError, match="not found"):
        read_train_pairs(tmp_path / "missing.jsonl")


def test_train_runs_on_the_trl_export(
    build_dir: Path, tmp_path: Path, tiny_models: Path, manager: PluginManager
) -> None:
    """`mmaip train` on the default export (frames as images): every pair trains, none is left out."""
    from mmaip_core.train import run_training

    export_pairs(build_dir, tmp_path / "export")
    trainer = {"name": "video-dpo", "smoke": {"family": "qwen2-vl", "cache_dir": str(tiny_models)}, "epochs": 1}
    data = {
        "frames": {"num_frames": 4, "cache_dir": str(tmp_path / "train-frames")},
        "train": {"pairs": str(tmp_path / "export"), "rounds": 1, "trainer": {**trainer, "batch_size": 3}},
    }
    (tmp_path / "train.yaml").write_text(yaml.safe_dump(data))
    manifest = run_training(load_config(tmp_path / "train.yaml", manager), tmp_path / "out", manager)
    result = manifest.rounds[0].result
    assert result.pairs == 9 and result.skipped == [] and result.steps == 3
    assert (tmp_path / "out" / "pair_errors.jsonl").read_text() == ""
