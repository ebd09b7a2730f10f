from __future__ import annotations

import json
import math
import os
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scripted_plugins
import yaml
from datasets import load_dataset
from helpers import MMAIP
from PIL import Image
from transformers import AutoProcessor
from trl.data_utils import is_conversational, maybe_apply_chat_template

from mmaip_core import ConfigError, PluginManager
from mmaip_core.config import load_config
from mmaip_core.stages.build import run_build
from mmaip_core.stages.export import export_pairs
from mmaip_plugins.zoo.tiny import build_tiny_model


@pytest.fixture
def build_dir(manager: PluginManager, demo_dir: Path, tmp_path: Path) -> Path:
    manager.register(scripted_plugins, "scripted")
    config = tmp_path / "run.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "samples": {"path": str(demo_dir / "qa.jsonl")},
                "frames": {"num_frames": 4, "cache_dir": str(tmp_path / "frames")},
                "zoo": [
                    {"name": "good", "generator": "scripted"},
                    {"name": "bad", "generator": "scripted", "model": "bad", "answers": ["no idea"]},
                ],
                "scorer": {"name": "parsing-judge"},
            }
        )
    )
    out = tmp_path / "run"
    run_build(load_config(config, manager), out, manager)
    return out


def test_default_trl_export_trains_in_trl_dpo_trainer(build_dir: Path, tmp_path: Path, tiny_models: Path) -> None:
    """Loaded as a TRL user loads it, the default export trains in TRL's DPOTrainer as it is: steps run, the
    loss is finite, and the weights change, the vision tower's too (the frames reached the model)."""
    import torch
    from transformers import AutoModelForImageTextToText
    from trl import DPOConfig, DPOTrainer

    target = export_pairs(build_dir, tmp_path / "trl")
    assert target == tmp_path / "trl" / "train.parquet"
    dataset = load_dataset("parquet", data_files=str(target), split="train")
    row = dataset[0]
    assert len(row["images"]) == 4 and row["images"][0].size == (96, 96)
    assert [c["type"] for c in row["prompt"][0]["content"]] == ["image"] * 4 + ["text"]
    card = (tmp_path / "trl" / "README.md").read_text()
    assert "path: train.parquet" in card and "`DPOTrainer` trains on them" in card
    model_dir = build_tiny_model("qwen2-vl", 0, tiny_models)
    model = AutoModelForImageTextToText.from_pretrained(model_dir)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    args = DPOConfig(
        output_dir=str(tmp_path / "dpo"),
        use_cpu=True,
        bf16=False,
        max_length=None,
        report_to=[],
        max_steps=2,
        per_device_train_batch_size=2,
        learning_rate=1e-3,
        logging_steps=1,
        save_strategy="no",
        disable_tqdm=True,
    )
    trainer = DPOTrainer(
        model=model, args=args, train_dataset=dataset, processing_class=AutoProcessor.from_pretrained(model_dir)
    )
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert trainer.state.global_step == 2 and len(losses) == 2 and all(math.isfinite(loss) for loss in losses)
    changed = {name for name, p in model.named_parameters() if not torch.equal(p, before[name])}
    assert any("visual" in name for name in changed) and any("language_model" in name for name in changed)


def test_video_path_rows_go_through_trl_data_path(build_dir: Path, tmp_path: Path, tiny_models: Path) -> None:
    target = export_pairs(build_dir, tmp_path / "trl", "trl", frames_as_images=False)
    dataset = load_dataset("json", data_files=str(target), split="train")
    assert target.name == "train.jsonl" and len(dataset) == 9 and "images" not in dataset.column_names
    row = dataset[0]
    assert is_conversational(row)
    assert row["prompt"][0]["content"][0]["type"] == "video"
    assert row["chosen_model"] == "good" and row["chosen_score"] == 5.0 and row["frame_key"]
    processor = AutoProcessor.from_pretrained(build_tiny_model("qwen2-vl", 0, tiny_models))
    texts = maybe_apply_chat_template(row, processor.tokenizer)
    assert "<|video_pad|>" in texts["prompt"] and row["question"] in texts["prompt"]
    assert texts["chosen"].startswith(row["chosen"][0]["content"][0]["text"])
    card = (tmp_path / "trl" / "README.md").read_text()
    assert "9 chosen/rejected pairs" in card and "path: train.jsonl" in card and "| 5 > 1 | 9 |" in card
    assert "not TRL's `DPOTrainer`" in card


@pytest.mark.parametrize("fmt", ["parquet", "hf"])
def test_parquet_and_hub_folder_store_the_frames_as_images(build_dir: Path, tmp_path: Path, fmt: str) -> None:
    target = export_pairs(build_dir, tmp_path / fmt, fmt)  # type: ignore[arg-type]
    dataset = (
        load_dataset(str(target), split="train")
        if fmt == "hf"
        else load_dataset("parquet", data_files=str(target), split="train")
    )
    row = dataset[0]
    assert len(row["images"]) == 4 and row["images"][0].size == (96, 96)
    assert [c["type"] for c in row["prompt"][0]["content"]] == ["image"] * 4 + ["text"]


def _llava_hound_video(video_folder: Path, video: str, num_frames: int = 8) -> list[np.ndarray]:
    """What LLaVA-Hound-DPO's loader does with a line's ``video`` (dpo_scripts/run_dpo.py, DPODataset with
    training_modal 'video', and LanguageBindVideoProcessor's 'frames' backend): the sorted files of
    ``os.path.join(video_folder, video)``, ``num_frames`` of them picked with ``np.linspace``, opened as RGB."""
    folder = os.path.join(video_folder, video)
    names = sorted(os.listdir(folder))
    picked = np.linspace(0, len(names) - 1, num_frames, dtype=int)
    return [np.asarray(Image.open(os.path.join(folder, names[i])).convert("RGB")) for i in picked]


def test_llava_hound_pair_file_is_what_its_loader_reads(build_dir: Path, tmp_path: Path) -> None:
    target = export_pairs(build_dir, tmp_path / "hound", "llava-hound")
    lines: list[dict[str, Any]] = [json.loads(line) for line in target.read_text().splitlines()]  # its load_jsonl
    assert target.name == "train.jsonl" and len(lines) == 9
    texts = {"id", "video", "prompt", "answer", "chosen", "rejected"}
    for line in lines:
        assert set(line) == texts | {"chosen_score", "rejected_score"}
        assert all(isinstance(line[k], str) for k in texts) and line["chosen_score"] > line["rejected_score"]
        assert "<video>" not in line["prompt"]  # the loader adds "<video>\n" itself
    images = load_dataset("parquet", data_files=str(export_pairs(build_dir, tmp_path / "trl")), split="train")
    seen = {row["frame_key"]: [np.asarray(image) for image in row["images"]] for row in images}
    for line in lines:
        assert len(os.listdir(tmp_path / "hound" / "frames" / line["video"])) == 4
        video = _llava_hound_video(tmp_path / "hound" / "frames", line["video"], num_frames=4)
        assert all(np.array_equal(a, b) for a, b in zip(video, seen[line["video"]], strict=True))  # the zoo's pixels
    assert len(_llava_hound_video(tmp_path / "hound" / "frames", lines[0]["video"])) == 8
    card = (tmp_path / "hound" / "README.md").read_text()
    assert "path: train.jsonl" in card and "LLaVA-Hound-DPO's `--video_folder`" in card


def test_llava_hound_refuses_video_path_rows(build_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="reads a video as a folder of frame images"):
        export_pairs(build_dir, tmp_path / "hound", "llava-hound", frames_as_images=False)


def test_cli_exports_frames_for_trl_by_default_and_refuses_video_paths_for_llava_hound(build_dir: Path) -> None:
    done = subprocess.run([MMAIP, "export", str(build_dir)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (build_dir / "export-trl" / "train.parquet").is_file() and not (
        build_dir / "export-trl" / "train.jsonl"
    ).exists()
    refused = subprocess.run(
        [MMAIP, "export", str(build_dir), "-f", "llava-hound", "--video-path"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode == 2 and "reads a video as a folder of frame images" in refused.stderr


def test_export_needs_a_finished_build(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"is .* a finished build"):
        export_pairs(tmp_path, tmp_path / "out")
