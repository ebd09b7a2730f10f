"""ShapesQA: a synthetic video-QA testbed whose ground truth is known by construction.

Each clip shows one to three coloured shapes (all of different shapes and colours) on a dark grey background, each
in a cell of a 3x3 grid, in one of three kinds of scene:

- ``motion``: one shape moves left, right, up or down along its row or column; the others stay still;
- ``appear``: two or three shapes appear one after another on an empty background, at least two frames apart;
- ``change``: one shape changes colour in the middle third of the clip; the others stay as they are.

Every question is templated and answered by one word of a closed vocabulary (colours, shapes, directions,
one/two/three), so exact match scores it. Splits: ``train``, ``held-out`` (same distribution, no scene in common
with train) and ``ood``: every scene's focus shape (the mover, the first shape to appear, the shape that changes
colour) has a colour–shape combination of :data:`OOD_COMBOS`, which never occurs in train or held-out, and
every question but the count is about such a shape. ``ood_num_frames`` can make ood clips longer as well.
"""

from __future__ import annotations

import itertools
import math
import random
import shutil
from collections import Counter
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw
from pydantic import Field, ValidationError

from mmaip_core.errors import UserError
from mmaip_core.records import Record, VideoQA
from mmaip_core.store.files import write_text_atomic
from mmaip_core.store.jsonl import write_jsonl_atomic
from mmaip_core.testbeds.synthetic import COLOURS, DIRECTIONS, SHAPES, draw_shape, write_video

__all__ = [
    "BACKGROUND",
    "MANIFEST",
    "OOD_COMBOS",
    "SPLITS",
    "QuestionType",
    "Scene",
    "SceneShape",
    "ShapesQAManifest",
    "ShapesQAParams",
    "Split",
    "SplitCounts",
    "make_shapesqa",
    "read_manifest",
    "render_scene",
    "scene_caption",
]

Split = Literal["train", "held-out", "ood"]
SceneKind = Literal["motion", "appear", "change"]
SPLITS: tuple[Split, ...] = ("train", "held-out", "ood")
MANIFEST = "shapesqa.json"
VERSION = 1  # bump whenever the same parameters would produce different files

OOD_COMBOS: frozenset[tuple[str, str]] = frozenset({("red", "triangle"), ("green", "circle"), ("blue", "square")})
"""(colour, shape) combinations kept out of train and held-out: each shape and each colour loses one."""

BACKGROUND = (40, 40, 40)
"""Dark grey: every colour differs from it in brightness, which H.264 keeps at full resolution (colour at half),
so shapes keep their outline in the video; on the demo's mid grey, green has about the background's brightness."""
_NUMBERS = ("zero", "one", "two", "three")
_ROWS = ("top", "middle", "bottom")
_COLUMNS = ("left", "centre", "right")
_CELLS = [(row, col) for row in range(3) for col in range(3)]
_MAX_TRIES = 10_000


class QuestionType(StrEnum):
    COLOUR = "colour"
    SHAPE = "shape"
    COUNT = "count"
    DIRECTION = "direction"
    TEMPORAL = "temporal"


class SceneShape(Record):
    """One shape of a scene, in a cell (row, column) of the 3x3 grid; a moving shape starts there."""

    shape: str
    colour: str
    cell: tuple[int, int]
    moves: str | None = Field(default=None, description="Direction it moves in, across its row or column.")
    appears_at: int = Field(default=0, ge=0, description="First frame it is drawn in.")
    turns: str | None = Field(default=None, description="Colour it turns.")
    turns_at: int | None = Field(default=None, description="First frame in the new colour.")

    def colour_at(self, t: int) -> str | None:
        """Its colour in frame ``t``; None before it appears."""
        if t < self.appears_at:
            return None
        turned = self.turns_at is not None and t >= self.turns_at
        return self.turns if turned and self.turns is not None else self.colour

    def combos(self) -> set[tuple[str, str]]:
        """Every (colour, shape) it shows."""
        return {(colour, self.shape) for colour in (self.colour, self.turns) if colour is not None}

    def end_cell(self) -> tuple[int, int]:
        """The cell it is in in the last frame."""
        if self.moves is None:
            return self.cell
        dx, dy = DIRECTIONS[self.moves]
        row, col = self.cell
        return (row + 2 * dy, col + 2 * dx)


class Scene(Record):
    """Everything drawn in one clip; ``focus`` indexes the shape the scene is about."""

    kind: SceneKind
    num_frames: int
    size: int
    fps: int
    shapes: list[SceneShape]
    focus: int

    def centre(self, shape: SceneShape, t: int) -> tuple[float, float]:
        """(x, y) in pixels of ``shape`` in frame ``t``: cell centres, a mover in between."""
        progress = t / (self.num_frames - 1)
        (row0, col0), (row1, col1) = shape.cell, shape.end_cell()
        cell = self.size / 3
        col, row = col0 + progress * (col1 - col0), row0 + progress * (row1 - row0)
        return (col + 0.5) * cell, (row + 0.5) * cell


class ShapesQAParams(Record):
    """What ``make_shapesqa`` was asked for; equal parameters give the same rows and frames."""

    seed: int
    train: int = Field(ge=0, description="Videos in the train split.")
    held_out: int = Field(ge=0, description="Videos in the held-out split.")
    ood: int = Field(ge=0, description="Videos in the ood split.")
    num_frames: int = Field(ge=8, le=16, description="Frames per clip (train, held-out; ood by default).")
    ood_num_frames: int = Field(ge=8, le=32, description="Frames per ood clip.")
    size: int = Field(ge=32, le=512, description="Width and height of the clips in pixels.")
    fps: int = Field(ge=1, description="Frame rate of the clips.")
    questions_per_video: int = Field(ge=1, le=4, description="Questions per clip, each of a different type.")

    def videos(self, split: Split) -> int:
        return {"train": self.train, "held-out": self.held_out, "ood": self.ood}[split]


class SplitCounts(Record):
    videos: int
    questions: int
    question_types: dict[str, int]


class ShapesQAManifest(Record):
    """``shapesqa.json``: the parameters and what was written."""

    version: int
    params: ShapesQAParams
    ood_combos: list[tuple[str, str]]
    splits: dict[str, SplitCounts]


class _Question(NamedTuple):
    type: QuestionType
    text: str
    answer: str
    subject: SceneShape | None  # the shape it asks about; None for a question about the whole scene


def render_scene(scene: Scene) -> NDArray[np.uint8]:
    """The scene's frames as an array (num_frames, size, size, 3); colours are exact (no anti-aliasing)."""
    radius = scene.size / 8
    frames = []
    for t in range(scene.num_frames):
        image = Image.new("RGB", (scene.size, scene.size), BACKGROUND)
        draw = ImageDraw.Draw(image)
        for shape in scene.shapes:
            colour = shape.colour_at(t)
            if colour is not None:
                draw_shape(draw, shape.shape, *scene.centre(shape, t), radius, COLOURS[colour])
        frames.append(np.asarray(image))
    return np.stack(frames)


def _place(cell: tuple[int, int]) -> str:
    row, col = cell
    return "centre" if cell == (1, 1) else f"{_ROWS[row]} {_COLUMNS[col]}"


def _describe(shape: SceneShape, fps: int) -> str:
    name = f"A {shape.colour} {shape.shape}"
    if shape.moves is not None:
        return f"{name} moves {shape.moves} from the {_place(shape.cell)} to the {_place(shape.end_cell())}."
    if shape.appears_at > 0:
        return f"{name} appears at the {_place(shape.cell)} after {shape.appears_at / fps:.1f} seconds."
    if shape.turns is not None and shape.turns_at is not None:
        return f"{name} at the {_place(shape.cell)} turns {shape.turns} after {shape.turns_at / fps:.1f} seconds."
    return f"{name} stays still at the {_place(shape.cell)}."


def scene_caption(scene: Scene) -> str:
    """Plain English description of everything in the clip, events in the order they happen."""
    events = [_describe(s, scene.fps) for s in sorted(scene.shapes, key=lambda s: s.appears_at)]
    if all(s.appears_at > 0 for s in scene.shapes):
        events.insert(0, "At first the frame is empty.")
    n = len(scene.shapes)
    end = "There is one shape" if n == 1 else f"There are {_NUMBERS[n]} shapes"
    seconds = scene.num_frames / scene.fps
    return " ".join([*events, f"{end} at the end; the clip lasts {seconds:.1f} seconds on a dark grey background."])


_KINDS: tuple[SceneKind, ...] = ("motion", "appear", "change")
_Layout = tuple[list[dict[str, Any]], int]  # per-shape fields (cell, motion, timing) and the focus index


def _motion(rng: random.Random, n: int) -> _Layout:
    """The first shape crosses its row or column; the others stay in cells off its lane."""
    direction = rng.choice(list(DIRECTIONS))
    lane = rng.randrange(3)
    dx, dy = DIRECTIONS[direction]
    start = (lane, 0 if dx > 0 else 2) if dx else (0 if dy > 0 else 2, lane)
    free = [cell for cell in _CELLS if (cell[0] if dx else cell[1]) != lane]
    return [{"cell": start, "moves": direction}, *({"cell": c} for c in rng.sample(free, n - 1))], 0


def _appear_frames(rng: random.Random, count: int, num_frames: int) -> list[int]:
    """``count`` frames after the first and before the last, far enough apart that any 8 evenly spaced frames
    (the default frame policy) show the order: a frame of those 8 falls in every stretch of ``gap`` frames."""
    gap = max(2, math.ceil((num_frames - 1) / 7))
    while True:  # always satisfiable for 8 <= num_frames <= 32 and count <= 3
        frames = sorted(rng.sample(range(1, num_frames - 1), count))
        if all(b - a >= gap for a, b in itertools.pairwise(frames)):
            return frames


def _appear(rng: random.Random, n: int, num_frames: int) -> _Layout:
    """The shapes appear one after another on an empty background; the first to appear is the focus."""
    frames, cells = _appear_frames(rng, n, num_frames), rng.sample(_CELLS, n)
    return [{"cell": c, "appears_at": f} for c, f in zip(cells, frames, strict=True)], 0


def _change(rng: random.Random, n: int, num_frames: int, new_colour: str) -> _Layout:
    """The first shape turns ``new_colour`` in the middle third of the clip."""
    cells = rng.sample(_CELLS, n)
    turn = {"turns": new_colour, "turns_at": rng.randint(num_frames // 3, 2 * num_frames // 3)}
    return [{"cell": cells[0], **turn}, *({"cell": c} for c in cells[1:])], 0


def _sample_scene(rng: random.Random, kind: SceneKind, num_frames: int, size: int, fps: int) -> Scene:
    n = rng.randint(2 if kind == "appear" else 1, 3)
    names = rng.sample(SHAPES, n)
    colours = rng.sample(list(COLOURS), n + 1)  # the spare one is the colour a shape may turn
    if kind == "motion":
        layout, focus = _motion(rng, n)
    elif kind == "appear":
        layout, focus = _appear(rng, n, num_frames)
    else:
        layout, focus = _change(rng, n, num_frames, colours[n])
    shapes = [SceneShape(shape=s, colour=c, **fields) for s, c, fields in zip(names, colours, layout, strict=False)]
    return Scene(kind=kind, num_frames=num_frames, size=size, fps=fps, shapes=shapes, focus=focus)


def _in_split(scene: Scene, split: Split) -> bool:
    """ood: the focus shape shows a held-out combination; train and held-out: no shape does."""
    if split == "ood":
        return bool(scene.shapes[scene.focus].combos() & OOD_COMBOS)
    return not any(shape.combos() & OOD_COMBOS for shape in scene.shapes)


def _new_scene(rng: random.Random, split: Split, params: ShapesQAParams, seen: set[str]) -> Scene:
    """A scene of ``split`` not in ``seen`` (scenes of every split so far), added to it; kinds equally likely."""
    num_frames = params.ood_num_frames if split == "ood" else params.num_frames
    kind = rng.choice(_KINDS)
    for _ in range(_MAX_TRIES):
        scene = _sample_scene(rng, kind, num_frames, params.size, params.fps)
        key = scene.model_dump_json()
        if key not in seen and _in_split(scene, split):
            seen.add(key)
            return scene
    raise UserError(f"no new {split} scene found in {_MAX_TRIES} tries: ask for fewer videos")


def _candidates(scene: Scene) -> list[_Question]:
    """Every question the scene answers unambiguously."""
    shapes, focus = scene.shapes, scene.shapes[scene.focus]
    questions = [_Question(QuestionType.COUNT, "How many shapes are there at the end?", _NUMBERS[len(shapes)], None)]
    for s in shapes:
        if s.turns is None:
            questions.append(_Question(QuestionType.COLOUR, f"What colour is the {s.shape}?", s.colour, s))
            questions.append(_Question(QuestionType.SHAPE, f"What shape is {s.colour}?", s.shape, s))
    if focus.moves is not None:
        direction = f"In which direction does the {focus.colour} {focus.shape} move?"
        questions.append(_Question(QuestionType.DIRECTION, direction, focus.moves, focus))
        questions.append(_Question(QuestionType.SHAPE, "What shape moves?", focus.shape, focus))
    if focus.turns is not None:
        turn, start = f"What colour does the {focus.shape} turn?", f"What colour is the {focus.shape} at the start?"
        questions.append(_Question(QuestionType.TEMPORAL, turn, focus.turns, focus))
        questions.append(_Question(QuestionType.COLOUR, start, focus.colour, focus))
        questions.append(_Question(QuestionType.SHAPE, "What shape changes colour?", focus.shape, focus))
    appearing = sorted((s for s in shapes if s.appears_at > 0), key=lambda s: s.appears_at)
    if appearing:
        first, last = appearing[0], appearing[-1]
        questions.append(_Question(QuestionType.TEMPORAL, "Which shape appears first?", first.shape, first))
        questions.append(_Question(QuestionType.TEMPORAL, "Which shape appears last?", last.shape, last))
    return questions


def _pick(rng: random.Random, scene: Scene, split: Split, count: int) -> list[_Question]:
    """``count`` questions of different types: the scene's key type (direction or temporal), then random ones.

    In ood, only questions about a shape with a held-out combination, or about the whole scene (count).
    """
    by_type: dict[QuestionType, list[_Question]] = {}
    for q in _candidates(scene):
        if split != "ood" or q.subject is None or q.subject.combos() & OOD_COMBOS:
            by_type.setdefault(q.type, []).append(q)
    key = QuestionType.DIRECTION if scene.kind == "motion" else QuestionType.TEMPORAL
    others = [t for t in by_type if t != key]
    types = [key, *rng.sample(others, min(count - 1, len(others)))]
    return [rng.choice(by_type[t]) for t in types]


def _rows(scene: Scene, questions: list[_Question], split: Split, video_id: str, video: str) -> list[VideoQA]:
    caption, description = scene_caption(scene), scene.model_dump(mode="json")
    return [
        VideoQA(
            id=f"{video_id}-{q.type}",
            video=video,
            question=q.text,
            answer=q.answer,
            caption=caption,
            source="shapesqa",
            metadata={"question_type": q.type.value, "split": split, "scene": description},
        )
        for q in questions
    ]


def _write_split(out: Path, split: Split, params: ShapesQAParams, seen: set[str]) -> SplitCounts:
    """The split's videos (its folder emptied first) and ``<split>.jsonl``."""
    shutil.rmtree(out / "videos" / split, ignore_errors=True)
    rng = random.Random(f"shapesqa:{params.seed}:{split}")
    videos = params.videos(split)
    rows: list[VideoQA] = []
    for v in range(videos):
        scene = _new_scene(rng, split, params, seen)
        video_id = f"{split}-{v:04d}"
        video = f"videos/{split}/{video_id}.mp4"
        write_video(out / video, render_scene(scene), fps=params.fps)
        rows += _rows(scene, _pick(rng, scene, split, params.questions_per_video), split, video_id, video)
    write_jsonl_atomic(out / f"{split}.jsonl", rows)
    types = Counter(str(row.metadata["question_type"]) for row in rows)
    return SplitCounts(videos=videos, questions=len(rows), question_types=dict(sorted(types.items())))


def read_manifest(out: str | Path) -> ShapesQAManifest | None:
    """The manifest of a ShapesQA folder; None when it has none or it cannot be read."""
    try:
        return ShapesQAManifest.model_validate_json((Path(out) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValidationError):
        return None


def make_shapesqa(
    out: str | Path,
    *,
    seed: int = 0,
    train: int = 200,
    held_out: int = 60,
    ood: int = 60,
    num_frames: int = 12,
    ood_num_frames: int | None = None,
    size: int = 64,
    fps: int = 8,
    questions_per_video: int = 3,
) -> Path:
    """Write ShapesQA into ``out``: ``videos/<split>/*.mp4``, ``<split>.jsonl`` per split, ``shapesqa.json``.

    Deterministic for a given seed. When ``shapesqa.json`` already records the same parameters, nothing is
    written; otherwise the splits are regenerated. ``ood_num_frames`` defaults to ``num_frames``. Returns ``out``.
    """
    try:
        params = ShapesQAParams(
            seed=seed,
            train=train,
            held_out=held_out,
            ood=ood,
            num_frames=num_frames,
            ood_num_frames=num_frames if ood_num_frames is None else ood_num_frames,
            size=size,
            fps=fps,
            questions_per_video=questions_per_video,
        )
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise UserError(f"make_shapesqa: {problems}") from None
    out = Path(out)
    current = read_manifest(out)
    done = current is not None and current.version == VERSION and current.params == params
    if done and all((out / f"{split}.jsonl").is_file() for split in SPLITS):
        return out
    (out / MANIFEST).unlink(missing_ok=True)
    seen: set[str] = set()
    splits = {split: _write_split(out, split, params, seen) for split in SPLITS}
    manifest = ShapesQAManifest(version=VERSION, params=params, ood_combos=sorted(OOD_COMBOS), splits=splits)
    write_text_atomic(out / MANIFEST, manifest.model_dump_json(indent=2) + "\n")
    return out
