"""What every bundled reader shares: JSON rows with per-row errors, video paths, building samples."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from mmaip_core import RowError, VideoQA

__all__ = ["json_rows", "resolve_video", "sample_or_error"]

_URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)


def json_rows(path: Path) -> Iterator[tuple[str, Mapping[str, Any] | RowError]]:
    """Rows of a JSON Lines file, or of a JSON file holding a list; (row number, row or RowError)."""
    if path.suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8-sig"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            yield "-", RowError(str(path), "-", f"not a JSON file: {exc}")
            return
        if not isinstance(data, list):
            yield "-", RowError(str(path), "-", "a .json file must hold a list of rows")
            return
        for number, row in enumerate(data, start=1):
            yield str(number), row if isinstance(row, dict) else RowError(str(path), str(number), "not a JSON object")
        return
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
