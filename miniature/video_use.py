"""Does a model look at the video? Two variants of a ShapesQA split with the same questions and answers but
other frames, evaluated like any benchmark (``jsonl`` reader, ``mmaip evaluate``):

- ``<split>-shuffled.jsonl``: every question gets another video of the same split, by a fixed derangement
  (video ``i`` of the split's order gets the frames of video ``i + 1``, the last one those of the first);
- ``<split>-blank.jsonl``: every question gets one blank clip (the background alone, as many frames, the
  same size and rate as the split's clips).

A model that reads the frames loses accuracy on both; one that answers from each question type's prior does
not. The *video gap* is the accuracy on the real frames minus that on the shuffled ones, question by question
(the sample ids are the split's own), with a bootstrap interval over videos.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mmaip_core.store.files import write_text_atomic
from mmaip_core.testbeds.shapesqa import BACKGROUND, read_manifest
from mmaip_core.testbeds.synthetic import write_video

__all__ = ["BLANK_VIDEO", "FRAME_CONTROLS", "frame_control_benchmarks"]

FRAME_CONTROLS = ("shuffled", "blank")
BLANK_VIDEO = "videos/blank.mp4"


def _blank_clip(data: Path) -> str:
    """The blank clip in ``data`` (written once), as a path relative to ``data``."""
    manifest = read_manifest(data)
    if manifest is None:
        raise FileNotFoundError(f"{data}: no ShapesQA manifest; write the data with make_shapesqa first")
    p = manifest.params
    if not (data / BLANK_VIDEO).is_file():
        frames = np.empty((p.num_frames, p.size, p.size, 3), dtype=np.uint8)
        frames[:] = BACKGROUND
        write_video(data / BLANK_VIDEO, frames, fps=p.fps)
    return BLANK_VIDEO


def frame_control_benchmarks(data: Path, split: str) -> dict[str, Path]:
    """Write ``<split>-shuffled.jsonl`` and ``<split>-blank.jsonl`` into ``data``; return them by control name.
    Each row is the split's row with another ``video`` (and that video's ``caption``); ``frames_of`` names it."""
    rows = [json.loads(line) for line in (data / f"{split}.jsonl").read_text().splitlines() if line.strip()]
    videos = list(dict.fromkeys(row["video"] for row in rows))
    if len(videos) < 2:
        raise ValueError(f"{data / f'{split}.jsonl'}: shuffling frames needs at least 2 videos, found {len(videos)}")
    captions = {row["video"]: row.get("caption") for row in rows}
    other = {video: videos[(i + 1) % len(videos)] for i, video in enumerate(videos)}  # a derangement: a cycle
    blank = _blank_clip(data)
    written = {}
    for control, frames_of in (("shuffled", other), ("blank", dict.fromkeys(videos, blank))):
        path = data / f"{split}-{control}.jsonl"
        lines = (
            {**row, "video": frames_of[row["video"]], "caption": captions.get(frames_of[row["video"]])}
            | {"frames_of": frames_of[row["video"]]}
            for row in rows
        )
        write_text_atomic(path, "".join(json.dumps(line) + "\n" for line in lines))
        written[control] = path
    return written
