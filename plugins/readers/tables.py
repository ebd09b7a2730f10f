"""Generic tables: ``jsonl`` (or a JSON list) and ``csv``, with columns mapped in the config."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from pydantic import Field

from mmaip_core import PluginOptions, RowError, SamplesFileError, VideoQA
from mmaip_plugins.readers.common import (
    json_rows,
    require_file,
    require_folder,
    resolve_video,
    sample_or_error,
    some_rows,
)

__all__ = ["Columns", "CsvReader", "JsonlReader", "TableOptions"]


class Columns(PluginOptions):
    """Which column holds which field."""

    id: str | None = Field(default="id", description="Sample id; without it, '<file stem>-<row>'.")
    video: str = "video"
    question: str = "question"
    answer: str | None = "answer"
    caption: str | None = "caption"


class TableOptions(PluginOptions):
    path: Path = Field(description="The file to read.")
    columns: Columns = Field(default_factory=Columns, description="Column mapping.")
    video_root: Path | None = Field(
        default=None, description="Folder that relative video paths start from (default: the file's folder)."
    )
    source: str | None = Field(default=None, description="Dataset name recorded on every sample.")
    categories: list[str] = Field(
        default_factory=list,
        description="Columns that evaluation results are broken down by (e.g. question_type, duration).",
    )
    check_videos: bool = Field(default=True, description="Report rows whose video file does not exist.")
    text_only: bool = Field(
        default=False,
        description="Read rows without a video as text-only questions (the frame stages skip them) instead of "
        "reporting them as bad rows.",
    )


class _TableReader:
    """Row handling shared by the table formats: column mapping, video paths, per-row errors."""

    def __init__(self, options: TableOptions) -> None:
        self.options = options

    def rows(self) -> Iterable[tuple[str, Mapping[str, Any] | RowError]]:
        """(row id, row or RowError) of every row; SamplesFileError when the file cannot be used at all."""
        raise NotImplementedError

    def read(self) -> Iterator[VideoQA | RowError]:
        o = self.options
        if o.video_root is not None and o.check_videos:
            require_folder(o.video_root)
        for row_id, row in self.rows():
            yield row if isinstance(row, RowError) else self._sample(row_id, row, o.video_root or o.path.parent)

    def _sample(self, row_id: str, row: Mapping[str, Any], root: Path) -> VideoQA | RowError:
        c, source = self.options.columns, str(self.options.path)

        def get(column: str | None) -> Any:
            value = row.get(column) if column else None
            return None if value in ("", None) else value

        missing = [col for col in (c.video, c.question) if get(col) is None]
        if missing == [c.video] and self.options.text_only:
            video: str | None = None
        elif missing:
            hint = "; set text_only: true to read questions without a video" if missing == [c.video] else ""
            return RowError(source, row_id, f"missing column(s) {', '.join(missing)}{hint}")
        else:
            video, problem = resolve_video(str(get(c.video)), root, self.options.check_videos)
            if problem:
                return RowError(source, row_id, problem)
        mapped = {c.id, c.video, c.question, c.answer, c.caption, "source"}
        sample_id = get(c.id)
        return sample_or_error(
            source,
            row_id,
            id=str(sample_id) if sample_id is not None else f"{self.options.path.stem}-{row_id}",
            video=video,
            question=str(get(c.question)),
            answer=None if get(c.answer) is None else str(get(c.answer)),
            caption=None if get(c.caption) is None else str(get(c.caption)),
            source=self.options.source or (str(row["source"]) if row.get("source") else None),
            metadata={k: v for k, v in row.items() if k not in mapped},
            categories={k: str(get(k)) for k in self.options.categories if get(k) is not None},
        )


class JsonlReader(_TableReader):
    """One JSON object per line (blank lines skipped), or a ``.json`` file holding a list of objects."""

    def rows(self) -> Iterable[tuple[str, Mapping[str, Any] | RowError]]:
        return json_rows(self.options.path)


class CsvReader(_TableReader):
    """A CSV file with a header row naming (at least) the video and question columns."""

    def rows(self) -> Iterable[tuple[str, Mapping[str, Any] | RowError]]:
        path = self.options.path
        require_file(path)
        with open(path, encoding="utf-8-sig", newline="") as fh:
            reader = csv.DictReader(fh)
            self._check_header(reader)
            yield from some_rows(path, self._cells(reader))

    def _check_header(self, reader: csv.DictReader[str]) -> None:
        path, c = self.options.path, self.options.columns
        try:
            header = reader.fieldnames or []
        except UnicodeDecodeError as exc:
            raise SamplesFileError(path, f"not UTF-8 text: {exc.reason}") from exc
        wanted = (c.question,) if self.options.text_only else (c.video, c.question)
        missing = [column for column in wanted if column not in header]
        if missing:
            has = ", ".join(header) or "nothing"
            raise SamplesFileError(path, f"no column(s) {', '.join(missing)} in the header row (it has: {has})")

    def _cells(self, reader: csv.DictReader[str]) -> Iterator[tuple[str, Mapping[str, Any] | RowError]]:
        number, source = 1, str(self.options.path)
        try:
            for number, row in enumerate(reader, start=2):
                if None in row:
                    yield str(number), RowError(source, str(number), "more cells than header columns")
                    continue
                yield str(number), row
        except UnicodeDecodeError as exc:  # csv reads ahead, so the rest of the file is given up
            yield str(number + 1), RowError(source, str(number + 1), f"not UTF-8 text: {exc.reason}; rest skipped")
