"""Content-addressed on-disk cache of sampled frames.

An entry is keyed by (video sha256, sampler, sampler options, resize limit): the same frames requested
by any stage of any run are decoded once. An entry is a folder holding ``frames.npy`` and
``manifest.json``, written into a temporary folder and renamed into place, so a crash never leaves a
half-written entry; an entry that fails to load is dropped and decoded again.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from mmaip_core.plugins.kinds import Frames
from mmaip_core.records import FrameManifest

__all__ = ["FrameCache", "default_cache_dir"]

log = logging.getLogger(__name__)

CACHE_ENV = "MMAIP_CACHE_DIR"


def default_cache_dir() -> Path:
    """``$MMAIP_CACHE_DIR/frames``, else ``$XDG_CACHE_HOME/mmaip/frames`` (``~/.cache`` by default)."""
    if root := os.environ.get(CACHE_ENV):
        return Path(root) / "frames"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "mmaip" / "frames"


class FrameCache:
    """Frames on disk under ``root``, addressed by a content key."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def _dir(self, key: str) -> Path:
        return self.root / key[:2] / key

    def get(self, key: str) -> Frames | None:
        """The cached frames for ``key``, or None (also for an entry that cannot be read)."""
        entry = self._dir(key)
        if not entry.is_dir():
            return None
        try:
            manifest = FrameManifest.model_validate_json((entry / "manifest.json").read_text())
            array = np.load(entry / "frames.npy", allow_pickle=False)
            width, height = manifest.output_size
            if array.shape != (len(manifest.indices), height, width, 3):
                raise ValueError(f"frames of shape {array.shape} do not match the manifest")
        except Exception as exc:  # any unreadable entry (torn write, foreign file) is dropped and redone
            log.warning("frame cache entry %s is unreadable (%s); decoding again", entry, exc)
            shutil.rmtree(entry, ignore_errors=True)
            return None
        return Frames(manifest=manifest, array=array)

    def put(self, key: str, frames: Frames) -> None:
        """Store ``frames`` under ``key`` atomically; a concurrent writer of the same key is harmless."""
        entry = self._dir(key)
        entry.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key[:8]}-", dir=entry.parent))
        try:
            with open(tmp / "frames.npy", "wb") as fh:
                np.save(fh, frames.array, allow_pickle=False)
                os.fsync(fh.fileno())
            with open(tmp / "manifest.json", "w", encoding="utf-8") as fh:
                fh.write(frames.manifest.model_dump_json(indent=1))
                os.fsync(fh.fileno())
            tmp.chmod(0o755)  # mkdtemp makes it private; a shared cache must be readable by others
            try:
                os.replace(tmp, entry)
            except OSError:  # another process stored the same entry first
                if not entry.is_dir():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
