"""Weak-to-strong extrapolation (ExPO) and other linear combinations of whole checkpoints, on disk.

``theta_strong = theta_policy + alpha * (theta_policy - theta_anchor)`` with this project's ``alpha`` (the
ExPO alpha; 0.3–0.5 is typical, 0 returns the policy), applied tensor by tensor over safetensors files:

- sharded checkpoints are followed through ``model.safetensors.index.json`` and written with the same
  shards and index; tensors are read lazily, so memory stays near one output shard, never whole models;
- every tensor of every source is accounted for: differing tensor names or shapes are an error that names
  them; non-floating tensors must be equal in every source and are copied; each tensor keeps its dtype;
- vision towers and projectors are copied from the policy unless asked for (``include_vision``);
- everything else in the policy folder (config, processor, tokenizer files) is copied alongside;
- every combined tensor must be finite: inf or NaN (an alpha too large for float16/bfloat16, or a source that
  already holds them) is refused, naming the tensor, its file and the alpha, and nothing is written; so is a
  weight beyond float32, in which tensors are combined (an alpha such as 1e300);
- a missing, truncated or damaged safetensors file or index is one :class:`~mmaip_core.errors.ModelError`
  naming the file.

The output is complete or absent (:mod:`mmaip_core.store.checkpoints`): written to a temporary folder, marked and
renamed only when every tensor is there.

All sources must be folders written the same way (``save_pretrained``): the names on disk are compared
with each other, never with the names a loaded model uses in memory (transformers 5 renames some on load).
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from mmaip_core.errors import ModelError, UserError
from mmaip_core.store.checkpoints import MARKER, VISION_PATTERN, staged
from mmaip_core.train.weights import combine_tensors, extrapolation_weights

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
LORA_WEIGHTS = "adapter_model.safetensors"


@dataclass
class CombineReport:
    """What a combination did: tensors combined, copied (excluded or non-floating), and the output folder."""

    out: Path
    combined: list[str] = field(default_factory=list)
    copied: list[str] = field(default_factory=list)


@contextmanager
def _reading(path: Path) -> Iterator[Any]:
    """``safe_open(path)``; a missing, truncated or damaged file, also while reading, is one ModelError naming it."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(path, framework="pt") as f:
            yield f
    except (SafetensorError, OSError) as exc:
        raise ModelError(str(path), f"unreadable safetensors file ({exc})") from exc


def _read_index(index: Path) -> dict[str, str]:
    """The ``weight_map`` (tensor name -> shard file in the same folder) of a sharded checkpoint's index."""
    try:
        weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
    except KeyError:
        raise ModelError(str(index), "not a safetensors index (no weight_map)") from None
    except (OSError, ValueError, TypeError) as exc:  # ValueError: not JSON, or not UTF-8
        raise ModelError(str(index), f"not a safetensors index ({exc})") from exc
    files = weight_map.values() if isinstance(weight_map, dict) else None
    if files is None or not all(isinstance(f, str) and Path(f).name == f for f in files):
        raise ModelError(str(index), "not a safetensors index (weight_map must map tensor names to file names)")
    return dict(weight_map)


def tensor_files(folder: Path) -> dict[str, str]:
    """Tensor name -> safetensors file (relative to ``folder``) of a single-file or sharded checkpoint."""
    if (folder / INDEX).is_file():
        return _read_index(folder / INDEX)
    if (folder / SINGLE).is_file():
        with _reading(folder / SINGLE) as f:
            return dict.fromkeys(f.keys(), SINGLE)
    raise UserError(f"{folder}: no {SINGLE} or {INDEX}; is it a Hugging Face checkpoint folder?")


def _check_same_tensors(folders: Mapping[str, Path], layouts: Mapping[str, dict[str, str]]) -> None:
    """Every source holds the same tensor names with the same shapes (read from headers, no data loaded)."""
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
            with _reading(folders[source] / shard) as f:
                for tensor in (t for t, s in layout.items() if s == shard):
                    shapes.setdefault(tensor, {})[source] = list(f.get_slice(tensor).get_shape())
    for tensor, by_source in sorted(shapes.items()):
        if len({tuple(shape) for shape in by_source.values()}) > 1:
            raise UserError(f"tensor {tensor} has different shapes: {by_source}")


def _check_output(out: Path, inputs: Mapping[str, Path]) -> None:
    """``out`` is replaced as a whole, so it must not be, contain or sit inside any input folder."""
    for name, folder in inputs.items():
        a, b = out.resolve(), folder.resolve()
        if a == b or a in b.parents or b in a.parents:
            raise UserError(f"the output {out} must not be, contain or sit inside the input '{name}' ({folder})")


def _check_alpha(alpha: float) -> None:
    if not math.isfinite(alpha) or alpha < 0:
        raise UserError(f"alpha must be a finite number >= 0, got {alpha}")


def _check_finite(result: torch.Tensor, parts: Mapping[Path, torch.Tensor], where: str, label: str, out: Path) -> None:
    """Refuse a combined tensor holding inf or NaN, naming the source file that holds them, or the overflow.

    ``parts`` are the tensors combined, by the file each was read from."""
    if not result.is_floating_point() or bool(torch.isfinite(result).all()):
        return
    holders = [file for file, tensor in parts.items() if not bool(torch.isfinite(tensor).all())]
    dtype = str(result.dtype).removeprefix("torch.")
    cause = f"{holders[0]} already holds inf or NaN there" if holders else f"the result overflows {dtype}"
    raise UserError(f"{label} gives inf or NaN in {where} ({cause}); nothing was written to {out}")


def _check_weights(weights: Mapping[str, float], label: str, out: Path) -> None:
    """Every weight fits float32, in which tensors are combined (torch refuses a larger scalar with a bare
    RuntimeError); a weight beyond it could only overflow every tensor it multiplies."""
    limit = torch.finfo(torch.float32).max
    for source, weight in weights.items():
        if not math.isfinite(weight) or abs(weight) > limit:
            raise UserError(
                f"{label} gives the weight {weight:g} to '{source}', which overflows float32 (at most {limit:.3g} "
                f"either way), in which the tensors are combined; nothing was written to {out}"
            )


def _copy_side_files(source: Path, target: Path) -> None:
    """Copy config, processor, tokenizer, ... files (not the weights, the index or a completion marker)."""
    for item in source.iterdir():
        if item.is_file() and not item.name.endswith(".safetensors") and item.name not in (INDEX, MARKER):
            shutil.copy2(item, target / item.name)


@dataclass(frozen=True)
class _Combination:
    """``sum(weights[s] * sources[s])`` over checkpoint folders whose tensor layouts are known and checked."""

    weights: Mapping[str, float]
    folders: Mapping[str, Path]
    layouts: Mapping[str, dict[str, str]]
    copy_from: str
    include: Callable[[str], bool]
    label: str
    out: Path

    def shard(self, shard: str, report: CombineReport) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
        """Every tensor of one shard of ``copy_from``, combined or copied, and the shard's metadata."""
        tensors: dict[str, torch.Tensor] = {}
        path = self.folders[self.copy_from] / shard
        with _reading(path) as base:
            metadata = base.metadata() or {"format": "pt"}
            for name in (n for n, s in self.layouts[self.copy_from].items() if s == shard):
                tensor = base.get_tensor(name)
                if not self.include(name):
                    tensors[name] = tensor
                    report.copied.append(name)
                    continue
                tensors[name] = self.tensor(name, f"tensor {name} of {path}")
                (report.combined if tensor.is_floating_point() else report.copied).append(name)
        return tensors, metadata

    def tensor(self, name: str, where: str) -> torch.Tensor:
        """One combined tensor (non-floating tensors must be equal everywhere and are copied), finite."""
        files = {source: self.folders[source] / self.layouts[source][name] for source in self.weights}
        parts = {}
        for source, file in files.items():
            with _reading(file) as f:
                parts[source] = f.get_tensor(name)
        try:
            result = combine_tensors(self.weights, parts).contiguous()
        except ValueError as exc:
            raise UserError(f"tensor {name}: {exc}") from None
        _check_finite(result, {files[s]: parts[s] for s in parts}, where, self.label, self.out)
        return result


def combine_checkpoints(
    weights: Mapping[str, float],
    sources: Mapping[str, str | Path],
    out: str | Path,
    *,
    copy_from: str,
    include: Callable[[str], bool] = lambda name: True,
    label: str | None = None,
) -> CombineReport:
    """Write ``sum(weights[s] * sources[s])`` into ``out``, tensor by tensor, in the layout of ``copy_from``.

    Tensors ``include`` rejects, and non-floating tensors, are copied from ``copy_from`` (and must be equal
    in every source when they are non-floating and included). A combined tensor with inf or NaN is refused
    (a UserError that names it as ``label``, default: the weights). ``out`` is written to a temporary folder
    and renamed when complete, with a completion marker (:mod:`mmaip_core.store.checkpoints`); on any error nothing
    is written and an older ``out`` stays as it was.
    """
    from safetensors.torch import save_file

    folders, out = {name: Path(path) for name, path in sources.items()}, Path(out)
    if copy_from not in folders or not set(weights) <= set(folders):
        raise UserError(f"weights {sorted(weights)} and copy_from '{copy_from}' must name sources {sorted(folders)}")
    layouts = {name: tensor_files(folder) for name, folder in folders.items()}
    _check_same_tensors(folders, layouts)
    _check_output(out, folders)
    label = label or f"weights {dict(weights)}"
    _check_weights(weights, label, out)
    combination = _Combination(weights, folders, layouts, copy_from, include, label, out)
    report = CombineReport(out=out)
    with staged(out, {"weights": dict(weights), "sources": {k: str(v) for k, v in folders.items()}}) as tmp:
        _copy_side_files(folders[copy_from], tmp)
        for shard in sorted(set(layouts[copy_from].values())):
            tensors, metadata = combination.shard(shard, report)
            save_file(tensors, str(tmp / shard), metadata=metadata)
        if (folders[copy_from] / INDEX).is_file():
            shutil.copy2(folders[copy_from] / INDEX, tmp / INDEX)
    return report


def extrapolate(
    policy: str | Path, anchor: str | Path, alpha: float, out: str | Path, *, include_vision: bool = False
) -> CombineReport:
    """ExPO: ``policy + alpha * (policy - anchor)`` into ``out`` (vision tower and projector copied from the
    policy unless ``include_vision``)."""
    _check_alpha(alpha)
    weights = extrapolation_weights(alpha, anchor="anchor")
    include = (lambda name: True) if include_vision else (lambda name: not VISION_PATTERN.search(name))
    sources = {"policy": policy, "anchor": anchor}
    return combine_checkpoints(weights, sources, out, copy_from="policy", include=include, label=f"alpha {alpha:g}")


def scale_lora_adapter(adapter: str | Path, alpha: float, out: str | Path) -> Path:
    """ExPO for a LoRA adapter trained on top of its anchor: every ``lora_B`` scaled by ``1 + alpha``, so that
    ``anchor + scaled delta = policy + alpha * (policy - anchor)`` exactly, without merging. ``out`` is
    complete or absent, like :func:`combine_checkpoints`'s."""
    from safetensors.torch import save_file

    _check_alpha(alpha)
    adapter, out = Path(adapter), Path(out)
    _check_output(out, {"adapter": adapter})
    weights_file = adapter / LORA_WEIGHTS
    if not weights_file.is_file():
        raise UserError(f"{adapter}: no {LORA_WEIGHTS}; is it a PEFT LoRA adapter folder?")
    with _reading(weights_file) as f:
        metadata = f.metadata() or {"format": "pt"}
        names = f.keys()
        tensors = {name: f.get_tensor(name) for name in names}
    scaled = [name for name in tensors if ".lora_B." in name]
    if not scaled:
        raise UserError(f"{weights_file}: no lora_B tensors to scale")
    for name in scaled:
        result = tensors[name] * (1 + alpha)
        where = f"tensor {name} of {weights_file}"
        _check_finite(result, {weights_file: tensors[name]}, where, f"alpha {alpha:g}", out)
        tensors[name] = result
    with staged(out, {"alpha": alpha, "adapter": str(adapter)}) as tmp:
        _copy_side_files(adapter, tmp)
        save_file(tensors, str(tmp / LORA_WEIGHTS), metadata=metadata)
    return out
