"""The vision-judge and text-judge evaluators against the local server; the offline reference evaluator."""

from __future__ import annotations

from pathlib import Path

import pytest
from api_mock import MockServer

from mmaip_core import EvalRequest, ParseStatus, PluginConfigError, PluginManager, VideoQA
from mmaip_core.analysis.metrics import summarize
from mmaip_core.frames import FrameLoader

FAST = {"backoff_s": 0.01, "max_backoff_s": 0.05, "timeout_s": 0.5}


@pytest.fixture
def requests(loader: FrameLoader, demo_dir: Path) -> list[EvalRequest]:
    video = demo_dir / "videos" / "clip000.mp4"
    frames = loader.load(video)
    sample = VideoQA(id="s1", video=str(video), question="What colour is it?", answer="red", caption="a red box")
    predictions = ["It is red.", "blue", "red, clearly"]
    return [
        EvalRequest(
            sample=sample.model_copy(update={"id": f"s{i}"}), benchmark="demo", model="m", prediction=p, frames=frames
        )
        for i, p in enumerate(predictions)
    ]


def _images(body: dict) -> int:  # type: ignore[type-arg]
    return sum(
        1
        for m in body["messages"]
        if not isinstance(m["content"], str)
        for p in m["content"]
        if p["type"] == "image_url"
    )


def test_vision_judge_sends_exactly_the_configured_frames(
    server: MockServer, manager: PluginManager, requests: list[EvalRequest]
) -> None:
    evaluator = manager.create(
        "evaluator", "vision-judge", {"judge": {"name": "openai-judge", "max_frames": 4, **FAST}}
    )
    records = evaluator.evaluate(requests)
    assert [(r.correct, r.score) for r in records] == [(True, 5.0), (False, 1.0), (True, 5.0)]
    assert all(r.frames == requests[0].frames.manifest.key for r in records)
    assert len(requests[0].frames.manifest.indices) > 4 and all(r.judge_frames != r.frames for r in records)
    assert len({r.judge_frames for r in records}) == 1, "the key of the 4 frames the judge saw"
    assert [_images(q["body"]) for q in server.requests] == [4, 4, 4]
    system = server.requests[0]["body"]["messages"][0]["content"]
    assert "Use the frames" in system and "a red box" not in str(server.requests[0]["body"])
    summary = summarize(records)
    assert summary.ratio.value == pytest.approx(2 / 3) and summary.score.value == pytest.approx(11 / 3)


def test_text_judge_sends_no_frames(server: MockServer, manager: PluginManager, requests: list[EvalRequest]) -> None:
    evaluator = manager.create(
        "evaluator", "text-judge", {"judge": {"name": "openai-judge", "structured": False, **FAST}}
    )
    records = evaluator.evaluate(requests)
    assert [r.correct for r in records] == [True, False, True] and all(r.judge_frames is None for r in records)
    assert all(_images(q["body"]) == 0 for q in server.requests)
    assert (
        evaluator.fingerprint
        != manager.create("evaluator", "vision-judge", {"judge": {"name": "openai-judge"}}).fingerprint
    )


def test_malformed_verdicts_are_parse_failures(
    server: MockServer, manager: PluginManager, requests: list[EvalRequest]
) -> None:
    evaluator = manager.create(
        "evaluator", "text-judge", {"judge": {"name": "openai-judge", "model": "garbage", "max_repairs": 1, **FAST}}
    )
    records = evaluator.evaluate(requests)
    assert all(r.status is ParseStatus.PARSE_FAILURE and r.correct is None and r.score is None for r in records)
    assert summarize(records).parse_failures == 3 and summarize(records).n == 0


def test_judge_must_be_a_judge_scorer(manager: PluginManager) -> None:
    with pytest.raises(PluginConfigError, match="unknown key 'task'"):
        manager.create("evaluator", "text-judge", {"judge": {"name": "exact-match"}})


def test_reference_evaluator(manager: PluginManager, requests: list[EvalRequest]) -> None:
    evaluator = manager.create("evaluator", "reference", {"threshold": 0.9})
    records = evaluator.evaluate(
        [
            *requests,
            EvalRequest(sample=VideoQA(id="x", video="v", question="q"), benchmark="demo", model="m", prediction="p"),
        ]
    )
    assert records[0].status is ParseStatus.OK and records[0].score is not None and 0 <= records[0].score <= 5
    assert records[1].score is not None and records[0].score > records[1].score  # "It is red." beats "blue"
    assert records[-1].status is ParseStatus.ERROR


def test_judge_evaluation_costs_are_recorded(
    server: MockServer, manager: PluginManager, demo_dir: Path, tmp_path: Path
) -> None:
    import yaml

    from mmaip_core.config import load_config
    from mmaip_core.stages.evaluate import run_evaluation

    config = tmp_path / "eval.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "frames": {"num_frames": 2, "cache_dir": str(tmp_path / "frames")},
                "benchmarks": [{"name": "demo", "path": str(demo_dir / "qa.jsonl")}],
                "models": [{"name": "mini", "generator": "openai", "model": "gpt-4o-mini", **FAST}],
                "evaluators": [
                    {
                        "name": "vision-judge",
                        "judge": {"name": "openai-judge", "model": "gpt-4o", "max_frames": 2, **FAST},
                    }
                ],
            }
        )
    )
    results = run_evaluation(load_config(config, manager), tmp_path / "eval", manager)
    (row,) = results.metrics
    assert row.metrics.n == 9 and row.metrics.ratio.value == 0.0  # the server echoes questions: never right
    verdict_cost = 9 * (10 + 2 * 85) * 2.5 / 1e6  # prompt tokens of the mock judge at gpt-4o input prices
    assert results.cost_usd > verdict_cost
