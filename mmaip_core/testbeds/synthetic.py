"""Synthetic demo videos: coloured shapes that move, with questions whose answers are known.

Used by the bundled demo and by the tests, so both work on real video files without any download.
Everything is deterministic for a given seed.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw

from mmaip_core.store.files import write_text_atomic

__all__ = [
    "COLOURS",
    "DIRECTIONS",
    "SHAPES",
    "ShapeClip",
    "draw_shape",
    "make_demo_dataset",
    "render_clip",
    "write_video",
]

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 180, 60),
    "blue": (40, 80, 220),
    "yellow": (230, 210, 40),
}
SHAPES = ("circle", "square", "triangle")
DIRECTIONS: dict[str, tuple[int, int]] = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}


@dataclass(frozen=True)
class ShapeClip:
    """One shape of one colour moving in one direction across a plain background."""

    shape: str
    colour: str
    direction: str
    num_frames: int = 32
    size: int = 96
    fps: int = 8

    @property
    def caption(self) -> str:
        return (
            f"A {self.colour} {self.shape} moves {self.direction} across a grey background "
            f"for {self.num_frames / self.fps:.1f} seconds."
        )


def draw_shape(
    draw: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, r: float, fill: tuple[int, int, int]
) -> None:
    """Draw ``shape`` (one of SHAPES) of "radius" ``r`` centred on (cx, cy), without anti-aliasing."""
    box = (cx - r, cy - r, cx + r, cy + r)
    if shape == "circle":
        draw.ellipse(box, fill=fill)
    elif shape == "square":
        draw.rectangle(box, fill=fill)
    else:
        draw.polygon([(cx, cy - r), (cx + r, cy + r), (cx - r, cy + r)], fill=fill)


def render_clip(clip: ShapeClip) -> NDArray[np.uint8]:
    """The clip's frames as an array (num_frames, size, size, 3)."""
    dx, dy = DIRECTIONS[clip.direction]
    r = clip.size / 8
    travel = clip.size - 4 * r
    frames = []
    for t in range(clip.num_frames):
        progress = t / max(clip.num_frames - 1, 1)
        cx = clip.size / 2 + dx * (progress - 0.5) * travel
        cy = clip.size / 2 + dy * (progress - 0.5) * travel
        image = Image.new("RGB", (clip.size, clip.size), (128, 128, 128))
        draw_shape(ImageDraw.Draw(image), clip.shape, cx, cy, r, COLOURS[clip.colour])
        frames.append(np.asarray(image))
    return np.stack(frames)


def write_video(path: str | Path, frames: NDArray[np.uint8], fps: int = 8) -> Path:
    """Encode frames (k, h, w, 3) as an H.264 MP4 (MPEG-4 part 2 if libx264 is missing)."""
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        try:
            stream = container.add_stream("libx264", rate=fps)
            stream.options = {"crf": "18", "preset": "veryfast", "threads": "1"}  # one thread: the same bytes every run
        except (av.FFmpegError, ValueError):
            stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height = int(frames.shape[2]), int(frames.shape[1])
        stream.pix_fmt = "yuv420p"
        for array in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def make_demo_dataset(out: str | Path, num_videos: int = 6, seed: int = 0, num_frames: int = 32) -> Path:
    """Write ``num_videos`` clips and ``qa.jsonl`` (three questions per clip) into ``out``.

    Returns the path of ``qa.jsonl``; its ``video`` fields are relative to its folder.
    """
    out = Path(out)
    rng = random.Random(seed)
    rows = []
    for v in range(num_videos):
        clip = ShapeClip(
            shape=rng.choice(SHAPES),
            colour=rng.choice(list(COLOURS)),
            direction=rng.choice(list(DIRECTIONS)),
            num_frames=num_frames,
        )
        name = f"videos/clip{v:03d}.mp4"
        write_video(out / name, render_clip(clip), fps=clip.fps)
        questions = [
            ("colour", f"What colour is the {clip.shape}?", clip.colour),
            ("shape", "What shape moves in the video?", clip.shape),
            ("direction", f"In which direction does the {clip.colour} shape move?", clip.direction),
        ]
        for kind, question, answer in questions:
            rows.append(
                {
                    "id": f"clip{v:03d}-{kind}",
                    "video": name,
                    "question": question,
                    "answer": answer,
                    "caption": clip.caption,
                    "source": "mmaip-demo",
                }
            )
    qa = out / "qa.jsonl"
    write_text_atomic(qa, "".join(json.dumps(row) + "\n" for row in rows))
    return qa
