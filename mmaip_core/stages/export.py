"""Export a finished build's pairs as files that other training tools read as they are.

``trl``, ``parquet`` and ``hf`` rows are in TRL's conversational preference format::

    prompt:   [{"role": "user", "content": [{"type": "image"} x N, {"type": "text", "text": <prompt>}]}]
    chosen:   [{"role": "assistant", "content": [{"type": "text", "text": <answer>}]}]
    rejected: [{"role": "assistant", "content": [{"type": "text", "text": <answer>}]}]
    images:   the N frames the zoo saw, read back from the frame cache

with the video's path (``video``), the frame key (``frame_key``) and every pair field (scores, models,
strategy, label source) beside them. TRL 1.16's ``DPOTrainer`` has no video collator (its vision path,
``DataCollatorForVisionPreference``, passes ``images`` only), so the frames go in as images by default and
the images need parquet. ``frames_as_images=False`` (``--video-path``) writes one ``{"type": "video"}``
part and no ``images`` instead: for trainers with video support, not TRL's ``DPOTrainer``.

Formats:

- ``trl``: ``train.parquet`` (``train.jsonl`` with ``frames_as_images=False``);
- ``parquet``: ``train.parquet``;
- ``hf``: a Hub-style folder, ``data/train-00000-of-00001.parquet``, for ``load_dataset(folder)`` and
  ``push_to_hub``;
- ``llava-hound``: LLaVA-Hound-DPO's pair file ``train.jsonl``, one line per pair with ``id``, ``video``,
  ``prompt``, ``answer``, ``chosen``, ``rejected``, ``chosen_score``, ``rejected_score`` (the fields of its
  ``sft_dpo_17k.jsonl``; ``llava_hound_dpo/dpo_scripts/run_dpo.py`` reads ``prompt``, ``chosen``, ``rejected``
  and ``video``). ``video`` names a folder of ``frames/`` holding the frames the zoo saw as PNG files: that
  loader reads a video as a folder of frame images under its ``--video_folder`` (its
  ``LanguageBindVideoProcessor`` forces ``video_decode_backend='frames'``: the folder's files sorted by name,
  8 picked with ``np.linspace``).

Every export has a dataset card (README.md) with the provenance and the paper to cite; every file is written
atomically. :mod:`mmaip_core.stages.publish` uploads an export, card included, to the Hub; ``mmaip train`` reads
every format back (:mod:`mmaip_core.train.pair_rows`).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any, Literal

from mmaip_core.errors import ConfigError
from mmaip_core.frames import FrameCache, default_cache_dir
from mmaip_core.records import FrameManifest, PreferencePair
from mmaip_core.stages.build import require_build_files
from mmaip_core.stages.cards import CITATION, frame_policy
from mmaip_core.store import layout
from mmaip_core.store.files import atomic_file, atomic_text, read_json, write_text_atomic
from mmaip_core.store.jsonl import read_jsonl

__all__ = ["FRAMES_FOLDER", "ExportFormat", "export_pairs"]

ExportFormat = Literal["trl", "parquet", "hf", "llava-hound"]
FRAMES_FOLDER = "frames"
"""Folder of a ``llava-hound`` export holding one folder of frame images per frame key (its ``--video_folder``)."""


def _row(pair: PreferencePair, images: list[Any] | None) -> dict[str, Any]:
    """A row in TRL's conversational preference format, with the frames as ``images`` when given."""
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


def _llava_hound_row(pair: PreferencePair) -> dict[str, Any]:
    """A line of LLaVA-Hound-DPO's pair file. Its loader prepends ``<video>\\n`` to ``prompt`` itself and reads
    ``video`` as a folder under ``--video_folder``; ``answer`` (the reference answer, "" when the sample has none)
    is read by LLaVA-NeXT's ``train_dpo.py``, which loads the same files."""
    return {
        "id": pair.id,
        "video": pair.frames,
        "prompt": pair.prompt,
        "answer": pair.answer or "",
        "chosen": pair.chosen,
        "rejected": pair.rejected,
        "chosen_score": pair.chosen_score,
        "rejected_score": pair.rejected_score,
    }


def _frames_by_key(build: Path, frame_keys: set[str]) -> dict[str, list[Any]]:
    """The stored frames (PIL images) of each frame key, read back from the frame cache."""
    from PIL import Image

    from mmaip_core.frames import FrameLoader, FrameSettings

    manifests = {m.key: m for m in read_jsonl(build / layout.FRAMES, FrameManifest)}
    settings = FrameSettings.model_validate(read_json(build / layout.RUN_MANIFEST)["config"]["frames"])
    cache = FrameCache(settings.cache_dir or default_cache_dir())
    loader = FrameLoader(settings.model_copy(update={"cache_dir": cache.root}))
    images: dict[str, list[Any]] = {}
    for key in frame_keys:
        if key not in manifests:
            raise ConfigError([f"{build / 'frames.jsonl'}: no manifest for frame key {key[:12]}; rerun the build"])
        manifest = manifests[key]
        frames = loader.load(manifest.video, manifest.sampler, dict(manifest.sampler_params))
        if frames.manifest.key != key:
            raise ConfigError([f"the frames of {manifest.video} changed since the build (frame key {key[:12]})"])
        images[key] = [Image.fromarray(frame) for frame in frames.array]
    return images


def _write_rows(target: Path, rows: list[dict[str, Any]], with_images: bool) -> None:
    """``rows`` as JSON Lines (a ``.jsonl`` target) or parquet, the ``images`` column as images."""
    if target.suffix == ".jsonl":
        with atomic_text(target) as fh:
            fh.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        return
    from datasets import Dataset, Image, List

    dataset = Dataset.from_list(rows)
    if with_images:
        dataset = dataset.cast_column("images", List(Image()))
    with atomic_file(target, "wb") as fh:
        dataset.to_parquet(fh)


def _write_frame_folders(folder: Path, images: dict[str, list[Any]]) -> None:
    """Each frame key's frames as ``folder/<key>/00000.png``, ... (lossless, in order: names sort as frames)."""
    for key, frames in images.items():
        for index, image in enumerate(frames):
            with atomic_file(folder / key / f"{index:05d}.png", "wb") as fh:
                image.save(fh, format="PNG")


def _data_file(fmt: ExportFormat, frames_as_images: bool) -> str:
    if fmt == "hf":
        return "data/train-00000-of-00001.parquet"
    return "train.jsonl" if fmt == "llava-hound" or (fmt == "trl" and not frames_as_images) else "train.parquet"


def _rows_layout(fmt: ExportFormat, frames_as_images: bool) -> str:
    """What the card says the rows are."""
    if fmt == "llava-hound":
        return (
            "Rows are in LLaVA-Hound-DPO's pair format (`id`, `video`, `prompt`, `answer`, `chosen`, `rejected`, "
            f"`chosen_score`, `rejected_score`); `video` names a folder of `{FRAMES_FOLDER}/` holding the frames the "
            f"zoo saw as PNG files (give `{FRAMES_FOLDER}` as LLaVA-Hound-DPO's `--video_folder`)."
        )
    if frames_as_images:
        return (
            "Rows are in TRL's conversational preference format with the frames the zoo saw stored as images "
            '(`images`, one `{"type": "image"}` prompt part each): TRL\'s `DPOTrainer` trains on them as they are.'
        )
    return (
        "Rows are in TRL's conversational preference format; `video` holds the video path (a "
        '`{"type": "video"}` prompt part), for trainers with video support, not TRL\'s `DPOTrainer`.'
    )


def _card(build: Path, pairs: list[PreferencePair], data_file: str, rows: str) -> str:
    manifest = read_json(build / layout.RUN_MANIFEST)
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
        + rows,
        "",
        *_card_provenance(manifest["config"], pairs),
        *_card_counts(read_json(build / layout.SUMMARY), pairs),
        CITATION,
        f"Versions: `{json.dumps(manifest['packages'], sort_keys=True)}`",
        "",
    ]
    return "\n".join(lines)


def _card_provenance(config: dict[str, Any], pairs: list[PreferencePair]) -> list[str]:
    """The card's ``Provenance`` section: how the pairs were made (frames, scorer, strategy, zoo)."""
    return [
        "## Provenance",
        "",
        f"- Frames: `{json.dumps(frame_policy(config['frames']), sort_keys=True)}`",
        f"- Scorer: `{json.dumps(config.get('scorer'), sort_keys=True)}`",
        f"- Pair strategy: `{json.dumps(config.get('pairs'), sort_keys=True)}`",
        f"- Label sources: {', '.join(sorted({p.label_source for p in pairs})) or '(none)'}",
        "- Zoo:",
        *[
            f"  - `{z['name']}`: `{json.dumps({k: v for k, v in z.items() if k != 'name'}, sort_keys=True)}`"
            for z in config["zoo"]
        ],
        "",
    ]


def _card_counts(summary: dict[str, Any], pairs: list[PreferencePair]) -> list[str]:
    """The card's ``Counts`` section: the build's summary and the pairs by score gap and chosen model."""
    return [
        "## Counts",
        "",
        f"- Questions: {summary['samples']} ({summary['row_errors']} bad rows, {summary['video_errors']} unusable videos)",
        f"- Responses per model: `{json.dumps(summary['responses'], sort_keys=True)}`",
        f"- Judgements: `{json.dumps(summary['judgements'], sort_keys=True)}`",
        f"- Questions without a pair: `{json.dumps(summary['skipped'], sort_keys=True)}`",
        f"- API cost of the build: ${summary['cost_usd']:.4f}",
        "",
        *_count_table("chosen > rejected score", Counter(f"{p.chosen_score:g} > {p.rejected_score:g}" for p in pairs)),
        "",
        *_count_table("chosen model", Counter(p.chosen_model for p in pairs)),
        "",
    ]


def _count_table(header: str, counts: Counter[str]) -> list[str]:
    """A Markdown table of ``counts``, one row per key in sorted order."""
    return [f"| {header} | pairs |", "|---|---|", *[f"| {k} | {v} |" for k, v in sorted(counts.items())]]


def export_pairs(build: str | Path, out: str | Path, fmt: ExportFormat = "trl", frames_as_images: bool = True) -> Path:
    """Write the pairs of ``build`` into ``out`` in ``fmt`` with a dataset card; returns the data file (the
    folder for ``hf``). ``frames_as_images=False`` writes video-path rows instead of the frames (not for
    ``llava-hound``, whose loader reads frame folders)."""
    from datasets import disable_progress_bars

    disable_progress_bars()
    build, out = Path(build), Path(out)
    require_build_files(build, layout.PAIRS, layout.FRAMES, layout.RUN_MANIFEST, layout.SUMMARY)
    pairs = list(read_jsonl(build / layout.PAIRS, PreferencePair))
    if not pairs:
        raise ConfigError([f"{build / 'pairs.jsonl'}: no pairs to export"])
    if fmt == "llava-hound" and not frames_as_images:
        raise ConfigError(
            [
                "llava-hound exports always store the frames: LLaVA-Hound-DPO reads a video as a folder "
                "of frame images, not a video file (drop --video-path)"
            ]
        )
    images = _frames_by_key(build, {p.frames for p in pairs if p.frames}) if frames_as_images else {}
    target = out / _data_file(fmt, frames_as_images)
    if fmt == "llava-hound":
        _write_frame_folders(out / FRAMES_FOLDER, images)
        _write_rows(target, [_llava_hound_row(p) for p in pairs], with_images=False)
    else:
        _write_rows(target, [_row(p, images.get(p.frames or "")) for p in pairs], with_images=frames_as_images)
    write_text_atomic(
        out / "README.md", _card(build, pairs, target.relative_to(out).as_posix(), _rows_layout(fmt, frames_as_images))
    )
    return out if fmt == "hf" else target
