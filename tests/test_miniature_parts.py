"""The miniature's parts without models: the frame-control benchmarks and the video gap, the oracle's rejected
answer, the seeds' spread, the paired sign-flip test, and the run's flags."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from helpers import MMAIP

from mmaip_core import AnnotatedResponse, EvalRecord, Judgement, Response
from mmaip_core.testbeds.shapesqa import make_shapesqa
from mmaip_miniature.analysis import video_gap
from mmaip_miniature.pairs import _likeliest_wrong
from mmaip_miniature.stats import paired_test, seed_spread, sign_flip_p
from mmaip_miniature.video_use import BLANK_VIDEO, frame_control_benchmarks


def _verdict(sample: str, video: str, correct: bool, model: str = "m") -> EvalRecord:
    return EvalRecord(
        sample_id=sample,
        video=video,
        benchmark="held-out",
        model=model,
        evaluator="exact-match",
        fingerprint="f",
        question="q",
        prediction="p",
        correct=correct,
        score=5.0 if correct else 0.0,
    )


def test_frame_controls_keep_the_questions_and_move_every_one_to_other_frames(tmp_path: Path) -> None:
    data = make_shapesqa(tmp_path / "data", train=0, held_out=3, ood=0)
    controls = frame_control_benchmarks(data, "held-out")
    real = [json.loads(line) for line in (data / "held-out.jsonl").read_text().splitlines()]
    rows = {c: [json.loads(line) for line in p.read_text().splitlines()] for c, p in controls.items()}
    order = list(dict.fromkeys(r["video"] for r in real))
    for control in ("shuffled", "blank"):
        assert [(r["id"], r["question"], r["answer"]) for r in rows[control]] == [
            (r["id"], r["question"], r["answer"]) for r in real
        ]
    # a fixed derangement: video i gets the frames of video i + 1, the last those of the first
    assert [r["video"] for r in rows["shuffled"]] == [order[(order.index(r["video"]) + 1) % 3] for r in real]
    assert {r["video"] for r in rows["blank"]} == {BLANK_VIDEO} and (data / BLANK_VIDEO).stat().st_size > 0


def test_frame_controls_need_two_videos(tmp_path: Path) -> None:
    data = make_shapesqa(tmp_path / "data", train=0, held_out=1, ood=0)
    with pytest.raises(ValueError, match="at least 2 videos"):
        frame_control_benchmarks(data, "held-out")


def _answer(text: str, score: float, n: int) -> AnnotatedResponse:
    response = Response(id=f"r{n}", sample_id="s", model="weak", model_id="w", generator="hf", params={}, text=text)
    judgement = Judgement(response_id=f"r{n}", sample_id="s", scorer="exact-match", fingerprint="f", score=score)
    return AnnotatedResponse(response=response, judgements=[judgement])


def test_the_oracle_rejects_the_wrong_answer_the_base_gives_most_often() -> None:
    top = 5.0  # exact match: the scale's top is the truth
    lines = [_answer("red", top, 0), _answer("blue", 1.0, 1), _answer("green", 1.0, 2), _answer("green", 1.0, 3)]
    assert _likeliest_wrong(lines) == "green"
    assert _likeliest_wrong([_answer("blue", 1.0, 0), _answer("green", 1.0, 1)]) == "blue"  # a tie: the first
    assert _likeliest_wrong([_answer("red", top, 0)]) is None


def test_seed_spread_is_the_mean_and_sample_sd_of_the_seeds_that_have_a_number() -> None:
    spread = seed_spread({0: 0.5, 1: 0.7, 2: None})
    assert spread.mean == pytest.approx(0.6) and spread.sd == pytest.approx(0.1414, abs=1e-4)
    assert seed_spread({0: 0.5}).sd is None and seed_spread({0: None}).mean is None


def test_sign_flip_p_is_small_for_a_consistent_difference_and_one_for_none() -> None:
    a = [_verdict(f"q{i}", f"v{i}", True) for i in range(12)]
    b = [_verdict(f"q{i}", f"v{i}", False) for i in range(12)]
    p = sign_flip_p(a, b)
    assert p is not None and p < 0.01  # exact: 2 of 4096 sign patterns reach |12|
    assert sign_flip_p(a, a) == 1.0
    assert sign_flip_p(a, []) is None


def test_a_paired_test_pools_the_seeds_question_by_question() -> None:
    a = {s: [_verdict(f"q{i}", f"v{i // 2}", i % 2 == s) for i in range(4)] for s in (0, 1)}
    b = {s: [_verdict(f"q{i}", f"v{i // 2}", False) for i in range(4)] for s in (0, 1, 2)}
    test = paired_test(("(x)", "(y)"), a, b, "held-out")
    assert test.seeds == [0, 1] and test.difference.n == 8  # seed 2 of B has no partner
    assert test.difference.ratio.value == pytest.approx(0.5) and test.p_value is not None


def test_quick_and_full_exclude_each_other(tmp_path: Path) -> None:
    run = subprocess.run(
        [MMAIP, "miniature", "run", "--out", str(tmp_path / "mini"), "--quick", "--full"],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        timeout=120,
    )
    assert run.returncode == 2 and "--quick and --full exclude each other" in run.stderr
    assert not (tmp_path / "mini").exists()


def test_the_video_gap_is_real_frames_minus_each_frame_control() -> None:
    real = [_verdict(f"q{i}", f"v{i}", True) for i in range(4)]
    shuffled = [_verdict(f"q{i}", f"v{(i + 1) % 4}", i == 0) for i in range(4)]
    blank = [_verdict(f"q{i}", "blank", True) for i in range(4)]
    groups = {("m", "held-out"): real, ("m", "held-out-shuffled"): shuffled, ("m", "held-out-blank"): blank}
    gap = video_gap(groups, "m")
    assert gap["shuffled"].n == 4 and gap["shuffled"].ratio.value == pytest.approx(0.75)
    assert gap["blank"].ratio.value == 0.0
