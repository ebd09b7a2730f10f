"""Content hashes: of files (memoised by path, size and mtime) and of JSON-able values."""

from __future__ import annotations

import hashlib
import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

__all__ = ["content_sha256", "file_sha256", "stable_hash", "stable_json"]

_CHUNK = 1 << 20


def stable_json(value: Any) -> str:
    """Canonical JSON: sorted keys, no spaces, so equal values give equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def stable_hash(value: Any) -> str:
    """sha256 hex digest of :func:`stable_json` of ``value``."""
    return hashlib.sha256(stable_json(value).encode()).hexdigest()


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's bytes; re-read only when its size or mtime changed."""
    st = os.stat(path)
    return _file_sha256(str(Path(path).resolve()), st.st_size, st.st_mtime_ns)


@lru_cache(maxsize=4096)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def content_sha256(path: str | Path) -> str:
    """sha256 of a file, or of a folder of frames: its files' names and hashes, in name order."""
    path = Path(path)
    if not path.is_dir():
        return file_sha256(path)
    entries = sorted(p for p in path.iterdir() if p.is_file())
    return stable_hash([[p.name, file_sha256(p)] for p in entries])
