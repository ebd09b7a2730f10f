"""What every bundled reader shares: checks of the files and folders named in the options (an unusable file
stops the run with a SamplesFileError), JSON rows with per-row errors, video paths, building samples."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError

from mmaip_core import RowError, SamplesFileError, VideoQA

__all__ = [
    "json_rows",
    "require_file",
    "require_folder",
    "resolve_video",
    "sample_or_error",
    "some_rows",
]

_URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)


def require_file(path: Path) -> None:
    """Raise SamplesFileError unless ``path`` is a file with something in it."""
    if not path.exists():
        raise SamplesFileError(path, "file not found")
    if not path.is_file():
        raise SamplesFileError(path, "not a file")
    if path.stat().st_size == 0:
        raise SamplesFileError(path, "the file is empty (0 bytes)")


def require_folder(path: Path) -> None:
    """Raise SamplesFileError unless ``path`` is a folder."""
    if not path.is_dir():
        raise SamplesFileError(path, "folder not found" if not path.exists() else "not a folder")


RowT = TypeVar("RowT")


def some_rows(path: Path, rows: Iterable[RowT]) -> Iterator[RowT]:
    """``rows`` of the file ``path`` as they come; SamplesFileError at the end if there was none."""
    empty = True
    for row in rows:
        empty = False
        yield row
    if empty:
        raise SamplesFileError(path, "no rows")


def json_rows(path: Path) -> Iterator[tuple[str, Mapping[str, Any] | RowError]]:
    """Rows of a JSON Lines file, or of a JSON file holding a list; (row number, row or RowError).
    SamplesFileError when the file as a whole cannot be used (see :func:`require_file`; no rows; a .json
    file that does not parse or holds no list)."""
    require_file(path)
    yield from some_rows(path, _json_list(path) if path.suffix == ".json" else _json_lines(path))


def _json_list(path: Path) -> Iterator[tuple[str, Mapping[str, Any] | RowError]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SamplesFileError(path, f"not a JSON file: {exc}") from exc
    if not isinstance(data, list):
        raise SamplesFileError(
            path, "holds a JSON object, not a list of rows" if isinstance(data, dict) else "holds no list of rows"
        )
    for number, row in enumerate(data, start=1):
        yield str(number), row if isinstance(row, dict) else RowError(str(path), str(number), "not a JSON object")


def _json_lines(path: Path) -> Iterator[tuple[str, Mapping[str, Any] | RowError]]:
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, start=1):
            try:
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                yield str(number), RowError(str(path), str(number), f"not UTF-8 text: {exc.reason}")
                continue
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                yield str(number), RowError(str(path), str(number), f"invalid JSON: {exc.msg}")
                continue
            yield str(number), row if isinstance(row, dict) else RowError(str(path), str(number), "not a JSON object")


def resolve_video(video: str, root: Path, check: bool) -> tuple[str, str | None]:
    """(path or URL, problem): relative paths start at ``root``; a video must be a file or a frame folder."""
    if _URL.match(video):
        return video, None
    path = Path(video).expanduser()
    path = path if path.is_absolute() else root / path
    if check and not path.exists():
        return str(path), f"video file not found: {path}"
    return str(path), None


def sample_or_error(file: str, row: str, **fields: Any) -> VideoQA | RowError:
    """A VideoQA from ``fields``, or the RowError (of ``file``, ``row``) that says why not."""
    try:
        return VideoQA(**fields)
    except ValidationError as exc:
        error = exc.errors()[0]
        return RowError(file, row, f"{'.'.join(map(str, error['loc']))}: {error['msg']}")
