"""Frames as base64 JPEG images for API requests."""

from __future__ import annotations

import base64
import io

from PIL import Image

from mmaip_core import Frames

__all__ = ["frame_positions", "jpeg_base64"]


def frame_positions(frames: Frames, max_frames: int | None) -> list[int]:
    """Positions (into ``frames.array``) of the frames to send: all, or ``max_frames`` evenly spread."""
    count = len(frames.array)
    if max_frames is None or count <= max_frames:
        return list(range(count))
    return sorted({round(i * (count - 1) / (max_frames - 1)) for i in range(max_frames)}) if max_frames > 1 else [0]


def jpeg_base64(frames: Frames, positions: list[int], quality: int) -> list[str]:
    """The frames at ``positions`` as base64-encoded JPEG files."""
    encoded = []
    for position in positions:
        buffer = io.BytesIO()
        Image.fromarray(frames.array[position]).save(buffer, format="JPEG", quality=quality)
        encoded.append(base64.b64encode(buffer.getvalue()).decode("ascii"))
    return encoded
