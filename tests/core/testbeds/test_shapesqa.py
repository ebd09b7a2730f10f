"""ShapesQA: deterministic, correct by construction (checked on the pixels of the written videos), splits
disjoint, ood out of the training combinations, idempotent, and readable through the ``shapesqa`` reader."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from numpy.typing import NDArray

from mmaip_core import PluginManager, UserError, VideoQA
from mmaip_core.config import load_config
from mmaip_core.testbeds.shapesqa import (
    BACKGROUND,
    MANIFEST,
    OOD_COMBOS,
    SPLITS,
    QuestionType,
    Scene,
    make_shapesqa,
    read_manifest,
    render_scene,
)
from mmaip_core.testbeds.synthetic import COLOURS, DIRECTIONS, SHAPES
from mmaip_plugins.matching import normalise
from mmaip_plugins.samplers import uniform_indices

Frames = NDArray[np.uint8]
SMALL = {"train": 12, "held_out": 6, "ood": 6}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_shapesqa(tmp_path_factory.mktemp("shapesqa"), seed=0, **SMALL)


def _rows(root: Path, split: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (root / f"{split}.jsonl").read_text().splitlines()]


def _all_rows(root: Path) -> list[dict[str, Any]]:
    return [row for split in SPLITS for row in _rows(root, split)]


def _decode(path: Path) -> Frames:
    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


# A pixel oracle: answers each question template from frames alone, knowing only the palette. Every pixel
# takes the nearest palette colour, so it reads the decoded videos despite compression.

_NAMES = ["background", *COLOURS]
_PALETTE = np.array([BACKGROUND, *COLOURS.values()], dtype=np.int32)


def _labels(frame: Frames) -> NDArray[np.intp]:
    """For each pixel, the index in _NAMES of the nearest palette colour."""
    return ((frame[..., None, :].astype(np.int32) - _PALETTE) ** 2).sum(axis=-1).argmin(axis=-1)


def _masks(frame: Frames) -> dict[str, NDArray[np.bool_]]:
    """Pixels of each shape colour present in ``frame`` (at least a few of them)."""
    labels = _labels(frame)
    masks = {name: labels == i for i, name in enumerate(_NAMES) if i}
    return {name: mask for name, mask in masks.items() if mask.sum() >= 12}


def _shape(mask: NDArray[np.bool_]) -> str:
    """Square, circle or triangle from how much of its bounding box the blob fills (1, 0.79, 0.5)."""
    ys, xs = np.nonzero(mask)
    fill = mask.sum() / ((np.ptp(ys) + 1) * (np.ptp(xs) + 1))
    return "square" if fill > 0.9 else "circle" if fill > 0.65 else "triangle"


def _centroid(mask: NDArray[np.bool_]) -> NDArray[np.float64]:
    ys, xs = np.nonzero(mask)
    return np.array([xs.mean(), ys.mean()])


def _colour_of(frame: Frames, shape: str) -> str | None:
    return next((c for c, m in _masks(frame).items() if _shape(m) == shape), None)


def _moved(frames: Frames, colour: str) -> str | None:
    first, last = _masks(frames[0]).get(colour), _masks(frames[-1]).get(colour)
    if first is None or last is None:
        return None
    dx, dy = _centroid(last) - _centroid(first)
    if max(abs(dx), abs(dy)) < frames.shape[2] / 6:
        return None
    step = (int(np.sign(dx)), 0) if abs(dx) > abs(dy) else (0, int(np.sign(dy)))
    return next(name for name, d in DIRECTIONS.items() if d == step)


def _appearing(frames: Frames) -> list[str]:
    """Colours absent from the first frame, in the order they first show."""
    start = set(_masks(frames[0]))
    order: list[str] = []
    for frame in frames[1:]:
        order += [c for c in _masks(frame) if c not in start and c not in order]
    return order


def _turned(frames: Frames, shape: str) -> str | None:
    before, after = _colour_of(frames[0], shape), _colour_of(frames[-1], shape)
    return after if before is not None and after != before else None


def _changed(frames: Frames) -> str | None:
    first, last = _masks(frames[0]), _masks(frames[-1])
    gone = [c for c in first if c not in last]
    return _shape(first[gone[0]]) if len(gone) == 1 else None


def _shape_that_moves(frames: Frames) -> str | None:
    movers = [c for c in _masks(frames[0]) if _moved(frames, c)]
    return _shape(_masks(frames[0])[movers[0]]) if len(movers) == 1 else None


def _nth_appearing(frames: Frames, index: int) -> str | None:
    order = _appearing(frames)
    return _shape(_masks(frames[-1])[order[index]]) if order else None


def _direction(frames: Frames, colour: str, shape: str) -> str | None:
    mask = _masks(frames[0]).get(colour)
    return _moved(frames, colour) if mask is not None and _shape(mask) == shape else None


def _shape_of(frames: Frames, colour: str) -> str | None:
    mask = _masks(frames[-1]).get(colour)
    return None if mask is None else _shape(mask)


_ORACLE: list[tuple[str, Callable[..., str | None]]] = [
    (r"What colour is the (\w+) at the start\?", lambda f, s: _colour_of(f[0], s)),
    (r"What colour is the (\w+)\?", lambda f, s: _colour_of(f[-1], s)),
    (r"What shape is (\w+)\?", _shape_of),
    (r"What shape moves\?", _shape_that_moves),
    (r"What shape changes colour\?", _changed),
    (r"How many shapes are there at the end\?", lambda f: ["zero", "one", "two", "three"][len(_masks(f[-1]))]),
    (r"In which direction does the (\w+) (\w+) move\?", _direction),
    (r"Which shape appears first\?", lambda f: _nth_appearing(f, 0)),
    (r"Which shape appears last\?", lambda f: _nth_appearing(f, -1)),
    (r"What colour does the (\w+) turn\?", _turned),
]


def _oracle(question: str, frames: Frames) -> str | None:
    for pattern, answer in _ORACLE:
        if match := re.fullmatch(pattern, question):
            return answer(frames, *match.groups())
    raise AssertionError(f"no oracle for {question!r}")


def _videos(root: Path) -> dict[str, tuple[Scene, str]]:
    """Each video's scene and caption."""
    rows = _all_rows(root)
    return {r["video"]: (Scene.model_validate(r["metadata"]["scene"]), r["caption"]) for r in rows}


def test_videos_show_their_scenes(dataset: Path) -> None:
    for video, (scene, caption) in _videos(dataset).items():
        frames = _decode(dataset / video)
        assert frames.shape == render_scene(scene).shape == (scene.num_frames, 64, 64, 3)
        for t, labels in enumerate(map(_labels, frames)):
            for shape in scene.shapes:  # each shape's colour at its centre, or the background before it appears
                x, y = scene.centre(shape, t)
                assert _NAMES[labels[int(y), int(x)]] == (shape.colour_at(t) or "background"), (video, t)
        assert len(_masks(frames[-1])) == len(scene.shapes)
        assert all(f"{s.colour} {s.shape}" in caption for s in scene.shapes)


def test_every_answer_is_what_the_video_shows(dataset: Path) -> None:
    rows = _all_rows(dataset)
    assert {row["metadata"]["question_type"] for row in rows} == set(QuestionType)
    videos = {video: _decode(dataset / video) for video in _videos(dataset)}
    for row in rows:
        assert _oracle(row["question"], videos[row["video"]]) == row["answer"], row["id"]
        rendered = render_scene(Scene.model_validate(row["metadata"]["scene"]))
        assert _oracle(row["question"], rendered) == row["answer"], row["id"]
        eight = rendered[uniform_indices(len(rendered), 8)]  # what the default frame policy shows a model
        assert _oracle(row["question"], eight) == row["answer"], row["id"]


def test_temporal_and_direction_answers_need_several_frames(dataset: Path) -> None:
    rows = [r for r in _all_rows(dataset) if r["metadata"]["question_type"] in ("temporal", "direction")]
    assert {r["metadata"]["question_type"] for r in rows} == {"temporal", "direction"}
    for row in rows:
        frames = render_scene(Scene.model_validate(row["metadata"]["scene"]))
        assert _oracle(row["question"], frames) == row["answer"]
        assert all(_oracle(row["question"], frames[t : t + 1]) != row["answer"] for t in range(len(frames))), row["id"]


def test_same_seed_same_dataset_other_seed_other(tmp_path: Path) -> None:
    sizes = {"train": 3, "held_out": 2, "ood": 2}
    a, b = make_shapesqa(tmp_path / "a", seed=7, **sizes), make_shapesqa(tmp_path / "b", seed=7, **sizes)
    other = make_shapesqa(tmp_path / "c", seed=8, **sizes)
    for split in SPLITS:
        assert (a / f"{split}.jsonl").read_text() == (b / f"{split}.jsonl").read_text()
        assert (a / f"{split}.jsonl").read_text() != (other / f"{split}.jsonl").read_text()
    for row_a, row_b in zip(_all_rows(a), _all_rows(b), strict=True):
        scene_a, scene_b = (Scene.model_validate(r["metadata"]["scene"]) for r in (row_a, row_b))
        assert np.array_equal(render_scene(scene_a), render_scene(scene_b))
        # libx264's threads make the bytes vary now and then, never more than compression noise
        assert np.abs(_decode(a / row_a["video"]).astype(int) - _decode(b / row_b["video"])).mean() < 1
    assert read_manifest(a) == read_manifest(b)


def test_splits_are_disjoint_and_counted(dataset: Path) -> None:
    scenes = {split: {json.dumps(r["metadata"]["scene"]) for r in _rows(dataset, split)} for split in SPLITS}
    videos = {split: {r["video"] for r in _rows(dataset, split)} for split in SPLITS}
    assert len(scenes["train"]) == 12 and len(scenes["held-out"]) == 6 and len(scenes["ood"]) == 6
    for i, first in enumerate(SPLITS):
        for second in SPLITS[i + 1 :]:
            assert not scenes[first] & scenes[second] and not videos[first] & videos[second]
    rows = _all_rows(dataset)
    assert len({r["id"] for r in rows}) == len(rows) == 72  # 3 questions per video, of different types
    manifest = read_manifest(dataset)
    assert manifest is not None
    for split in SPLITS:
        counts, split_rows = manifest.splits[split], _rows(dataset, split)
        assert counts.questions == len(split_rows) and counts.videos == len(videos[split])
        assert sum(counts.question_types.values()) == len(split_rows)
        assert all(r["metadata"]["split"] == split and r["source"] == "shapesqa" for r in split_rows)


def _combos(scene: dict[str, Any]) -> set[tuple[str, str]]:
    return {(c, s["shape"]) for s in scene["shapes"] for c in (s["colour"], s["turns"]) if c}


def test_ood_is_out_of_the_training_combinations(dataset: Path) -> None:
    seen = set().union(*(_combos(r["metadata"]["scene"]) for s in ("train", "held-out") for r in _rows(dataset, s)))
    assert seen and not seen & OOD_COMBOS
    for row in _rows(dataset, "ood"):
        scene = row["metadata"]["scene"]
        focus = scene["shapes"][scene["focus"]]
        assert {(c, focus["shape"]) for c in (focus["colour"], focus["turns"]) if c} & OOD_COMBOS
        if row["metadata"]["question_type"] != "count":  # the question is about a held-out combination
            name = next((s for s in SHAPES if s in row["question"]), row["answer"])
            subject = next(s for s in scene["shapes"] if s["shape"] == name)
            assert _combos({"shapes": [subject]}) & OOD_COMBOS, row["id"]


def test_answers_survive_exact_match_normalisation(dataset: Path) -> None:
    vocabulary = {*COLOURS, *SHAPES, *DIRECTIONS, "one", "two", "three"}
    answers = {r["answer"] for r in _all_rows(dataset)}
    assert answers <= vocabulary
    assert all(normalise(answer) == answer for answer in vocabulary)
    assert normalise("Two.") == "two" and normalise("The red circle!") != "red"


def test_rerun_with_same_parameters_writes_nothing(tmp_path: Path) -> None:
    sizes = {"train": 3, "held_out": 1, "ood": 1}
    root = make_shapesqa(tmp_path, seed=1, **sizes)
    stamps = {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}
    make_shapesqa(tmp_path, seed=1, **sizes)
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()} == stamps
    make_shapesqa(tmp_path, seed=1, train=2, held_out=1, ood=1, ood_num_frames=16)
    manifest = read_manifest(tmp_path)
    assert manifest is not None and manifest.params.train == 2 and manifest.params.ood_num_frames == 16
    assert sorted(p.name for p in (root / "videos" / "train").iterdir()) == ["train-0000.mp4", "train-0001.mp4"]
    assert len(_decode(root / "videos" / "ood" / "ood-0000.mp4")) == 16
    assert len(_decode(root / "videos" / "train" / "train-0000.mp4")) == 12
    (root / MANIFEST).write_text("{not json")
    make_shapesqa(tmp_path, seed=1, train=2, held_out=1, ood=1, ood_num_frames=16)
    assert read_manifest(tmp_path) == manifest


def test_bad_parameters_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="num_frames: Input should be greater than or equal to 8"):
        make_shapesqa(tmp_path, num_frames=4)


def test_reader_yields_samples_with_resolved_videos(manager: PluginManager, dataset: Path) -> None:
    items = list(manager.create("sample-reader", "shapesqa", {"path": dataset, "split": "held-out"}).read())
    assert all(isinstance(i, VideoQA) for i in items) and len(items) == 18
    first = items[0]
    assert isinstance(first, VideoQA)
    assert first.id == "held-out-0000-" + first.metadata["question_type"] and first.source == "shapesqa"
    assert first.video == str(dataset / "videos" / "held-out" / "held-out-0000.mp4") and Path(first.video).is_file()
    assert first.answer and first.caption and first.metadata["split"] == "held-out"
    options = {"path": dataset, "split": "train", "question_types": ["count", "temporal"], "limit": 3}
    picked = list(manager.create("sample-reader", "shapesqa", options).read())
    assert len(picked) == 3
    assert all(isinstance(i, VideoQA) and i.metadata["question_type"] in ("count", "temporal") for i in picked)


def test_reader_reports_bad_rows_and_missing_splits(manager: PluginManager, dataset: Path, tmp_path: Path) -> None:
    rows = _rows(dataset, "ood")[:2]
    gone, extra = {**rows[1], "video": "videos/ood/gone.mp4"}, {**rows[1], "row": 1}
    lines = [json.dumps(rows[0]), "{broken", json.dumps(gone), json.dumps(extra), json.dumps({**rows[1], "answer": 2})]
    (tmp_path / "ood.jsonl").write_text("\n".join(lines) + "\n")
    (tmp_path / "videos").symlink_to(dataset / "videos")
    items = list(manager.create("sample-reader", "shapesqa", {"path": tmp_path, "split": "ood"}).read())
    file = tmp_path / "ood.jsonl"
    assert isinstance(items[0], VideoQA)
    assert [str(i) for i in items[1:]] == [
        f"{file} row 2: invalid JSON: Expecting property name enclosed in double quotes",
        f"{file} row 3: video file not found: {tmp_path / 'videos' / 'ood' / 'gone.mp4'}",
        f"{file} row 4: unknown field(s) row",
        f"{file} row 5: answer: Input should be a valid string",
    ]
    with pytest.raises(UserError, match=re.escape(f"{tmp_path / 'train.jsonl'}: file not found")):
        list(manager.create("sample-reader", "shapesqa", {"path": tmp_path, "split": "train"}).read())


def test_config_route(manager: PluginManager, dataset: Path, tmp_path: Path) -> None:
    (tmp_path / "data").symlink_to(dataset)
    path = tmp_path / "run.yaml"
    path.write_text("samples: {reader: shapesqa, path: data, split: held-out, question_types: [colour]}\n")
    config = load_config(path, manager)
    assert config.samples is not None and config.samples.options["path"] == str(tmp_path.resolve() / "data")
    items = list(manager.create("sample-reader", config.samples.plugin, config.samples.options).read())
    assert items and all(isinstance(i, VideoQA) and i.metadata["question_type"] == "colour" for i in items)
    path.write_text("samples: {reader: shapesqa, path: data, split: test}\n")
    with pytest.raises(UserError, match="split"):
        load_config(path, manager)
