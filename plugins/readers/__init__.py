"""Sample readers for generic tables: ``jsonl`` and ``csv``, with columns mapped in the config."""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError

from mmaip_core import PluginOptions, RowError, SampleReaderSpec, VideoQA, hookimpl

__all__ = ["CsvReader", "JsonlReader", "TableOptions"]

_URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)


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
    check_videos: bool = Field(default=True, description="Report rows whose video file does not exist.")


class _TableReader:
    """Shared row handling: column mapping, video path resolution, per-row errors."""

    def __init__(self, options: TableOptions) -> None:
        self.options = options

    def rows(self) -> Iterable[tuple[str, Mapping[str, Any] | RowError]]:
        raise NotImplementedError

    def read(self) -> Iterator[VideoQA | RowError]:
        o = self.options
        if not o.path.is_file():
            yield RowError(str(o.path), "-", "file not found")
            return
        root = o.video_root or o.path.parent
        for row_id, row in self.rows():
            if isinstance(row, RowError):
                yield row
                continue
            yield self._sample(row_id, row, root)

    def _sample(self, row_id: str, row: Mapping[str, Any], root: Path) -> VideoQA | RowError:
        c = self.options.columns

        def get(column: str | None) -> Any:
            value = row.get(column) if column else None
            return None if value in ("", None) else value

        missing = [col for col in (c.video, c.question) if get(col) is None]
        if missing:
            return RowError(str(self.options.path), row_id, f"missing column(s) {', '.join(missing)}")
        video = str(get(c.video))
        if not _URL.match(video):
            path = Path(video) if Path(video).is_absolute() else root / video
            if self.options.check_videos and not path.is_file():
                return RowError(str(self.options.path), row_id, f"video file not found: {path}")
            video = str(path)
        extra = {k: v for k, v in row.items() if k not in {c.id, c.video, c.question, c.answer, c.caption}}
        sample_id = get(c.id)
        try:
            return VideoQA(
                id=str(sample_id) if sample_id is not None else f"{self.options.path.stem}-{row_id}",
                video=video,
                question=str(get(c.question)),
                answer=None if get(c.answer) is None else str(get(c.answer)),
                caption=None if get(c.caption) is None else str(get(c.caption)),
                source=self.options.source or (str(row["source"]) if row.get("source") else None),
                metadata={k: v for k, v in extra.items() if k != "source"},
            )
        except ValidationError as exc:
            return RowError(str(self.options.path), row_id, str(exc.errors()[0]["msg"]))


class JsonlReader(_TableReader):
    """One JSON object per line; blank lines are skipped."""

    def rows(self) -> Iterable[tuple[str, Mapping[str, Any] | RowError]]:
        with open(self.options.path, "rb") as fh:
            for number, raw in enumerate(fh, start=1):
                try:
                    line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
                except UnicodeDecodeError as exc:
                    yield str(number), RowError(str(self.options.path), str(number), f"not UTF-8 text: {exc.reason}")
                    continue
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    yield str(number), RowError(str(self.options.path), str(number), f"invalid JSON: {exc.msg}")
                    continue
                if not isinstance(row, dict):
                    yield str(number), RowError(str(self.options.path), str(number), "not a JSON object")
                    continue
                yield str(number), row


class CsvReader(_TableReader):
    """A CSV file with a header row."""

    def rows(self) -> Iterable[tuple[str, Mapping[str, Any] | RowError]]:
        number = 1
        try:
            with open(self.options.path, encoding="utf-8-sig", newline="") as fh:
                for number, row in enumerate(csv.DictReader(fh), start=2):
                    if None in row:
                        yield str(number), RowError(str(self.options.path), str(number), "more cells than header columns")
                        continue
                    yield str(number), row
        except UnicodeDecodeError as exc:  # csv reads ahead, so the rest of the file is given up
            yield str(number + 1), RowError(str(self.options.path), str(number + 1), f"not UTF-8 text: {exc.reason}; rest of file skipped")


@hookimpl
def mmaip_sample_readers() -> list[SampleReaderSpec]:
    return [
        SampleReaderSpec(
            name="jsonl",
            description="JSON Lines: one sample per line, columns mapped in config",
            options=TableOptions,
            factory=JsonlReader,
        ),
        SampleReaderSpec(
            name="csv",
            description="CSV with a header row, columns mapped in config",
            options=TableOptions,
            factory=CsvReader,
        ),
    ]
