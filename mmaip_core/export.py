"""Export a finished build's pairs as a dataset that TRL's DPO trainer and ``datasets`` read directly.

Rows are in TRL's conversational preference format::

    prompt:   [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": <question>}]}]
    chosen:   [{"role": "assistant", "content": [{"type": "text", "text": <answer>}]}]
    rejected: [{"role": "assistant", "content": [{"type": "text", "text": <answer>}]}]

with the video's path (``video``), the frame key (``frame_key``) and every pair field (scores, models,
strategy, label source) beside them. ``frames_as_images`` also stores the exact frames the zoo saw as an
``images`` column (and, in the prompt, one ``{"type": "image"}`` per frame instead of the video), so
image-based trainers can use them. A dataset card (README.md) records the provenance.

Formats: ``trl`` (``train.jsonl``), ``parquet`` (``train.parquet``), ``hf`` (a Hub-style folder,
``data/train-00000-of-00001.parquet`` + card, for ``load_dataset(folder)`` and ``push_to_hub``).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any, Literal

from mmaip_core.build import require_build_files
from mmaip_core.errors import ConfigError
from mmaip_core.frames import FrameCache, default_cache_dir
from mmaip_core.jsonl import read_jsonl
from mmaip_core.records import FrameManifest, PreferencePair

__all__ = ["ExportFormat", "export_pairs"]

ExportFormat = Literal["trl", "parquet", "hf"]


def _row(pair: PreferencePair, images: list[Any] | None) -> dict[str, Any]:
    visual = [{"type": "image"} for _ in images] if images is not None else [{"type": "video"}]
    row: dict[str, Any] = {
        "prompt": [{"role": "user", "content": [*visual, {"type": "text", "text": pair.prompt}]}],
        "chosen": [{"role": "assistant", "content": [{"type": "text", "text": pair.chosen}]}],
        "rejected": [{"role": "assistant", "content": [{"type": "text", "text": pair.rejected}]}],
        "video": pair.video,
        "frame_key": pair.frames,
    }
    row.update(pair.model_dump(mode="json", exclude={"prompt", "chosen", "rejected", "video", "frames"}))
    if images is not None:
        row["images"] = images
    return row


def _frames_by_key(build: Path, frame_keys: set[str]) -> dict[str, list[Any]]:
    """The stored frames (PIL images) of each frame key, read back from the frame cache."""
    from PIL import Image

    from mmaip_core.frames import FrameLoader, FrameSettings

    manifests = {m.key: m for m in read_jsonl(build / "frames.jsonl", FrameManifest)}
    resolved = _json_file(build / "run-manifest.json")["config"]["frames"]
    settings = FrameSettings.model_validate(resolved)
    cache = FrameCache(settings.cache_dir or default_cache_dir())
    loader = FrameLoader(settings.model_copy(update={"cache_dir": cache.root}))
    images: dict[str, list[Any]] = {}
    for key in frame_keys:
        if key not in manifests:
            raise ConfigError([f"{build / 'frames.jsonl'}: no manifest for frame key {key[:12]}; rerun the build"])
        manifest = manifests[key]
        params = dict(manifest.sampler_params)
        frames = loader.load(manifest.video, manifest.sampler, params)
        if frames.manifest.key != key:
            raise ConfigError([f"the frames of {manifest.video} changed since the build (frame key {key[:12]})"])
        images[key] = [Image.fromarray(frame) for frame in frames.array]
    return images


def _json_file(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError([f"not valid JSON: {exc}"], source=str(path)) from None


def _card(build: Path, pairs: list[PreferencePair], data_file: str, frames_as_images: bool) -> str:
    manifest = _json_file(build / "run-manifest.json")
    summary = _json_file(build / "summary.json")
    config = manifest["config"]
    scores = Counter(f"{p.chosen_score:g} > {p.rejected_score:g}" for p in pairs)
    models = Counter(p.chosen_model for p in pairs)
    lines = [
        "---",
        "tags: [mmaip, preference, dpo, video]",
        "configs:",
        "- config_name: default",
        "  data_files:",
        "  - split: train",
        f"    path: {data_file}",
        "---",
        "",
        "# Video preference pairs (mmaip build)",
        "",
        f"{len(pairs)} chosen/rejected pairs built by mmaip {manifest['mmaip_version']} on {manifest['created_at'][:10]}: "
        "answers from a zoo of video models, scored by an external scoring function, paired by a pair strategy. "
        "Rows are in TRL's conversational preference format"
        + (" with the frames stored as images." if frames_as_images else "; `video` holds the video path."),
        "",
        "## Provenance",
        "",
        f"- Frames: `{json.dumps(config['frames'], sort_keys=True)}`",
        f"- Scorer: `{json.dumps(config.get('scorer'), sort_keys=True)}`",
        f"- Pair strategy: `{json.dumps(config.get('pairs'), sort_keys=True)}`",
        f"- Label sources: {', '.join(sorted({p.label_source for p in pairs})) or '(none)'}",
        "- Zoo:",
        *[f"  - `{z['name']}`: `{json.dumps({k: v for k, v in z.items() if k != 'name'}, sort_keys=True)}`" for z in config["zoo"]],
        "",
        "## Counts",
        "",
        f"- Questions: {summary['samples']} ({summary['row_errors']} bad rows, {summary['video_errors']} unusable videos)",
        f"- Responses per model: `{json.dumps(summary['responses'], sort_keys=True)}`",
        f"- Judgements: `{json.dumps(summary['judgements'], sort_keys=True)}`",
        f"- Questions without a pair: `{json.dumps(summary['skipped'], sort_keys=True)}`",
        f"- API cost of the build: ${summary['cost_usd']:.4f}",
        "",
        "| chosen > rejected score | pairs |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in sorted(scores.items())],
        "",
        "| chosen model | pairs |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in sorted(models.items())],
        "",
        f"Versions: `{json.dumps(manifest['packages'], sort_keys=True)}`",
        "",
    ]
    return "\n".join(lines)


def export_pairs(build: str | Path, out: str | Path, fmt: ExportFormat = "trl", frames_as_images: bool = False) -> Path:
    """Write the pairs of ``build`` into ``out`` in ``fmt``; returns the data file (or folder for hf)."""
    from datasets import Dataset, disable_progress_bars

    disable_progress_bars()
    build, out = Path(build), Path(out)
    require_build_files(build, "pairs.jsonl", "frames.jsonl", "run-manifest.json", "summary.json")
    pairs = list(read_jsonl(build / "pairs.jsonl", PreferencePair))
    if not pairs:
        raise ConfigError([f"{build / 'pairs.jsonl'}: no pairs to export"])
    images = _frames_by_key(build, {p.frames for p in pairs}) if frames_as_images else {}
    rows = [_row(p, images[p.frames] if frames_as_images else None) for p in pairs]
    jsonl = fmt == "trl" and not frames_as_images  # images need parquet
    data_file = "data/train-00000-of-00001.parquet" if fmt == "hf" else ("train.jsonl" if jsonl else "train.parquet")
    target = out / data_file
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    if jsonl:
        tmp.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    else:
        dataset = Dataset.from_list(rows)
        if frames_as_images and rows:
            from datasets import Image as ImageFeature
            from datasets import List

            dataset = dataset.cast_column("images", List(ImageFeature()))
        dataset.to_parquet(str(tmp))
    tmp.replace(target)
    (out / "README.md").write_text(_card(build, pairs, data_file, frames_as_images))
    return out if fmt == "hf" else target
