"""Weak-to-strong extrapolation (ExPO) and other linear combinations of whole checkpoints, on disk.

``theta_strong = theta_policy + alpha * (theta_policy - theta_anchor)`` with this project's ``alpha`` (the
ExPO alpha; 0.3–0.5 is typical, 0 returns the policy), applied tensor by tensor over safetensors files:

- sharded checkpoints are followed through ``model.safetensors.index.json`` and written with the same
  shards and index; tensors are read lazily, so memory stays near one output shard, never whole models;
- every tensor of every source is accounted for: differing tensor names or shapes are an error that names
  them; non-floating tensors must be equal in every source and are copied; each tensor keeps its dtype;
- vision towers and projectors are copied from the policy unless asked for (``include_vision``);
- everything else in the policy folder (config, processor, tokenizer files) is copied alongside.

All sources must be folders written the same way (``save_pretrained``): the names on disk are compared
with each other, never with the names a loaded model uses in memory (transformers 5 renames some on load).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch

from mmaip_core.checkpoints import MARKER, VISION_PATTERN, staged
from mmaip_core.errors import UserError
from mmaip_core.weights import combine_tensors, extrapolation_weights

__all__ = [
    "VISION_PATTERN",
    "CombineReport",
    "combine_checkpoints",
    "extrapolate",
    "scale_lora_adapter",
    "tensor_files",
]

INDEX = "model.safetensors.index.json"
SINGLE = "model.safetensors"


@dataclass
class CombineReport:
    """What a combination did: tensors combined, copied (excluded or non-floating), and the output folder."""

    out: Path
    combined: list[str] = field(default_factory=list)
    copied: list[str] = field(default_factory=list)


def tensor_files(folder: Path) -> dict[str, str]:
    """Tensor name -> safetensors file (relative to ``folder``) of a single-file or sharded checkpoint."""
    if (folder / INDEX).is_file():
        return dict(json.loads((folder / INDEX).read_text())["weight_map"])
    if (folder / SINGLE).is_file():
        from safetensors import safe_open

        with safe_open(folder / SINGLE, framework="pt") as f:
            return dict.fromkeys(f.keys(), SINGLE)
    raise UserError(f"{folder}: no {SINGLE} or {INDEX}; is it a Hugging Face checkpoint folder?")


def _check_same_tensors(folders: Mapping[str, Path], layouts: Mapping[str, dict[str, str]]) -> None:
    """Every source holds the same tensor names with the same shapes (read from headers, no data loaded)."""
    from safetensors import safe_open

    names = list(layouts)
    first = set(layouts[names[0]])
    for name in names[1:]:
        other = set(layouts[name])
        if other != first:
            missing, extra = sorted(first - other)[:5], sorted(other - first)[:5]
            raise UserError(
                f"checkpoints '{names[0]}' and '{name}' hold different tensors: missing in '{name}': {missing}; "
                f"only in '{name}': {extra}"
            )
    shapes: dict[str, dict[str, list[int]]] = {}
    for source, layout in layouts.items():
        for shard in set(layout.values()):
            with safe_open(folders[source] / shard, framework="pt") as f:
                for tensor in (t for t, s in layout.items() if s == shard):
                    shapes.setdefault(tensor, {})[source] = list(f.get_slice(tensor).get_shape())
    for tensor, by_source in sorted(shapes.items()):
        if len({tuple(shape) for shape in by_source.values()}) > 1:
            raise UserError(f"tensor {tensor} has different shapes: {by_source}")


def combine_checkpoints(
    weights: Mapping[str, float],
    sources: Mapping[str, str | Path],
    out: str | Path,
    *,
    copy_from: str,
    include: Callable[[str], bool] = lambda name: True,
) -> CombineReport:
    """Write ``sum(weights[s] * sources[s])`` into ``out``, tensor by tensor, in the layout of ``copy_from``.

    Tensors ``include`` rejects, and non-floating tensors, are copied from ``copy_from`` (and must be equal
    in every source when they are non-floating and included). ``out`` is written to a temporary folder and
    renamed when complete, with a completion marker (:mod:`mmaip_core.checkpoints`).
    """
    from safetensors import safe_open
    from safetensors.torch import save_file

    folders = {name: Path(path) for name, path in sources.items()}
    if copy_from not in folders or not set(weights) <= set(folders):
        raise UserError(f"weights {sorted(weights)} and copy_from '{copy_from}' must name sources {sorted(folders)}")
    layouts = {name: tensor_files(folder) for name, folder in folders.items()}
    _check_same_tensors(folders, layouts)
    layout = layouts[copy_from]
    out = Path(out)
    for name, folder in folders.items():
        a, b = out.resolve(), folder.resolve()
        if a == b or a in b.parents or b in a.parents:
            raise UserError(f"the output {out} must not be, contain or sit inside the input '{name}' ({folder})")
    report = CombineReport(out=out)
    with staged(out, {"weights": dict(weights), "sources": {k: str(v) for k, v in folders.items()}}) as tmp:
        for item in folders[copy_from].iterdir():  # config, processor, tokenizer, ... (not the weights)
            if item.is_file() and not item.name.endswith(".safetensors") and item.name not in (INDEX, MARKER):
                shutil.copy2(item, tmp / item.name)
        for shard in sorted(set(layout.values())):
            tensors: dict[str, torch.Tensor] = {}
            with safe_open(folders[copy_from] / shard, framework="pt") as base:
                metadata = base.metadata()
                for name in (n for n, s in layout.items() if s == shard):
                    tensor = base.get_tensor(name)
                    if not include(name):
                        tensors[name] = tensor
                        report.copied.append(name)
                        continue
                    parts = {}
                    for source in weights:
                        with safe_open(folders[source] / layouts[source][name], framework="pt") as f:
                            parts[source] = f.get_tensor(name)
                    try:  # non-floating tensors must be equal everywhere and are copied
                        tensors[name] = combine_tensors(weights, parts).contiguous()
                    except ValueError as exc:
                        raise UserError(f"tensor {name}: {exc}") from None
                    (report.combined if tensor.is_floating_point() else report.copied).append(name)
            save_file(tensors, str(tmp / shard), metadata=metadata or {"format": "pt"})
        if (folders[copy_from] / INDEX).is_file():
            shutil.copy2(folders[copy_from] / INDEX, tmp / INDEX)
    return report


def extrapolate(
    policy: str | Path, anchor: str | Path, alpha: float, out: str | Path, *, include_vision: bool = False
) -> CombineReport:
    """ExPO: ``policy + alpha * (policy - anchor)`` into ``out`` (vision tower and projector copied from the
    policy unless ``include_vision``)."""
    weights = extrapolation_weights(alpha, anchor="anchor")
    include = (lambda name: True) if include_vision else (lambda name: not VISION_PATTERN.search(name))
    return combine_checkpoints(weights, {"policy": policy, "anchor": anchor}, out, copy_from="policy", include=include)


def scale_lora_adapter(adapter: str | Path, alpha: float, out: str | Path) -> Path:
    """ExPO for a LoRA adapter trained on top of its anchor: every ``lora_B`` scaled by ``1 + alpha``, so that
    ``anchor + scaled delta = policy + alpha * (policy - anchor)`` exactly, without merging."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    if alpha < 0:
        raise UserError(f"alpha must be >= 0, got {alpha}")
    adapter, out = Path(adapter), Path(out)
    if out.resolve() == adapter.resolve():
        raise UserError(f"the output {out} must not be the adapter folder itself")
    weights_file = adapter / "adapter_model.safetensors"
    if not weights_file.is_file():
        raise UserError(f"{adapter}: no adapter_model.safetensors; is it a PEFT LoRA adapter folder?")
    out.mkdir(parents=True, exist_ok=True)
    for item in adapter.iterdir():
        if item.is_file() and item.name != weights_file.name:
            shutil.copy2(item, out / item.name)
    with safe_open(weights_file, framework="pt") as f:
        names, metadata = f.keys(), f.metadata()
        tensors = {name: f.get_tensor(name) * (1 + alpha) if ".lora_B." in name else f.get_tensor(name) for name in names}
    if not any(".lora_B." in name for name in tensors):
        raise UserError(f"{weights_file}: no lora_B tensors to scale")
    save_file(tensors, str(out / weights_file.name), metadata=metadata or {"format": "pt"})
    return out
