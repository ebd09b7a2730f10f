"""Vision features of a frozen tower, computed once per video and reused.

transformers 5 models accept the vision encoder's outputs in place of pixels
(``model(..., mm_encoder_outputs={"video": outputs})``). The encoder outputs of one video are captured by
running the model's own multimodal path once on the prompt (the model returns them as ``video_outputs``),
stored on disk, and combined for a batch the way the model would have produced them for that batch:
tensors are concatenated along their first dimension, tuples (per-video splits) are chained, and lists
(per-layer features, e.g. Qwen3-VL's deepstack) are combined element by element. The equivalence with the
pixel path is tested for every bundled model family.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

__all__ = ["FeatureStore", "combine_outputs", "encode_video", "weights_hash"]

DROPPED = ("last_hidden_state", "hidden_states", "attentions")
"""Encoder output fields the language model never reads; not stored."""


def weights_hash(model: torch.nn.Module, include: Callable[[str], bool]) -> str:
    """sha256 over the names and bytes of the parameters and buffers ``include`` selects."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        if include(name):
            digest.update(name.encode())
            digest.update(tensor.detach().to("cpu").contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def encode_video(
    model: Any, prompt_ids: Sequence[int], inputs: Mapping[str, torch.Tensor], token_type_id: int | None
) -> Any:
    """Encoder outputs of one video: the model's own multimodal path run once on a prompt that shows it.
    ``token_type_id``: the video token id for models that need ``mm_token_type_ids`` (Qwen), else None."""
    param = next(model.parameters())
    ids = torch.tensor([list(prompt_ids)], device=param.device)
    tensors = {
        k: v.to(param.device, param.dtype) if v.is_floating_point() and k.startswith("pixel") else v.to(param.device)
        for k, v in inputs.items()
    }
    if token_type_id is not None:
        tensors["mm_token_type_ids"] = (ids == token_type_id).long() * 2
    with torch.no_grad():
        return model.base_model(
            input_ids=ids, attention_mask=torch.ones_like(ids), **tensors, use_cache=False
        ).video_outputs


def _flatten(value: Any, prefix: str, out: dict[str, torch.Tensor]) -> None:
    if torch.is_tensor(value):
        out[prefix] = value.detach().to("cpu").contiguous()
    elif isinstance(value, tuple | list):
        tag = "T" if isinstance(value, tuple) else "L"
        for i, item in enumerate(value):
            _flatten(item, f"{prefix}.{tag}{i}", out)
    elif value is not None:
        raise TypeError(f"cannot store encoder output field {prefix} of type {type(value).__name__}")


def _unflatten(tensors: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    root: dict[str, Any] = {}
    for key, tensor in tensors.items():
        node = root
        *path, last = key.split(".")
        for part in path:
            node = node.setdefault(part, {})
        node[last] = tensor

    def build(node: Any) -> Any:
        if torch.is_tensor(node):
            return node
        items = [build(node[k]) for k in sorted(node, key=lambda k: int(k[1:]))]
        return tuple(items) if next(iter(node)).startswith("T") else items

    return {field: build(node) for field, node in root.items()}


def combine_outputs(per_video: Sequence[Any]) -> Any:
    """Encoder outputs of several single-video calls, combined as one batched call returns them."""
    first = per_video[0]
    if torch.is_tensor(first):
        return torch.cat(list(per_video), dim=0)
    if isinstance(first, tuple):
        return tuple(item for value in per_video for item in value)
    if isinstance(first, list):
        return [combine_outputs(list(layer)) for layer in zip(*per_video, strict=True)]
    raise TypeError(f"cannot combine encoder outputs of type {type(first).__name__}")


class FeatureStore:
    """Encoder outputs by video key, in ``folder`` (one safetensors file each), read from their file whenever they
    are asked for (a small read from the page cache): none are kept in memory, however many videos there are."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.output_class: type[Any] | None = None

    def path(self, key: str) -> Path:
        return self.folder / f"{key}.safetensors"

    def has(self, key: str) -> bool:
        return self.path(key).is_file()

    def put(self, key: str, outputs: Any) -> None:
        """Store the encoder outputs of one video (a transformers ModelOutput)."""
        from safetensors.torch import save_file

        self.output_class = type(outputs)
        flat: dict[str, torch.Tensor] = {}
        for field, value in outputs.items():
            if field not in DROPPED:
                _flatten(value, field, flat)
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.path(key).with_suffix(".tmp")
        save_file(flat, str(tmp), metadata={"class": f"{type(outputs).__module__}:{type(outputs).__qualname__}"})
        tmp.replace(self.path(key))

    def get(self, key: str) -> dict[str, Any]:
        """The encoder outputs of one video, read from its file."""
        from safetensors import safe_open

        with safe_open(self.path(key), framework="pt") as f:
            if self.output_class is None:
                import importlib

                module, _, name = (f.metadata() or {})["class"].partition(":")
                self.output_class = getattr(importlib.import_module(module), name)
            return _unflatten({k: f.get_tensor(k) for k in f.keys()})  # noqa: SIM118

    def batch(self, keys: Sequence[str], device: torch.device | str, dtype: torch.dtype) -> Any:
        """The encoder outputs of ``keys`` (one per sequence, in batch order) as the model expects them; each
        video is read once."""
        read = {k: self.get(k) for k in dict.fromkeys(keys)}
        fields = [read[k] for k in keys]
        combined = {name: _to(combine_outputs([f[name] for f in fields]), device, dtype) for name in fields[0]}
        assert self.output_class is not None
        return self.output_class(**combined)


def _to(value: Any, device: torch.device | str, dtype: torch.dtype) -> Any:
    if torch.is_tensor(value):
        return value.to(device=device, dtype=dtype if value.is_floating_point() else value.dtype)
    if isinstance(value, tuple):
        return tuple(_to(v, device, dtype) for v in value)
    return [_to(v, device, dtype) for v in value]
