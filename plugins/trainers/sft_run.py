"""``mmaip sft CONFIG --out OUT``: supervised fine-tuning (``sft.py``) of the config's ``sft.model`` on the answers
of its ``samples`` (read by the sample reader, as ``mmaip build`` reads them), with the frames of its ``frames``
section (read through the frame cache whenever a video is needed, so no video's frames are held)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from mmaip_core import (
    ConfigError,
    Frames,
    ItemError,
    MmaipError,
    PluginManager,
    RowError,
    UserError,
    VideoQA,
    is_complete,
)
from mmaip_core.config import RunConfig
from mmaip_core.frames import FrameLoader
from mmaip_core.validation import render_validation_error
from mmaip_plugins.trainers.sft import SftOptions, SftResult, sft

__all__ = ["run_sft", "sft_options", "sft_problems"]


class _FramesOnDisk(Mapping[str, Frames]):
    """The frames of ``videos``, loaded (from the frame cache) each time one is asked for; a video whose frames
    cannot be read is absent, so its samples are reported and left out."""

    def __init__(self, load: Callable[[str], Frames], videos: list[str]) -> None:
        self._load, self._videos = load, videos

    def __getitem__(self, video: str) -> Frames:
        try:
            return self._load(video)
        except (MmaipError, OSError) as exc:
            raise KeyError(video) from exc

    def __iter__(self) -> Iterator[str]:
        return iter(self._videos)

    def __len__(self) -> int:
        return len(self._videos)


def _validated(options: Mapping[str, Any]) -> SftOptions:
    """The options of an ``sft`` section (every key but ``model``); every problem in one ConfigError."""
    try:
        return SftOptions.model_validate(dict(options))
    except ValidationError as exc:
        raise ConfigError(render_validation_error(exc, SftOptions, prefix="sft")) from exc


def sft_options(config: RunConfig) -> SftOptions:
    """The ``sft`` section's options, validated; every problem in one ConfigError."""
    if config.sft is None:
        raise UserError("the config has no `sft` section (the model to fine-tune and its options)")
    return _validated(config.sft.options)


def sft_problems(data: Mapping[str, Any]) -> list[str]:
    """The problems of the options in a config file's ``sft`` section (``data``: the parsed file, see
    :func:`mmaip_core.config.read_config_file`), one ``sft.KEY: ...`` line each, for ``mmaip config validate``;
    none without the section (its ``model`` is checked with the rest of the config)."""
    section = data.get("sft")
    if not isinstance(section, Mapping):
        return []
    try:
        _validated({key: value for key, value in section.items() if key != "model"})
    except ConfigError as exc:
        return exc.problems
    return []


def _samples(config: RunConfig, manager: PluginManager, limit: int | None) -> tuple[list[VideoQA], list[ItemError]]:
    """The first ``limit`` readable samples (all by default) and an error for each row the reader could not read."""
    if config.samples is None:
        raise UserError("the config has no `samples` section (the questions and answers to train on)")
    reader = manager.create("sample-reader", config.samples.plugin, config.samples.options)
    samples: list[VideoQA] = []
    errors: list[ItemError] = []
    for item in reader.read():
        if isinstance(item, RowError):
            errors.append(
                ItemError(stage="samples", item=f"{item.source}:{item.row}", error_class="RowError", message=item.cause)
            )
        elif limit is None or len(samples) < limit:
            samples.append(item)
    return samples, errors


def run_sft(config: RunConfig, out: str | Path, manager: PluginManager, *, limit: int | None = None) -> SftResult:
    """Fine-tune ``config.sft.model`` on the answers of the config's samples into ``out`` (a complete checkpoint
    folder); rows the reader could not read are reported in ``SftResult.skipped`` with the samples left out."""
    out = Path(out)
    if is_complete(out):
        raise UserError(f"{out} already holds a fine-tuned model; choose another --out")
    options = sft_options(config)
    samples, errors = _samples(config, manager, limit)
    videos = sorted({s.video for s in samples if s.video is not None})
    frames = _FramesOnDisk(FrameLoader(config.frames, manager).load, videos)
    assert config.sft is not None
    result = sft(config.sft.model, samples, frames, out, options)
    return result.model_copy(update={"skipped": [*errors, *result.skipped]})
