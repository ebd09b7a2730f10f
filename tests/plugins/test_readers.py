from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import MMAIP
from PIL import Image

from mmaip_core import PluginManager, RowError, SamplesFileError, UserError, VideoQA
from mmaip_core.frames import FrameLoader, FrameSettings


def _read(manager: PluginManager, reader: str, **options: object) -> list[VideoQA | RowError]:
    return list(manager.create("sample-reader", reader, options).read())


def test_jsonl_demo_rows_resolve_videos(manager: PluginManager, demo_dir: Path) -> None:
    items = _read(manager, "jsonl", path=demo_dir / "qa.jsonl")
    assert len(items) == 9 and all(isinstance(i, VideoQA) for i in items)
    first = items[0]
    assert isinstance(first, VideoQA)
    assert first.id == "clip000-colour" and first.source == "mmaip-demo"
    assert first.video == str(demo_dir / "videos" / "clip000.mp4")
    assert first.answer and first.caption


def test_bad_rows_are_reported_and_the_rest_is_read(manager: PluginManager, demo_dir: Path, tmp_path: Path) -> None:
    video = str(demo_dir / "videos" / "clip000.mp4")
    lines = [
        json.dumps({"id": "ok", "video": video, "question": "q?", "answer": "a", "lang": "en"}),
        "{not json",
        json.dumps(["a", "list"]),
        json.dumps({"id": "novideo", "video": "missing.mp4", "question": "q?"}),
        json.dumps({"id": "noq", "video": video}),
        "",
        json.dumps({"id": "url", "video": "https://example.org/v.mp4", "question": "q?"}),
    ]
    path = tmp_path / "qa.jsonl"
    path.write_text("\n".join(lines) + "\n")
    items = _read(manager, "jsonl", path=path, source="mine")
    ok = [i for i in items if isinstance(i, VideoQA)]
    errors = [str(i) for i in items if isinstance(i, RowError)]
    assert [s.id for s in ok] == ["ok", "url"]
    assert ok[0].metadata == {"lang": "en"} and ok[0].source == "mine"
    assert ok[1].video == "https://example.org/v.mp4"
    assert errors == [
        f"{path} row 2: invalid JSON: Expecting property name enclosed in double quotes",
        f"{path} row 3: not a JSON object",
        f"{path} row 4: video file not found: {tmp_path / 'missing.mp4'}",
        f"{path} row 5: missing column(s) question",
    ]


def test_csv_with_mapped_columns(manager: PluginManager, demo_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "qa.csv"
    path.write_text("clip,ask,truth\nvideos/clip001.mp4,What shape?,circle\nvideos/clip002.mp4,Which way?\n")
    items = _read(
        manager,
        "csv",
        path=path,
        video_root=demo_dir,
        columns={"id": None, "video": "clip", "question": "ask", "answer": "truth", "caption": None},
    )
    assert all(isinstance(i, VideoQA) for i in items)
    assert [(i.id, i.answer) for i in items if isinstance(i, VideoQA)] == [("qa-2", "circle"), ("qa-3", None)]


def _options(reader: str, file: Path) -> dict[str, object]:
    """Options that make ``reader`` read ``file`` as its samples (shapesqa: the split file of its folder)."""
    if reader == "shapesqa":
        return {"path": file.parent, "split": file.stem}
    if reader == "videochatgpt":
        return {"question_file": file, "video_dir": file.parent}
    return {"path": file}


def _file_error(manager: PluginManager, reader: str, **options: object) -> SamplesFileError:
    with pytest.raises(SamplesFileError) as caught:
        _read(manager, reader, **options)
    assert isinstance(caught.value, UserError)
    return caught.value


EVERY_READER = [
    ("jsonl", "qa.jsonl"),
    ("jsonl", "qa.json"),
    ("csv", "qa.csv"),
    ("videochatgpt", "questions.json"),
    ("sharegptvideo", "qa.jsonl"),
    ("shapesqa", "train.jsonl"),
]


@pytest.mark.parametrize(("reader", "name"), EVERY_READER)
def test_a_missing_file_is_an_error(manager: PluginManager, tmp_path: Path, reader: str, name: str) -> None:
    file = tmp_path / name
    error = _file_error(manager, reader, **_options(reader, file))
    assert error.path == str(file) and error.cause.startswith("file not found")
    assert str(error).startswith(f"{file}: file not found")


@pytest.mark.parametrize(("reader", "name"), EVERY_READER)
def test_an_empty_file_is_an_error(manager: PluginManager, tmp_path: Path, reader: str, name: str) -> None:
    file = tmp_path / name
    file.write_bytes(b"")
    error = _file_error(manager, reader, **_options(reader, file))
    assert str(error) == f"{file}: the file is empty (0 bytes)"


@pytest.mark.parametrize(("reader", "name"), [r for r in EVERY_READER if r[0] != "csv"])
def test_a_json_file_without_rows_is_an_error(manager: PluginManager, tmp_path: Path, reader: str, name: str) -> None:
    file = tmp_path / name
    file.write_text("[]\n" if name.endswith(".json") else "\n  \n")
    error = _file_error(manager, reader, **_options(reader, file))
    assert str(error) == f"{file}: no rows"


@pytest.mark.parametrize(("reader", "name"), [r for r in EVERY_READER if r[1].endswith(".json")])
def test_a_json_object_instead_of_rows_is_an_error(
    manager: PluginManager, tmp_path: Path, reader: str, name: str
) -> None:
    file = tmp_path / name
    file.write_text(json.dumps({"video": "a.mp4", "question": "q?"}))
    error = _file_error(manager, reader, **_options(reader, file))
    assert str(error) == f"{file}: holds a JSON object, not a list of rows"


def test_a_json_file_that_does_not_parse_is_an_error(manager: PluginManager, tmp_path: Path) -> None:
    file = tmp_path / "qa.json"
    file.write_text('[{"video": "a.mp4",')
    error = _file_error(manager, "jsonl", path=file)
    assert str(error).startswith(f"{file}: not a JSON file: Expecting")


def test_a_csv_without_the_question_column_is_an_error(manager: PluginManager, tmp_path: Path) -> None:
    file = tmp_path / "qa.csv"
    file.write_text("video,prompt\na.mp4,What?\n")
    error = _file_error(manager, "csv", path=file)
    assert str(error) == f"{file}: no column(s) question in the header row (it has: video, prompt)"
    mapped = _file_error(manager, "csv", path=file, columns={"video": "clip", "question": "ask"})
    assert mapped.cause == "no column(s) clip, ask in the header row (it has: video, prompt)"


def test_a_csv_without_data_rows_is_an_error(manager: PluginManager, tmp_path: Path) -> None:
    file = tmp_path / "qa.csv"
    file.write_text("id,video,question\n")
    error = _file_error(manager, "csv", path=file)
    assert str(error) == f"{file}: no rows"


def test_videochatgpt_missing_answer_file_or_video_folder_is_an_error(manager: PluginManager, tmp_path: Path) -> None:
    questions = tmp_path / "questions.json"
    questions.write_text(json.dumps([{"video_name": "abc", "question": "q?", "question_id": "q1"}]))
    answers = tmp_path / "answers.json"
    error = _file_error(manager, "videochatgpt", question_file=questions, answer_file=answers, video_dir=tmp_path)
    assert str(error) == f"{answers}: file not found"
    error = _file_error(manager, "videochatgpt", question_file=questions, video_dir=tmp_path / "videos")
    assert str(error) == f"{tmp_path / 'videos'}: folder not found"


def test_missing_caption_file_or_video_folder_is_an_error(manager: PluginManager, tmp_path: Path) -> None:
    qa = tmp_path / "qa.jsonl"
    qa.write_text(json.dumps({"id": "a", "video": "v.mp4", "question": "q?"}) + "\n")
    captions = tmp_path / "captions.jsonl"
    error = _file_error(manager, "sharegptvideo", path=qa, caption_file=captions)
    assert str(error) == f"{captions}: file not found"
    error = _file_error(manager, "sharegptvideo", path=qa, video_dir=qa)
    assert str(error) == f"{qa}: not a folder"
    error = _file_error(manager, "jsonl", path=qa, video_root=tmp_path / "videos")
    assert str(error) == f"{tmp_path / 'videos'}: folder not found"


def test_the_cli_prints_a_file_error_as_one_line(tmp_path: Path) -> None:
    import subprocess

    samples = tmp_path / "none.jsonl"
    config = tmp_path / "run.yaml"
    config.write_text(
        f"samples: {{path: {samples}}}\nzoo: [{{name: a, generator: smoke}}]\nscorer: {{name: exact-match}}\n"
    )
    done = subprocess.run(
        [MMAIP, "build", str(config), "--out", str(tmp_path / "run")], capture_output=True, text=True, timeout=120
    )
    assert (done.returncode, done.stderr.strip()) == (2, f"error: {samples}: file not found")


def test_a_file_of_bad_rows_is_read_as_row_errors(manager: PluginManager, tmp_path: Path) -> None:
    file = tmp_path / "qa.jsonl"
    file.write_text("{broken\n[1]\n")
    assert [str(i) for i in _read(manager, "jsonl", path=file)] == [
        f"{file} row 1: invalid JSON: Expecting property name enclosed in double quotes",
        f"{file} row 2: not a JSON object",
    ]


def test_encoding_problems_and_falsy_ids(manager: PluginManager, demo_dir: Path, tmp_path: Path) -> None:
    video = str(demo_dir / "videos" / "clip000.mp4")
    path = tmp_path / "qa.jsonl"
    good = json.dumps({"id": 0, "video": video, "question": "q?"}).encode()
    path.write_bytes(
        b"\xef\xbb\xbf" + good + b"\n" + b'{"id": "x", "question": "\xff"}\n' + good.replace(b"0", b"1", 1) + b"\n"
    )
    items = _read(manager, "jsonl", path=path)
    assert isinstance(items[0], VideoQA) and items[0].id == "0"
    assert isinstance(items[1], RowError) and "not UTF-8 text" in items[1].cause
    assert isinstance(items[2], VideoQA)


def test_csv_with_byte_order_mark(manager: PluginManager, demo_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "qa.csv"
    path.write_text("id,video,question\nfirst,videos/clip000.mp4,What?\n", encoding="utf-8-sig")
    (item,) = _read(manager, "csv", path=path, video_root=demo_dir)
    assert isinstance(item, VideoQA) and item.id == "first"


def test_videochatgpt_layout(manager: PluginManager, demo_dir: Path, tmp_path: Path) -> None:
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "v_abc.mp4").write_bytes((demo_dir / "videos" / "clip000.mp4").read_bytes())
    questions = [
        {"video_name": "abc", "question": "what moves?", "question_id": "q1"},
        {"video_name": "zzz", "question": "what is it?", "question_id": "q2"},
        {"video_name": "abc", "question_id": "q3"},
    ]
    (tmp_path / "test_q.json").write_text(json.dumps(questions))
    (tmp_path / "test_a.json").write_text(json.dumps([{"question_id": "q1", "answer": "a square", "type": 1}]))
    items = _read(
        manager,
        "videochatgpt",
        question_file=tmp_path / "test_q.json",
        answer_file=tmp_path / "test_a.json",
        video_dir=videos,
        video_prefix="v_",
        source="activitynet-qa",
    )
    ok, bad = [i for i in items if isinstance(i, VideoQA)], [str(i) for i in items if isinstance(i, RowError)]
    assert [(s.id, s.answer, s.video, s.source) for s in ok] == [
        ("q1", "a square", str(videos / "v_abc.mp4"), "activitynet-qa")
    ]
    assert "no video for 'zzz'" in bad[0] and "tried v_zzz.mp4, v_zzz.avi" in bad[0]
    assert "missing video_name or question" in bad[1]


def test_sharegptvideo_rows_with_frame_folders_and_captions(manager: PluginManager, tmp_path: Path) -> None:
    from mmaip_core.testbeds.synthetic import ShapeClip, render_clip

    folder = tmp_path / "frames" / "video7671"
    folder.mkdir(parents=True)
    for i, frame in enumerate(render_clip(ShapeClip("circle", "green", "up", num_frames=12, size=64))):
        Image.fromarray(frame).save(folder / f"c01_{i + 1:04d}.jpg")
    rows = [
        {
            "id": "a1",
            "video": "video7671",
            "conversations": [
                {"from": "human", "value": "<video>\nWhat colour is the circle?"},
                {"from": "gpt", "value": "Green."},
            ],
        },
        {"id": "a2", "video": "video7671", "question": "Where does it go?", "answer": "up", "caption": "inline"},
        {"id": "a3", "video": "missing-folder", "question": "q", "answer": "a"},
    ]
    qa = tmp_path / "qa.jsonl"
    qa.write_text("".join(json.dumps(r) + "\n" for r in rows))
    captions = tmp_path / "captions.jsonl"
    captions.write_text(json.dumps({"id": "a1", "caption": "A green circle rises."}) + "\n")
    items = _read(manager, "sharegptvideo", path=qa, video_dir=tmp_path / "frames", caption_file=captions)
    a1, a2, a3 = items
    assert isinstance(a1, VideoQA) and (a1.question, a1.answer, a1.caption) == (
        "What colour is the circle?",
        "Green.",
        "A green circle rises.",
    )
    assert isinstance(a2, VideoQA) and a2.caption == "inline" and a2.source == "sharegptvideo"
    assert isinstance(a3, RowError) and "video file not found" in a3.cause
    frames = FrameLoader(FrameSettings(cache=False), manager).load(a1.video, "uniform", {"num_frames": 4})
    assert frames.manifest.backend == "frames" and frames.manifest.indices == [0, 4, 7, 11]
    assert frames.array.shape == (4, 64, 64, 3) and frames.manifest.source_fps == 1.0


def test_msrvtt_qa_video_id_zero_and_own_question_ids(manager: PluginManager, demo_dir: Path, tmp_path: Path) -> None:
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "video0.mp4").write_bytes((demo_dir / "videos" / "clip000.mp4").read_bytes())
    rows = [{"video_id": 0, "id": 0, "question": "what is a man doing?", "answer": "talk", "category_id": 9}]
    (tmp_path / "test_qa.json").write_text(json.dumps(rows))
    (sample,) = _read(
        manager,
        "videochatgpt",
        question_file=tmp_path / "test_qa.json",
        video_dir=videos,
        video_prefix="video",
        categories=["category_id"],
    )
    assert isinstance(sample, VideoQA) and (sample.id, sample.video) == ("0", str(videos / "video0.mp4"))
    assert sample.answer == "talk" and sample.categories == {"category_id": "9"}


def test_activitynet_qa_answer_type_is_a_category(manager: PluginManager, demo_dir: Path, tmp_path: Path) -> None:
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "v_abc.mp4").write_bytes((demo_dir / "videos" / "clip000.mp4").read_bytes())
    (tmp_path / "test_q.json").write_text(
        json.dumps([{"video_name": "abc", "question": "is it day?", "question_id": "v_abc_1"}])
    )
    (tmp_path / "test_a.json").write_text(json.dumps([{"question_id": "v_abc_1", "answer": "yes", "type": 3}]))
    (sample,) = _read(
        manager,
        "videochatgpt",
        question_file=tmp_path / "test_q.json",
        answer_file=tmp_path / "test_a.json",
        video_dir=videos,
        video_prefix="v_",
    )
    assert isinstance(sample, VideoQA) and (sample.id, sample.answer) == ("v_abc_1", "yes")
    assert sample.categories == {"type": "3"} and sample.metadata["type"] == 3
