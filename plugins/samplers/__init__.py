"""Frame samplers: ``uniform`` (the paper's default), ``fps`` and ``scene-change``."""

from __future__ import annotations

import numpy as np
from pydantic import Field, model_validator

from mmaip_core import FrameSamplerSpec, FrameSource, PluginOptions, VideoInfo, hookimpl
from mmaip_core.frames import MAX_FRAMES

__all__ = ["FpsSampler", "SceneChangeSampler", "UniformSampler", "uniform_indices"]

MIN_FPS = 1e-4
"""Lowest ``fps``: one frame per 2.8 hours of video (far smaller rates overflow the step between frames)."""
MAX_ANALYSIS_FRAMES, MAX_ANALYSIS_SIDE = 4096, 128
"""Bounds of the scene-change scan, which holds its frames as float32: at most 4096 x 128² x 3 x 4 bytes (0.8 GB)."""


def uniform_indices(num_frames: int, k: int) -> list[int]:
    """``round(linspace(0, n-1, k))``: k evenly spaced indices including the first and last frame.

    Rounding is numpy's (half to even), so n=10, k=4 gives [0, 3, 6, 9] and n=8, k=3 gives [0, 4, 7]
    (3.5 rounds to 4). When k > n, indices repeat so that exactly k frames are always returned.
    """
    if num_frames <= 0:
        return []
    return [int(i) for i in np.round(np.linspace(0, num_frames - 1, k))]


class UniformOptions(PluginOptions):
    num_frames: int = Field(default=8, ge=1, le=MAX_FRAMES, description="How many frames (the paper uses 8).")


class UniformSampler:
    """k frames evenly spaced over the whole video."""

    def __init__(self, options: UniformOptions) -> None:
        self.k = options.num_frames

    def select(self, info: VideoInfo, source: FrameSource) -> list[int]:
        return uniform_indices(info.num_frames, self.k)


class FpsOptions(PluginOptions):
    fps: float = Field(default=1.0, ge=MIN_FPS, description="Frames per second of video to take.")
    max_frames: int = Field(default=32, ge=1, le=MAX_FRAMES, description="Cap; above it, max_frames uniform frames.")
    min_frames: int = Field(default=1, ge=1, le=MAX_FRAMES, description="Floor for very short videos.")

    @model_validator(mode="after")
    def _floor_below_cap(self) -> FpsOptions:
        if self.min_frames > self.max_frames:
            raise ValueError(f"min_frames ({self.min_frames}) must not exceed max_frames ({self.max_frames})")
        return self


class FpsSampler:
    """Frames at a fixed rate (t = 0, 1/fps, 2/fps, ...), at most ``max_frames``.

    A rate above the video's own gives every frame once. A video long enough to exceed the cap gets ``max_frames`` uniform frames instead (the rate drops
    so the whole video is still covered); a very short one gets ``min_frames`` uniform frames.
    """

    def __init__(self, options: FpsOptions) -> None:
        self.options = options

    def select(self, info: VideoInfo, source: FrameSource) -> list[int]:
        o = self.options
        step = max(info.fps / o.fps, 1.0) if info.fps > 0 else 1.0  # never faster than the video itself
        count = int(np.floor((info.num_frames - 1) / step)) + 1 if info.num_frames else 0
        if count > o.max_frames:
            return uniform_indices(info.num_frames, o.max_frames)
        if count < o.min_frames:
            return uniform_indices(info.num_frames, o.min_frames)
        return [min(round(i * step), info.num_frames - 1) for i in range(count)]


class SceneChangeOptions(PluginOptions):
    num_frames: int = Field(default=8, ge=1, le=MAX_FRAMES, description="How many frames.")
    analysis_frames: int = Field(
        default=256, ge=2, le=MAX_ANALYSIS_FRAMES, description="At most this many frames are compared."
    )
    analysis_side: int = Field(default=32, ge=4, le=MAX_ANALYSIS_SIDE, description="Frames are compared at this size.")
    min_gap: float = Field(
        default=0.5, ge=0, allow_inf_nan=False, description="Minimum distance between picks, in analysis steps."
    )


class SceneChangeSampler:
    """The first frame plus the frames where the picture changes most.

    Up to ``analysis_frames`` uniformly spaced frames are decoded straight to ``analysis_side`` pixels
    and turned grey, and each is scored by its mean absolute difference to the previous one.
    The highest-scoring frames are taken, at least ``min_gap`` analysis steps apart (scaled by the number
    of frames wanted); when the video has too few changes the rest is filled with uniform frames over
    the whole video.
    Indices are returned in time order.
    """

    def __init__(self, options: SceneChangeOptions) -> None:
        self.options = options

    def select(self, info: VideoInfo, source: FrameSource) -> list[int]:
        o = self.options
        k = o.num_frames
        if info.num_frames <= k:
            return uniform_indices(info.num_frames, k)
        candidates = sorted(set(uniform_indices(info.num_frames, min(o.analysis_frames, info.num_frames))))
        side = (min(o.analysis_side, info.width), min(o.analysis_side, info.height))
        grey = source.read(candidates, size=side).astype(np.float32).mean(axis=3)
        change = np.concatenate([[np.inf], np.abs(np.diff(grey, axis=0)).mean(axis=(1, 2))])
        gap = max(1, int(o.min_gap * len(candidates) / k))
        picked: list[int] = []
        for pos in np.argsort(-change, kind="stable"):
            if change[pos] <= 0 or len(picked) == k:
                break
            if all(abs(int(pos) - p) >= gap for p in picked):
                picked.append(int(pos))
        chosen = {candidates[p] for p in picked}
        # Too few changes: fill with uniform frames over the whole video, then with any unused frame.
        for index in [*uniform_indices(info.num_frames, k), *range(info.num_frames)]:
            if len(chosen) >= k:
                break
            chosen.add(index)
        return sorted(chosen)


@hookimpl
def mmaip_frame_samplers() -> list[FrameSamplerSpec]:
    return [
        FrameSamplerSpec(
            name="uniform",
            description="k evenly spaced frames, round(linspace(0, n-1, k)); the paper's default (k=8)",
            options=UniformOptions,
            factory=UniformSampler,
        ),
        FrameSamplerSpec(
            name="fps",
            description="frames at a fixed rate per second of video, with a cap",
            options=FpsOptions,
            factory=FpsSampler,
        ),
        FrameSamplerSpec(
            name="scene-change",
            description="first frame plus the frames where the picture changes most",
            options=SceneChangeOptions,
            factory=SceneChangeSampler,
        ),
    ]
