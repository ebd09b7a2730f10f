"""From a video and a frame sampler to :class:`~mmaip_core.plugins.kinds.Frames`, through the cache."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from mmaip_core.errors import PluginError
from mmaip_core.frames.cache import FrameCache, default_cache_dir
from mmaip_core.frames.decoders import decode
from mmaip_core.plugins.kinds import Frames, FrameSource, PluginOptions, VideoInfo
from mmaip_core.plugins.manager import PluginManager, Registered, get_plugin_manager
from mmaip_core.records import FrameManifest
from mmaip_core.store.hashing import content_sha256, stable_hash

__all__ = ["MAX_FRAMES", "MAX_SIDE", "FrameLoader", "FrameSettings", "resize_max_side"]

CACHE_FORMAT = 1
MAX_FRAMES = 1024
"""Most frames one request may take: above every video MLLM's own cap (qwen-vl-utils: 768), and a bound on
memory (k decoded frames are held at the video's size, e.g. 1024 frames of 1080p video are 6.4 GB)."""
MAX_SIDE = 8192
"""Largest ``max_side``: above the longer side of 8K video (7680), so a larger value is a typo."""
log = logging.getLogger(__name__)


class FrameSettings(BaseModel):
    """How frames are obtained: the ``frames`` section of a run config.

    Keys other than those below are options of the chosen sampler (e.g. ``num_frames``).
    """

    model_config = ConfigDict(extra="allow")

    sampler: str = Field(default="uniform", description="Frame sampler plugin.")
    max_side: int | None = Field(
        default=None, ge=8, le=MAX_SIDE, description="Resize so the longer side is at most this."
    )
    backend: Literal["auto", "decord", "pyav"] = Field(
        default="auto", description="Decoder: decord, pyav, or auto (decord with PyAV as fallback)."
    )
    cache_dir: Path | None = Field(default=None, description="Frame cache folder (default: ~/.cache/mmaip/frames).")
    cache: bool = Field(default=True, description="Read and write the frame cache.")

    @property
    def sampler_options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


def resize_max_side(array: NDArray[np.uint8], max_side: int | None) -> NDArray[np.uint8]:
    """Shrink frames (k, h, w, 3) so that max(h, w) <= max_side, keeping the aspect ratio."""
    height, width = array.shape[1:3]
    if max_side is None or max(height, width) <= max_side:
        return array
    scale = max_side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.stack([np.asarray(Image.fromarray(f).resize(size, Image.Resampling.BICUBIC)) for f in array])


def _index_problem(indices: list[int], num_frames: int) -> str | None:
    """What is wrong with the indices a sampler returned (None: nothing)."""
    bad = [i for i in indices if not isinstance(i, int) or not 0 <= i < num_frames]
    if bad:
        return f"invalid indices {bad[:5]}"
    if not indices:
        return "no indices"
    if len(indices) > MAX_FRAMES:
        return f"{len(indices)} indices, more than the limit of {MAX_FRAMES}"
    return None


class FrameLoader:
    """Samples and decodes frames, once per (video content, sampler settings), then serves the cache."""

    def __init__(self, settings: FrameSettings | None = None, manager: PluginManager | None = None) -> None:
        self.settings = settings or FrameSettings()
        self.manager = manager or get_plugin_manager()
        self.cache = FrameCache(self.settings.cache_dir or default_cache_dir()) if self.settings.cache else None

    def load(self, video: str | Path, sampler: str | None = None, options: Mapping[str, Any] | None = None) -> Frames:
        """Frames of ``video`` chosen by ``sampler`` (default: the settings' sampler and options)."""
        name = sampler or self.settings.sampler
        values = self.settings.sampler_options if options is None and sampler is None else dict(options or {})
        registered = self.manager.get("frame-sampler", name)
        params = self.manager.options("frame-sampler", name, values)
        path = Path(video)
        sha = content_sha256(path) if path.exists() else ""
        key = stable_hash(
            {
                "format": CACHE_FORMAT,
                "video_sha256": sha,
                "sampler": registered.spec.name,
                "params": params.model_dump(mode="json"),
                "max_side": self.settings.max_side,
            }
        )
        # An explicit backend is a request to decode with it: the cache (backend-independent) is not read.
        use_cached = self.settings.backend == "auto" and self.cache is not None and bool(sha)
        if use_cached and self.cache is not None and (hit := self.cache.get(key)) is not None:
            return Frames(manifest=hit.manifest.model_copy(update={"video": str(video)}), array=hit.array)

        frames = self._decode(path, str(video), sha, name, registered, params)
        if self.cache is not None:
            try:
                self.cache.put(key, frames)
            except OSError as exc:  # the frames are good; only reuse is lost
                log.warning("frame cache %s is not writable (%s); frames of %s not cached", self.cache.root, exc, video)
        return frames

    def _decode(
        self, path: Path, video: str, sha: str, name: str, registered: Registered, params: PluginOptions
    ) -> Frames:
        """Decode the frames that sampler ``name`` selects, resized, with their manifest."""
        chosen = registered.spec.factory(params)

        def select(info: VideoInfo, source: FrameSource) -> list[int]:
            indices = chosen.select(info, source)
            if (problem := _index_problem(indices, info.num_frames)) is not None:
                raise PluginError("frame-sampler", name, f"returned {problem} for a video of {info.num_frames} frames")
            return list(indices)

        result = decode(path, select, backend=self.settings.backend)
        array = resize_max_side(result.array, self.settings.max_side)
        info = result.info
        manifest = FrameManifest(
            video=video,
            video_sha256=sha,
            sampler=registered.spec.name,
            sampler_params=params.model_dump(mode="json"),
            indices=result.indices,
            timestamps=[round(i / info.fps, 6) if info.fps else 0.0 for i in result.indices],
            backend=result.backend,
            fallback_from=result.fallback_from,
            fallback_reason=result.fallback_reason,
            source_fps=info.fps,
            source_num_frames=info.num_frames,
            source_size=(info.width, info.height),
            output_size=(int(array.shape[2]), int(array.shape[1])),
            max_side=self.settings.max_side,
        )
        return Frames(manifest=manifest, array=array)
