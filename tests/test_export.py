from __future__ import annotations

from pathlib import Path

import pytest
import scripted_plugins
import yaml
from datasets import load_dataset
from transformers import AutoProcessor
from trl.data_utils import is_conversational, maybe_apply_chat_template

from mmaip_core import ConfigError, PluginManager
from mmaip_core.build import run_build
from mmaip_core.config import load_config
from mmaip_core.export import export_pairs
from mmaip_plugins.zoo.tiny import build_tiny_model


@pytest.fixture
def build_dir(manager: PluginManager, demo_dir: Path, tmp_path: Path) -> Path:
    manager.register(scripted_plugins, "scripted")
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({
        "samples": {"path": str(demo_dir / "qa.jsonl")},
        "frames": {"num_frames": 4, "cache_dir": str(tmp_path / "frames")},
        "zoo": [{"name": "good", "generator": "scripted"},
                {"name": "bad", "generator": "scripted", "model": "bad", "answers": ["no idea"]}],
        "scorer": {"name": "parsing-judge"},
    }))
    out = tmp_path / "run"
    run_build(load_config(config, manager), out, manager)
    return out


def test_trl_jsonl_loads_and_goes_through_trl_data_path(build_dir: Path, tmp_path: Path, tiny_models: Path) -> None:
    target = export_pairs(build_dir, tmp_path / "trl", "trl")
    dataset = load_dataset("json", data_files=str(target), split="train")
    assert len(dataset) == 9
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


@pytest.mark.parametrize("fmt", ["parquet", "hf"])
def test_parquet_and_hub_folder_with_frames_as_images(build_dir: Path, tmp_path: Path, fmt: str) -> None:
    target = export_pairs(build_dir, tmp_path / fmt, fmt, frames_as_images=True)  # type: ignore[arg-type]
    dataset = load_dataset(str(target), split="train") if fmt == "hf" else load_dataset("parquet", data_files=str(target), split="train")
    row = dataset[0]
    assert len(row["images"]) == 4 and row["images"][0].size == (96, 96)
    assert [c["type"] for c in row["prompt"][0]["content"]] == ["image"] * 4 + ["text"]


def test_export_needs_a_finished_build(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"is .* a finished build"):
        export_pairs(tmp_path, tmp_path / "out")
