"""JSON Lines files that are never left half-written: written to a temporary file, then renamed."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from mmaip_core.errors import ConfigError
from mmaip_core.store.files import atomic_text

__all__ = ["read_jsonl", "write_jsonl_atomic"]

RecordT = TypeVar("RecordT", bound=BaseModel)


def write_jsonl_atomic(path: str | Path, records: Iterable[BaseModel]) -> int:
    """Write one record per line to ``path`` atomically (:func:`mmaip_core.store.files.atomic_text`); returns the count."""
    count = 0
    with atomic_text(path) as fh:
        for record in records:
            fh.write(record.model_dump_json() + "\n")
            count += 1
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
                raise ConfigError(
                    [f"line {number}: not a valid {model.__name__}: {reason}"], source=str(path)
                ) from None
