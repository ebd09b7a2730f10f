"""A run folder belongs to one process at a time and remembers the config it was started with.

:func:`locked` takes an exclusive ``flock`` on ``OUT/.mmaip.lock``. The operating system releases it when the
process ends, however it ends, so a crashed or killed run leaves no stale lock behind; a second process that
asks for the same folder gets :class:`RunFolderBusyError` naming the holder.

:func:`check_config` compares the sections a stage reads with those recorded in ``OUT/run-config.json`` by
the folder's earlier runs, read with today's defaults (an option added by a newer mmaip is no difference while
it keeps its default). A difference stops the run with :class:`ConfigChangedError`, which lists what differs,
unless the caller allows the change (``--allow-config-change``): the ledger is keyed by content, so
continuing re-asks only the calls the change touches, but the folder's outputs and cost then describe the
new config.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mmaip_core.errors import UserError
from mmaip_core.store import layout
from mmaip_core.store.files import read_json, write_text_atomic

__all__ = [
    "ConfigChangedError",
    "RunFolderBusyError",
    "check_config",
    "config_differences",
    "locked",
]

SHOWN_DIFFERENCES = 12

Resolve = Callable[[Mapping[str, Any]], Mapping[str, Any]]
"""Remembered config sections -> the same sections with today's defaults filled in."""


class RunFolderBusyError(UserError):
    """Another process holds the run folder."""

    def __init__(self, out: Path, holder: str) -> None:
        self.out = out
        super().__init__(
            f"{out} is in use by another mmaip process ({holder}); wait for it to finish, or choose another --out"
        )


class ConfigChangedError(UserError):
    """The run folder was started with another config."""

    def __init__(self, out: Path, stage: str, differences: list[str]) -> None:
        self.differences = differences
        shown = "\n".join(f"  - {d}" for d in differences[:SHOWN_DIFFERENCES])
        more = f"\n  (and {len(differences) - SHOWN_DIFFERENCES} more)" if len(differences) > SHOWN_DIFFERENCES else ""
        super().__init__(
            f"{out} holds a {stage} run of another config ({out / layout.RUN_CONFIG}); what differs:\n{shown}{more}\n"
            f"Choose another --out, or pass --allow-config-change to continue here (finished calls are reused; "
            f"the folder's outputs and cost then follow the new config)."
        )


@contextmanager
def locked(out: str | Path) -> Iterator[Path]:
    """Hold ``out`` (created if missing) for this process while the block runs."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    fd = os.open(out / layout.LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "pid unknown"
            raise RunFolderBusyError(out, holder) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}".encode(), 0)
        yield out
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, Mapping):
        items: list[tuple[str, Any]] = [(str(k), v) for k, v in value.items()]
    elif isinstance(value, list):
        items = [(str(i), v) for i, v in enumerate(value)]
    else:
        return {prefix: value}
    flat: dict[str, Any] = {}
    for key, item in items:
        flat.update(_flatten(item, f"{prefix}.{key}" if prefix else key))
    return flat or {prefix: value}


def config_differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """``path: old → new`` for every leaf that differs (``1`` and ``1.0`` are equal)."""
    before, after = _flatten(old), _flatten(new)
    lines = []
    for path in sorted(before.keys() | after.keys()):
        a, b = before.get(path, "(absent)"), after.get(path, "(absent)")
        if a != b:
            lines.append(f"{path}: {json.dumps(a, default=str)} → {json.dumps(b, default=str)}")
    return lines


def _plain(value: Any) -> Any:
    """``value`` as it reads back from JSON."""
    return json.loads(json.dumps(value, default=str))


def check_config(
    out: str | Path,
    stage: str,
    sections: Mapping[str, Any],
    allow_change: bool = False,
    resolve: Resolve | None = None,
) -> None:
    """Stop if ``out`` was started with other ``sections`` for ``stage`` (unless ``allow_change``); then
    remember ``sections`` as the folder's config. Call it while holding the folder (:func:`locked`).

    ``resolve`` reads the remembered sections with today's defaults (:func:`mmaip_core.config.resolve_again`):
    an option that a newer mmaip added is then absent from the remembered config only in name, and differs
    only where the new value is not its default, the value the earlier runs effectively used."""
    out = Path(out)
    current = _plain({"stage": stage, "config": dict(sections)})
    path = out / layout.RUN_CONFIG
    if path.is_file() and not allow_change:
        remembered = read_json(path)
        if resolve is not None and isinstance(remembered, dict) and isinstance(remembered.get("config"), dict):
            remembered = {**remembered, "config": _plain(resolve(remembered["config"]))}
        differences = config_differences(remembered, current)
        if differences:
            raise ConfigChangedError(out, stage, differences)
    write_text_atomic(path, json.dumps(current, indent=2, ensure_ascii=False) + "\n")
