"""The ``shapesqa`` reader: one split of a folder written by :func:`mmaip_core.testbeds.shapesqa.make_shapesqa`."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from pydantic import Field

from mmaip_core import PluginOptions, RowError, SamplesFileError, VideoQA
from mmaip_core.testbeds.shapesqa import QuestionType, Split
from mmaip_plugins.readers.common import json_rows, resolve_video, sample_or_error

__all__ = ["ShapesQAOptions", "ShapesQAReader"]


class ShapesQAOptions(PluginOptions):
    path: Path = Field(
        description="Folder written by mmaip_core.testbeds.shapesqa.make_shapesqa (holds <split>.jsonl)."
    )
    split: Split = Field(default="train", description="Split to read: train, held-out or ood.")
    question_types: list[QuestionType] | None = Field(
        default=None, description="Only questions of these types: colour, shape, count, direction, temporal."
    )
    limit: int | None = Field(default=None, ge=1, description="At most this many questions, in file order.")
    check_videos: bool = Field(default=True, description="Report rows whose video file does not exist.")


class ShapesQAReader:
    """Rows of ``<path>/<split>.jsonl`` as samples; videos are relative to ``path``."""

    def __init__(self, options: ShapesQAOptions) -> None:
        self.options = options

    def read(self) -> Iterator[VideoQA | RowError]:
        o = self.options
        file = o.path / f"{o.split}.jsonl"
        if not file.exists():
            raise SamplesFileError(
                file, "file not found; write the dataset with mmaip_core.testbeds.shapesqa.make_shapesqa"
            )
        wanted = set(o.question_types or QuestionType)
        count = 0
        for number, row in json_rows(file):
            if o.limit is not None and count >= o.limit:
                return
            item = row if isinstance(row, RowError) else self._sample(str(file), number, row)
            if isinstance(item, VideoQA):
                if item.metadata.get("question_type") not in wanted:
                    continue
                count += 1
            yield item

    def _sample(self, file: str, number: str, row: Mapping[str, Any]) -> VideoQA | RowError:
        video = row.get("video")
        if not isinstance(video, str) or not video:
            return RowError(file, number, "missing video")
        unknown = sorted(set(row) - set(VideoQA.model_fields))
        if unknown:
            return RowError(file, number, f"unknown field(s) {', '.join(unknown)}")
        path, problem = resolve_video(video, self.options.path, self.options.check_videos)
        if problem:
            return RowError(file, number, problem)
        return sample_or_error(file, number, **{**row, "video": path})
