"""Video-ChatGPT's generative benchmark (VCGBench) criteria as evaluators: the official prompts, score-only
replies read as the scripts read them, and an evaluation with all four criteria through the local server."""

from __future__ import annotations

from pathlib import Path

import pytest
import scripted_plugins
import yaml
from api_mock import MockServer

from mmaip_core import EvalRecord, ParseStatus, PluginManager, ScoreScale, VideoQA
from mmaip_core.config import load_config
from mmaip_core.stages.evaluate import run_evaluation
from mmaip_core.store.jsonl import read_jsonl
from mmaip_plugins.judging import JudgeOptions, build_prompt, parse_reply

FAST = {"backoff_s": 0.01, "max_backoff_s": 0.05, "timeout_s": 5}
CRITERIA = ["correctness", "detail", "context", "temporal"]


@pytest.mark.parametrize(
    ("criterion", "system_start", "user_part"),
    [
        ("correctness", "evaluating the factual accuracy", "as a factual accuracy score where the factual accuracy"),
        ("detail", "evaluating the detail orientation", "with 5 indicating the highest level of detail orientation"),
        ("context", "evaluating the contextual understanding", "its value is contextual understanding score in"),
        ("temporal", "evaluating the temporal understanding", "with 5 indicating the highest level of temporal con"),
    ],
)
def test_each_criterion_asks_its_official_prompt(criterion: str, system_start: str, user_part: str) -> None:
    options = JudgeOptions(task="verdict", protocol=f"vcgbench-{criterion}", scale=ScoreScale(min=0, max=5))
    sample = VideoQA(id="q", question="What happens?", answer="A man cooks.")
    system, user = build_prompt(options, sample, "Someone cooks pasta.", structured=False)
    assert system.startswith(f"You are an intelligent chatbot designed for {system_start} of generative outputs")
    assert "Correct Answer: A man cooks.\nPredicted Answer: Someone cooks pasta.\n\n" in user and user_part in user
    assert user.endswith("your response should look like this: {''score': 4.8}.")


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("{'score': 4.8}", (ParseStatus.OK, 4.0)),
        ("{'score': 2}", (ParseStatus.OK, 2.0)),
        ('{"score": "3"}', (ParseStatus.OK, 3.0)),
        ("{'score': 6}", (ParseStatus.OUT_OF_RANGE, None)),
        ("```\n{'score': 4}\n```", (ParseStatus.PARSE_FAILURE, None)),
        ("Score: 4", (ParseStatus.PARSE_FAILURE, None)),
    ],
)
def test_score_only_replies_keep_the_integer_part(reply: str, expected: tuple[ParseStatus, float | None]) -> None:
    options = JudgeOptions(task="verdict", protocol="vcgbench-detail", scale=ScoreScale(min=0, max=5))
    parsed = parse_reply(reply, options, structured=False)
    assert (parsed.status, parsed.score) == expected


def test_the_four_criteria_side_by_side(
    server: MockServer, manager: PluginManager, demo_dir: Path, tmp_path: Path
) -> None:
    manager.register(scripted_plugins, "scripted")
    path = tmp_path / "eval.yaml"
    evaluators = [{"name": f"vcgbench-{c}", "judge": {"name": "openai-judge", **FAST}} for c in CRITERIA]
    path.write_text(
        yaml.safe_dump(
            {
                "frames": {"num_frames": 2, "cache_dir": str(tmp_path / "frames")},
                "benchmarks": [{"name": "demo", "path": str(demo_dir / "qa.jsonl")}],
                "models": [
                    {"name": "good", "generator": "scripted"},
                    {"name": "bad", "generator": "scripted", "model": "bad", "answers": ["no idea"]},
                ],
                "evaluators": evaluators,
            }
        )
    )
    results = run_evaluation(load_config(path, manager), tmp_path / "eval", manager)
    scores = {(m.model, m.evaluator): m.metrics.score.value for m in results.metrics}
    assert scores == {(m, f"vcgbench-{c}"): 4.0 if m == "good" else 1.0 for m in ("good", "bad") for c in CRITERIA}
    verdicts = list(read_jsonl(tmp_path / "eval" / "verdicts.jsonl", EvalRecord))
    assert {v.model_id for v in verdicts} == {"gpt-3.5-turbo"}, "the benchmark's judge model"
    systems = {r["body"]["messages"][0]["content"][:90] for r in server.requests}
    assert len(systems) == 4 and all(not r["body"].get("response_format") for r in server.requests)
