"""Frames as base64 JPEG images for API requests."""

from __future__ import annotations

import base64
import io
import math

from PIL import Image

from mmaip_core import Frames

__all__ = ["anthropic_image_tokens", "frame_positions", "jpeg_base64", "openai_image_tokens", "text_tokens"]


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


def text_tokens(text: str) -> int:
    """A rough token count of ``text`` (4 characters a token), for cost estimates."""
    return len(text) // 4 + 1


def openai_image_tokens(width: int, height: int, detail: str) -> int:
    """Tokens OpenAI bills for one image: 85 at low detail; else 85 + 170 per 512-px tile after fitting the
    image into 2048x2048 and its short side into 768."""
    if detail == "low":
        return 85
    scale = min(1.0, 2048 / max(width, height))
    w, h = width * scale, height * scale
    scale = min(1.0, 768 / min(w, h))
    w, h = w * scale, h * scale
    return 85 + 170 * math.ceil(w / 512) * math.ceil(h / 512)


def anthropic_image_tokens(width: int, height: int) -> int:
    """Tokens Anthropic bills for one image: about width x height / 750, at most 1600."""
    return min(1600, math.ceil(width * height / 750))
