"""VCGBench's consistency criterion: the reader keeps the second phrasing of a question (``Q2`` of
``consistency_qa.json``), the evaluation asks every model both phrasings (each answer cached by its question), and
the judge gets both answers in the official prompt (through the local server, which echoes questions and scores
two identical answers 4.8, others 1.2)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import scripted_plugins
import yaml
from api_mock import MockServer

from mmaip_core import (
    ErrorInfo,
    EvalRecord,
    GenerationRequest,
    ParseStatus,
    PluginManager,
    Response,
    ScoreScale,
    VideoQA,
)
from mmaip_core.config import load_config
from mmaip_core.stages.drift import rejudge
from mmaip_core.stages.evaluate import run_evaluation
from mmaip_core.store.jsonl import read_jsonl
from mmaip_plugins.judging import JudgeOptions, build_prompt
from mmaip_plugins.judging.protocols import protocol

FAST = {"backoff_s": 0.01, "max_backoff_s": 0.05, "timeout_s": 5}
ROWS = [
    {
        "Q1": "What colour is the square?",
        "Q2": "Which colour does the square have?",
        "A": "yellow",
        "video_name": "clip000",
    },
    {"Q1": "What moves?", "Q2": "What moves?", "A": "a square", "video_name": "clip000"},
    {"Q": "What shape moves in the video?", "A": "square", "video_name": "clip001"},  # generic_qa.json's form
]


def test_the_official_prompt_shows_both_answers() -> None:
    options = JudgeOptions(task="verdict", protocol="vcgbench-consistency", scale=ScoreScale(min=0, max=5))
    sample = VideoQA(id="q", question="What happens?", alt_question="What is going on?", answer="A man cooks.")
    system, user = build_prompt(options, sample, "He cooks.", structured=False, second="Cooking.")
    assert system.startswith("You are an intelligent chatbot designed for evaluating the consistency of generative")
    assert "predicted answers for the two questions .Your task is to compare" in system
    # as the script, which fills question2 from sample['Q1']
    expected = (
        "Question 1: What happens?\nQuestion 2: What happens?\nCorrect Answer: A man cooks.\n"
        "Predicted Answer to Question 1: He cooks.\nPredicted Answer to Question 2: Cooking.\n\n"
    )
    assert expected in user and "as a consistency score where the consistency score is an integer" in user
    assert user.endswith("your response should look like this: {''score': 4.8}.")


def _benchmark(demo_dir: Path, tmp_path: Path) -> dict[str, Any]:
    path = tmp_path / "consistency_qa.json"
    path.write_text(json.dumps(ROWS))
    return {
        "name": "consistency",
        "reader": "videochatgpt",
        "question_file": str(path),
        "video_dir": str(demo_dir / "videos"),
    }


def test_the_reader_keeps_the_second_phrasing(manager: PluginManager, demo_dir: Path, tmp_path: Path) -> None:
    options = {k: v for k, v in _benchmark(demo_dir, tmp_path).items() if k not in ("name", "reader")}
    samples = list(manager.create("sample-reader", "videochatgpt", options).read())
    assert all(isinstance(s, VideoQA) for s in samples)
    got = [(s.question, s.alt_question, s.answer, s.metadata) for s in samples if isinstance(s, VideoQA)]
    assert got == [
        ("What colour is the square?", "Which colour does the square have?", "yellow", {}),
        ("What moves?", "What moves?", "a square", {}),
        ("What shape moves in the video?", None, "square", {}),
    ]


def test_each_model_answers_both_phrasings_and_the_judge_compares_them(
    server: MockServer, manager: PluginManager, demo_dir: Path, tmp_path: Path
) -> None:
    path = tmp_path / "eval.yaml"
    judge = {"name": "openai-judge", **FAST}
    path.write_text(
        yaml.safe_dump(
            {
                "frames": {"num_frames": 2, "cache_dir": str(tmp_path / "frames")},
                "benchmarks": [_benchmark(demo_dir, tmp_path)],
                "models": [{"name": "mini", "generator": "openai", "model": "gpt-4o-mini", **FAST}],
                "evaluators": [
                    {"name": "vcgbench-consistency", "judge": judge},
                    {"name": "vcgbench-correctness", "judge": judge},
                ],
            }
        )
    )
    config = load_config(path, manager)
    run_evaluation(config, tmp_path / "eval", manager)
    asked = [r["body"] for r in server.requests if r["body"]["model"] == "gpt-4o-mini"]
    questions = sorted(b["messages"][-1]["content"][-1]["text"] for b in asked)
    assert questions == sorted(
        [
            "What colour is the square?",
            "Which colour does the square have?",
            "What moves?",
            "What shape moves in the video?",
        ]
    ), "both phrasings asked once each; a second phrasing equal to the first shares its answer"
    verdicts = list(read_jsonl(tmp_path / "eval" / "verdicts.jsonl", EvalRecord))
    consistency = {v.question: v for v in verdicts if v.evaluator == "vcgbench-consistency"}
    assert {q: (v.status, v.score) for q, v in consistency.items()} == {
        "What colour is the square?": (ParseStatus.OK, 1.0),
        "What moves?": (ParseStatus.OK, 4.0),
        "What shape moves in the video?": (ParseStatus.ERROR, None),
    }
    assert "no second phrasing" in (consistency["What shape moves in the video?"].rationale or "")
    correctness = [v for v in verdicts if v.evaluator == "vcgbench-correctness"]
    assert [v.status for v in correctness] == [ParseStatus.OK] * 3, "the other criteria judge the first answer"
    judged = [_user(b) for b in server.requests if "consistency" in json.dumps(b["body"]["messages"][0])]
    assert any("Predicted Answer to Question 2: Which colour does the square have? [2 images]" in u for u in judged)

    colour = consistency["What colour is the square?"]
    assert (colour.alt_question, colour.alt_prediction) == (
        "Which colour does the square have?",
        "Which colour does the square have? [2 images]",
    ), "the verdict records both answers"

    server.requests.clear()
    run_evaluation(config, tmp_path / "eval", manager)
    assert server.requests == [], "both answers and every verdict come from the ledger"

    rejudge(config, tmp_path / "eval", tmp_path / "again", manager)
    again = read_jsonl(tmp_path / "again" / "verdicts.jsonl", EvalRecord)
    rejudged = [v for v in again if v.evaluator == "vcgbench-consistency"]
    assert {v.question: v.score for v in rejudged if v.status is ParseStatus.OK} == {
        "What colour is the square?": 1.0,
        "What moves?": 4.0,
    }, "a rejudge gives the judge both answers again, from the verdicts"
    assert all(r["body"]["model"] != "gpt-4o-mini" for r in server.requests), "no model answers again"


def _user(request: dict[str, Any]) -> str:
    return str(next(m["content"] for m in request["body"]["messages"] if m["role"] == "user"))


@pytest.mark.parametrize("criterion", ["correctness", "consistency"])
def test_the_protocols_know_which_compare_two_answers(criterion: str) -> None:
    assert protocol(f"vcgbench-{criterion}").second_answer is (criterion == "consistency")


def test_a_failed_second_answer_is_a_failure_to_answer(
    manager: PluginManager, demo_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manager.register(scripted_plugins, "scripted")  # a second registration is skipped with a warning
    answered = scripted_plugins.ScriptedGenerator.generate

    def generate(self: Any, requests: Sequence[GenerationRequest], *, model: str) -> list[Response]:
        failure = {"text": None, "error": ErrorInfo(error_class="Boom", message="down")}
        responses = answered(self, requests, model=model)
        return [
            r.model_copy(update=failure) if q.sample.question.startswith("Which") else r
            for r, q in zip(responses, requests, strict=True)
        ]

    monkeypatch.setattr(scripted_plugins.ScriptedGenerator, "generate", generate)
    path = tmp_path / "eval.yaml"
    config = {
        "frames": {"num_frames": 2, "cache_dir": str(tmp_path / "frames")},
        "benchmarks": [_benchmark(demo_dir, tmp_path)],
        "models": [{"name": "good", "generator": "scripted"}],
        "evaluators": [{"name": "exact-match"}],
    }
    path.write_text(yaml.safe_dump(config))
    run_evaluation(load_config(path, manager), tmp_path / "eval", manager)
    verdicts = {v.question: v for v in read_jsonl(tmp_path / "eval" / "verdicts.jsonl", EvalRecord)}
    failed = verdicts["What colour is the square?"]
    assert (failed.status, failed.rationale) == (ParseStatus.ERROR, "no answer to the second phrasing: Boom: down")
    assert [verdicts[q].status for q in ("What moves?", "What shape moves in the video?")] == [ParseStatus.OK] * 2
    errors = [json.loads(line) for line in (tmp_path / "eval" / "errors.jsonl").read_text().splitlines()]
    assert [(e["stage"], e["error_class"]) for e in errors] == [("generation", "Boom")]
