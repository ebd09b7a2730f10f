"""The pieces of the run configs the miniature writes into ``DIR/configs/`` (each an ordinary mmaip config)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from mmaip_core.store.files import write_text_atomic

__all__ = ["GREEDY", "frames_section", "models_section", "write_config"]

GREEDY = {"temperature": 0, "max_new_tokens": 8}
"""How every model answers in an evaluation."""


def write_config(path: Path, config: dict[str, Any]) -> Path:
    """``config`` as YAML in ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, yaml.safe_dump(config, sort_keys=False))
    return path


def frames_section(out: Path, num_frames: int) -> dict[str, Any]:
    """Uniform frames, cached in ``out/cache/frames``: the same for every model, scorer and trainer."""
    return {"sampler": "uniform", "num_frames": num_frames, "cache_dir": str(out / "cache" / "frames")}


def models_section(models: dict[str, Path]) -> list[dict[str, Any]]:
    """Greedy answers of every model, as an evaluation config names them."""
    return [
        {"name": name, "generator": "hf", "model": str(folder), "batch_size": 32, "params": GREEDY}
        for name, folder in models.items()
    ]
