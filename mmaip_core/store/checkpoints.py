"""Checkpoint folders that are complete or absent, never half-written.

A checkpoint is written into a hidden temporary folder beside its final name; when everything is on disk a
completion marker (``COMPLETE.json``) is written last and the folder is renamed into place. A reader trusts
a folder only when the marker is there, so a run killed during a save leaves at worst a hidden leftover
that the next save removes, and resume never picks a partial checkpoint.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = [
    "MARKER",
    "VISION_PATTERN",
    "is_complete",
    "latest_complete",
    "mark_complete",
    "prune",
    "read_marker",
    "staged",
]

MARKER = "COMPLETE.json"

VISION_PATTERN = re.compile(
    r"(^|\.)(visual|vision_tower|vision_model|vision_resampler|multi_modal_projector|mm_projector|image_newline)(\.|$)"
)
"""Tensor names of vision towers and projectors (on disk and in memory, for the bundled model families)."""


def is_complete(folder: str | Path) -> bool:
    """Whether ``folder`` is a finished checkpoint (its completion marker exists)."""
    return (Path(folder) / MARKER).is_file()


def read_marker(folder: str | Path) -> dict[str, Any]:
    """The information stored with the completion marker of ``folder``."""
    return dict(json.loads((Path(folder) / MARKER).read_text()))


def _fsync_tree(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb") as f:
                os.fsync(f.fileno())


@contextmanager
def staged(final: str | Path, info: dict[str, Any] | None = None) -> Iterator[Path]:
    """Yield a temporary folder to write a checkpoint into; on success, mark it complete and rename it to
    ``final`` (replacing an older folder of that name). On error the temporary folder is removed."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    for leftover in final.parent.glob(f".{final.name}-*"):  # from a run killed while saving
        shutil.rmtree(leftover, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
    try:
        yield tmp
        mark_complete(tmp, final, info)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def mark_complete(tmp: str | Path, final: str | Path, info: dict[str, Any] | None = None) -> None:
    """Finish a checkpoint written into ``tmp``: flush it, write the completion marker last, and rename it
    to ``final`` (replacing an older folder of that name). For writers that cannot use :func:`staged`
    (several processes writing into one folder)."""
    tmp, final = Path(tmp), Path(final)
    _fsync_tree(tmp)
    marker = {"completed_at": datetime.now(UTC).isoformat(), **(info or {})}
    (tmp / MARKER).write_text(json.dumps(marker, indent=2, default=str))
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)


def _numbered(parent: Path, prefix: str) -> list[tuple[int, Path]]:
    pattern = re.compile(rf"{re.escape(prefix)}-(\d+)$")
    found = [(int(m.group(1)), p) for p in parent.glob(f"{prefix}-*") if (m := pattern.match(p.name))]
    return sorted(found)


def latest_complete(parent: str | Path, prefix: str) -> Path | None:
    """The complete folder ``parent/<prefix>-<n>`` with the largest ``n`` (None when there is none)."""
    parent = Path(parent)
    complete = [p for _, p in _numbered(parent, prefix) if is_complete(p)] if parent.is_dir() else []
    return complete[-1] if complete else None


def prune(parent: str | Path, prefix: str, keep: int) -> list[Path]:
    """Delete all but the ``keep`` newest complete ``<prefix>-<n>`` folders, and incomplete ones older than
    the newest complete one. The newest complete folder is never deleted. Returns what was deleted."""
    parent = Path(parent)
    numbered = _numbered(parent, prefix) if parent.is_dir() else []
    complete = [(n, p) for n, p in numbered if is_complete(p)]
    if not complete:
        return []
    kept = {p for _, p in complete[-max(keep, 1) :]}
    newest = complete[-1][0]
    doomed = [p for n, p in numbered if p not in kept and (is_complete(p) or n < newest)]
    for path in doomed:
        shutil.rmtree(path, ignore_errors=True)
    return doomed
