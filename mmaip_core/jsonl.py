"""JSON Lines files that are never left half-written: written to a temporary file, then renamed."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from mmaip_core.errors import ConfigError

__all__ = ["read_jsonl", "write_jsonl_atomic"]

RecordT = TypeVar("RecordT", bound=BaseModel)


def write_jsonl_atomic(path: str | Path, records: Iterable[BaseModel]) -> int:
    """Write one record per line to ``path`` via a temporary file and ``os.replace``; returns the count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    count = 0
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            for record in records:
                fh.write(record.model_dump_json() + "\n")
                count += 1
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return count


def read_jsonl(path: str | Path, model: type[RecordT]) -> Iterator[RecordT]:
    """Records of ``model``, one per non-blank line of ``path``; a damaged line is a ConfigError naming it."""
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                yield model.model_validate(json.loads(line))
            except (json.JSONDecodeError, ValidationError) as exc:
                reason = exc.msg if isinstance(exc, json.JSONDecodeError) else exc.errors()[0]["msg"]
                raise ConfigError([f"line {number}: not a valid {model.__name__}: {reason}"], source=str(path)) from None
