"""Multiple-choice benchmarks: readers of the released formats (small fixtures written here in those formats),
the ``multiple-choice`` evaluator's letter extraction and judge fallback, and circular evaluation."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import scripted_plugins
import yaml
from api_mock import MockServer

from mmaip_core import (
    ConfigError,
    EvalRecord,
    EvalRequest,
    ParseStatus,
    PluginConfigError,
    PluginManager,
    RowError,
    SamplesFileError,
    VideoQA,
)
from mmaip_core.analysis.metrics import summarize
from mmaip_core.config import load_config
from mmaip_core.stages.evaluate import run_evaluation
from mmaip_core.store.jsonl import read_jsonl
from mmaip_plugins.evaluators.multiple_choice import extract_letter

FAST = {"backoff_s": 0.01, "max_backoff_s": 0.05, "timeout_s": 0.5}
VIDEOMME_ROWS = [
    {
        "video_id": "001",
        "duration": "short",
        "domain": "Knowledge",
        "sub_category": "Humanity & History",
        "url": "https://www.youtube.com/watch?v=fFjv93ACGo8",
        "videoID": "fFjv93ACGo8",
        "question_id": "001-1",
        "task_type": "Counting Problem",
        "question": "When demonstrating the Germany modern Christmas tree is initially decorated with apples, "
        "candles and berries, which kind of the decoration has the largest number?",
        "options": ["A. Apples.", "B. Candles.", "C. Berries.", "D. The three kinds are of the same number."],
        "answer": "C",
    },
    {
        "video_id": "002",
        "duration": "long",
        "domain": "Sports Competition",
        "sub_category": "Football",
        "url": "https://www.youtube.com/watch?v=missing",
        "videoID": "missing",
        "question_id": "002-1",
        "task_type": "Action Recognition",
        "question": "What happens?",
        "options": ["A. x", "B. y", "C. z", "D. w"],
        "answer": "A",
    },
]


def _read(manager: PluginManager, reader: str, **options: object) -> list[VideoQA | RowError]:
    return list(manager.create("sample-reader", reader, options).read())


def _videos(folder: Path, demo_dir: Path, *names: str) -> Path:
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(demo_dir / "videos" / "clip000.mp4", folder / name)
    return folder


def test_videomme_parquet(manager: PluginManager, demo_dir: Path, tmp_path: Path) -> None:
    videos = _videos(tmp_path / "data", demo_dir, "fFjv93ACGo8.mp4")
    pq.write_table(pa.Table.from_pylist(VIDEOMME_ROWS), tmp_path / "test-00000-of-00001.parquet")
    items = _read(manager, "videomme", path=tmp_path / "test-00000-of-00001.parquet", video_dir=videos)
    sample, missing = items
    assert isinstance(sample, VideoQA) and isinstance(missing, RowError) and "002-1" in missing.cause
    assert (sample.id, sample.answer, sample.video) == ("001-1", "C", str(videos / "fFjv93ACGo8.mp4"))
    assert sample.metadata["options"][0] == "Apples." and sample.source == "video-mme"
    assert sample.categories == {
        "duration": "short",
        "domain": "Knowledge",
        "sub_category": "Humanity & History",
        "task_type": "Counting Problem",
    }
    assert sample.question.endswith(
        "\nA. Apples.\nB. Candles.\nC. Berries.\nD. The three kinds are of the same number.\n"
        "Answer with the option's letter from the given choices directly."
    )


def test_videomme_json_and_a_bad_answer(manager: PluginManager, demo_dir: Path, tmp_path: Path) -> None:
    videos = _videos(tmp_path / "data", demo_dir, "fFjv93ACGo8.mp4")
    rows = [VIDEOMME_ROWS[0], {**VIDEOMME_ROWS[0], "question_id": "001-2", "answer": "E"}]
    (tmp_path / "videomme.json").write_text(json.dumps(rows))
    good, bad = _read(manager, "videomme", path=tmp_path / "videomme.json", video_dir=videos, pre_prompt="Q: ")
    assert isinstance(good, VideoQA) and good.question.startswith("Q: When demonstrating")
    assert isinstance(bad, RowError) and "not one of its 4 options" in bad.cause


def test_mvbench_tasks(manager: PluginManager, demo_dir: Path, tmp_path: Path) -> None:
    videos = _videos(tmp_path / "video", demo_dir, "star/Charades_v1_480/ZS9XR.mp4", "clevrer/video_validation/1.mp4")
    (tmp_path / "json").mkdir()
    (tmp_path / "json" / "action_sequence.json").write_text(
        json.dumps(
            [
                {
                    "video": "ZS9XR.mp4",
                    "question": "What happened after the person took the food?",
                    "candidates": ["Ate the medicine.", "Tidied up the blanket.", "Put down the cup/glass/bottle."],
                    "answer": "Ate the medicine.",
                    "start": 11.1,
                    "end": 19.6,
                }
            ]
        )
    )
    (tmp_path / "json" / "counterfactual_inference.json").write_text(
        json.dumps([{"video": "1.mp4", "question": "Which?", "candidates": ["a", "b"], "answer": "c"}])
    )
    items = _read(
        manager,
        "mvbench",
        path=tmp_path / "json",
        video_dir=videos,
        task_videos={"action_sequence": "star/Charades_v1_480", "counterfactual_inference": "clevrer/video_validation"},
    )
    sample, bad = items
    assert isinstance(sample, VideoQA) and isinstance(bad, RowError) and "not one of the candidates" in bad.cause
    assert (sample.id, sample.answer, sample.categories) == ("action_sequence-1", "A", {"task": "action_sequence"})
    assert sample.metadata["start"] == 11.1 and "\n(A) Ate the medicine.\n(B) " in sample.question
    assert sample.question.startswith("What happened") and sample.question.endswith("Only give the best option.")
    with pytest.raises(SamplesFileError, match=r"no <task>\.json file for tasks nope"):
        _read(manager, "mvbench", path=tmp_path / "json", video_dir=videos, tasks=["nope"])


def test_egoschema_subset(manager: PluginManager, demo_dir: Path, tmp_path: Path) -> None:
    uid = "0074f737-11cb-497d-8d07-77c3a8127391"
    videos = _videos(tmp_path / "videos", demo_dir, f"{uid}.mp4")
    question = {"q_uid": uid, "google_drive_id": "1", "question": "What is C doing?"}
    rows = [
        {**question, **{f"option {i}": f"option text {i}" for i in range(5)}},
        {**question, "q_uid": "not-in-subset", **{f"option {i}": "x" for i in range(5)}},
    ]
    (tmp_path / "questions.json").write_text(json.dumps(rows))
    (tmp_path / "subset_answers.json").write_text(json.dumps({uid: 3}))
    (sample,) = _read(
        manager,
        "egoschema",
        questions=tmp_path / "questions.json",
        answers=tmp_path / "subset_answers.json",
        video_dir=videos,
    )
    assert isinstance(sample, VideoQA) and (sample.id, sample.answer) == (uid, "D")
    assert "\nE. option text 4\n" in sample.question and sample.video == str(videos / f"{uid}.mp4")


def test_nextqa_csv_with_video_map(manager: PluginManager, demo_dir: Path, tmp_path: Path) -> None:
    videos = _videos(tmp_path / "NExTVideo", demo_dir, "1164/3238737531.mp4")
    (tmp_path / "map_vid_vidorID.json").write_text(json.dumps({"3238737531": "1164/3238737531"}))
    header = ["video", "frame_count", "width", "height", "question", "answer", "qid", "type", "a0", "a1", "a2", "a3"]
    with open(tmp_path / "val.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow([*header, "a4"])
        writer.writerow(["3238737531", 1583, 640, 480, "why did the baby fall", 4, 6, "CW", "a", "b", "c", "d", "e"])
        writer.writerow(["3238737531", 1583, 640, 480, "what is next", 9, 7, "TN", "a", "b", "c", "d", "e"])
    sample, bad = _read(
        manager, "nextqa", path=tmp_path / "val.csv", video_dir=videos, video_map=tmp_path / "map_vid_vidorID.json"
    )
    assert isinstance(sample, VideoQA) and (sample.id, sample.answer) == ("3238737531_6", "E")
    assert sample.categories == {"type": "CW", "family": "causal"}
    assert sample.question == "why did the baby fall\nA. a\nB. b\nC. c\nD. d\nE. e"
    assert isinstance(bad, RowError) and "not one of its 5 options" in bad.cause
    with pytest.raises(PluginConfigError, match=r"only \{letter\} and \{option\}"):
        manager.create("sample-reader", "nextqa", {"path": "x.csv", "video_dir": ".", "option_style": "{n}. {option}"})


def test_circular_rotations_share_a_group(manager: PluginManager, demo_dir: Path, tmp_path: Path) -> None:
    videos = _videos(tmp_path / "data", demo_dir, "fFjv93ACGo8.mp4")
    (tmp_path / "v.json").write_text(json.dumps(VIDEOMME_ROWS[:1]))
    items = _read(manager, "videomme", path=tmp_path / "v.json", video_dir=videos, circular=True)
    samples = [i for i in items if isinstance(i, VideoQA)]
    assert [s.id for s in samples] == ["001-1@r0", "001-1@r1", "001-1@r2", "001-1@r3"]
    assert [s.answer for s in samples] == ["C", "B", "A", "D"]  # "Berries." moves up one letter each time
    assert {s.group for s in samples} == {"001-1"}
    assert all(s.metadata["options"][ord(str(s.answer)) - 65] == "Berries." for s in samples)


@pytest.mark.parametrize(
    ("prediction", "letter"),
    [
        ("C", "C"),
        ("(B) Candles.", "B"),
        ("The answer is D.", "D"),
        ("Answer: C", "C"),
        ("The answer is A, the apples.", "A"),  # an answer phrase first
        ("the correct answer is (B)", "B"),
        ("The answer is a bunch of berries", "C"),  # "a" is no letter
        ("berries", "C"),  # no letter: the one option whose text it contains
        ("A lot of apples and candles", None),  # "A" among more than three words may be an article
        ("B or C", None),  # two letters: ambiguous
        ("I cannot tell.", None),
    ],
)
def test_letter_extraction_follows_vlmevalkit(prediction: str, letter: str | None) -> None:
    options = ["Apples.", "Candles.", "Berries", "The three kinds are of the same number."]
    assert extract_letter(prediction, options) == letter


def _requests(sample: VideoQA, *predictions: str) -> list[EvalRequest]:
    return [
        EvalRequest(sample=sample.model_copy(update={"id": f"q{i}"}), benchmark="b", model="m", prediction=p)
        for i, p in enumerate(predictions)
    ]


SAMPLE = VideoQA(
    id="q", video="v.mp4", question="Which?\nA. a cat\nB. a dog\nC. a bird", answer="B", metadata={"question_id": 1}
)


def test_multiple_choice_evaluator_without_judge(manager: PluginManager) -> None:
    evaluator = manager.create("evaluator", "multiple-choice", {})
    records = evaluator.evaluate(_requests(SAMPLE, "B", "(A)", "a dog", "no idea"))
    assert [r.correct for r in records] == [True, False, True, False]
    assert [r.score for r in records] == [1, 0, 1, 0] and records[3].rationale == "no option letter in the prediction"
    strict = manager.create("evaluator", "multiple-choice", {"unmatched": "unreadable"})
    assert strict.fingerprint != evaluator.fingerprint
    (record,) = strict.evaluate(_requests(SAMPLE, "no idea"))
    assert record.status is ParseStatus.PARSE_FAILURE and record.correct is None
    (no_truth,) = evaluator.evaluate(_requests(SAMPLE.model_copy(update={"answer": "a fish"}), "B"))
    assert no_truth.status is ParseStatus.ERROR and no_truth.rationale == "no option is the truth"
    (by_text,) = evaluator.evaluate(_requests(SAMPLE.model_copy(update={"answer": "a dog"}), "B."))
    assert by_text.correct is True


def test_the_judge_maps_predictions_without_a_letter(server: MockServer, manager: PluginManager) -> None:
    evaluator = manager.create(
        "evaluator", "multiple-choice", {"judge": {"name": "openai-judge", "structured": False, **FAST}}
    )
    records = evaluator.evaluate(_requests(SAMPLE, "B", "b. a dog or a cat", "maybe a bird or a cat"))
    assert [r.correct for r in records] == [True, True, False]
    assert len(server.requests) == 2  # the extracted letter needs no judge
    assert "B. a dog" in json.dumps(server.requests[0]["body"])  # the judge compares with the correct option
    assert records[1].model_id is not None and records[1].rationale is not None
    assert records[1].rationale.startswith("no letter; judge:")


def test_circular_evaluation_counts_a_question_once(manager: PluginManager) -> None:
    evaluator = manager.create("evaluator", "multiple-choice", {})
    rotations = [SAMPLE.model_copy(update={"id": f"q@r{k}", "group": "q", "answer": "BAC"[k]}) for k in range(3)] + [
        SAMPLE.model_copy(update={"id": f"p@r{k}", "group": "p", "answer": "BAC"[k]}) for k in range(3)
    ]
    answers = ["B", "A", "C", "B", "A", "B"]  # q right every time, p wrong once
    requests = [
        EvalRequest(sample=s, benchmark="b", model="m", prediction=a) for s, a in zip(rotations, answers, strict=True)
    ]
    records = [
        r.model_copy(update={"group": s.group}) for r, s in zip(evaluator.evaluate(requests), rotations, strict=True)
    ]
    summary = summarize(records)
    assert summary.n == 2 and summary.ratio.value == 0.5


def test_a_circular_benchmark_through_the_evaluation(manager: PluginManager, demo_dir: Path, tmp_path: Path) -> None:
    manager.register(scripted_plugins, "scripted")
    videos = _videos(tmp_path / "data", demo_dir, "fFjv93ACGo8.mp4")
    (tmp_path / "v.json").write_text(json.dumps(VIDEOMME_ROWS[:1]))
    benchmark = {"name": "videomme", "reader": "videomme", "path": str(tmp_path / "v.json"), "video_dir": str(videos)}
    config = tmp_path / "eval.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "frames": {"num_frames": 4, "cache_dir": str(tmp_path / "frames")},
                "benchmarks": [benchmark, {**benchmark, "name": "circular", "circular": True}],
                "models": [{"name": "m", "generator": "scripted", "answers": ["The answer is {truth}."]}],
                "evaluators": [{"name": "multiple-choice"}],
            }
        )
    )
    results = run_evaluation(load_config(config, manager), tmp_path / "eval", manager)
    rows = {r.benchmark: r for r in results.metrics}
    assert (rows["videomme"].metrics.n, rows["circular"].metrics.n) == (1, 1)
    assert rows["circular"].metrics.ratio.value == 1.0
    assert set(rows["circular"].categories) == {"duration", "domain", "sub_category", "task_type"}
    verdicts = list(read_jsonl(tmp_path / "eval" / "verdicts.jsonl", EvalRecord))
    assert [v.group for v in verdicts if v.benchmark == "circular"] == ["001-1"] * 4
    assert verdicts[0].categories["duration"] == "short"


def test_the_judge_section_is_checked_with_the_config(manager: PluginManager, tmp_path: Path) -> None:
    config = tmp_path / "eval.yaml"
    judge = {"name": "openai-judge", "max_framez": 8}
    config.write_text(yaml.safe_dump({"evaluators": [{"name": "multiple-choice", "judge": judge}]}))
    with pytest.raises(ConfigError, match=r"evaluators\.0\.judge\.max_framez"):
        load_config(config, manager)


@pytest.mark.parametrize("name", ["mc", "openqa"])
def test_the_benchmark_configs_of_the_docs_validate(manager: PluginManager, tmp_path: Path, name: str) -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "evaluation.md").read_text()
    (block,) = [b.split("```", 1)[0] for b in docs.split("```yaml\n") if b.startswith(f"# {name}.yaml")]
    (tmp_path / "config.yaml").write_text(block)
    config = load_config(tmp_path / "config.yaml", manager)
    assert config.benchmarks and config.models and config.evaluators
