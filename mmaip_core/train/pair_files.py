"""The rows of a pair file or dataset folder, whatever holds them: JSON Lines, parquet, or a ``datasets`` folder.

A path names either one file (``.jsonl``, ``.parquet``) or a folder:

- an ``mmaip export`` folder or any folder with ``train.jsonl`` / ``train.parquet`` (LLaVA-Hound-DPO exports too);
- a Hub-style dataset folder (``data/train-*.parquet``, what ``--format hf`` writes and ``snapshot_download`` fetches);
- a ``Dataset.save_to_disk`` folder (``state.json``), or a ``DatasetDict`` one (``dataset_dict.json``: its ``train``).

Images come out as stored (``{"bytes": ..., "path": ...}``), never decoded: the pair reader writes them as frames.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mmaip_core.errors import UserError
from mmaip_core.records import ItemError

__all__ = ["FOLDER_DATA_FILES", "data_files", "iter_rows"]

FOLDER_DATA_FILES = ("train.jsonl", "train.parquet", "data/train-*.parquet", "data/train.parquet")
"""Where a folder's training rows are looked for, in this order (the first pattern that matches wins)."""

Row = dict[str, Any]
BATCH_ROWS = 256
"""Rows read at once from parquet: a dataset with its frames is never held whole."""


def data_files(path: Path) -> list[Path]:
    """The files (or ``save_to_disk`` folder) holding the training rows of ``path``."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise UserError(f"pairs file not found: {path}")
    if (path / "dataset_dict.json").is_file():
        return data_files(path / "train")
    if (path / "state.json").is_file():
        return [path]
    for pattern in FOLDER_DATA_FILES:
        if found := sorted(path.glob(pattern)):
            return found
    raise UserError(
        f"{path}: no training rows found (looked for {', '.join(FOLDER_DATA_FILES)} and save_to_disk files)"
    )


def _jsonl_rows(path: Path) -> Iterator[tuple[str, Row | ItemError]]:
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        item = f"{path.name}:{number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            yield item, ItemError(stage="pairs", item=item, error_class="JSONDecodeError", message=str(exc))
            continue
        if isinstance(row, dict):
            yield item, row
        else:
            yield (
                item,
                ItemError(stage="pairs", item=item, error_class="ValueError", message="a line must be a JSON object"),
            )


def _table_rows(path: Path) -> Iterator[Row]:
    """Rows of a parquet file or a ``save_to_disk`` folder, a batch at a time (images stay encoded bytes)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if path.is_dir():
        from datasets import load_from_disk

        table: pa.Table = load_from_disk(str(path)).flatten_indices().data.table  # memory-mapped
        batches = iter(table.to_batches(max_chunksize=BATCH_ROWS))
    else:
        try:
            batches = pq.ParquetFile(path).iter_batches(batch_size=BATCH_ROWS)
        except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
            raise UserError(f"{path}: not a readable parquet file ({exc})") from exc
    for batch in batches:
        yield from batch.to_pylist()


def iter_rows(path: Path) -> Iterator[tuple[str, Row | ItemError]]:
    """``(item, row)`` for every row of ``path`` (item: ``file:line`` or ``file:row``), or the error of a bad line."""
    for file in data_files(path):
        if file.is_dir() or file.suffix == ".parquet":
            for number, row in enumerate(_table_rows(file), start=1):
                yield f"{file.name}:{number}", row
        else:  # any other file is read as JSON Lines
            yield from _jsonl_rows(file)
