"""The Anthropic generator and judge against the local server (its /v1/messages endpoint)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from api_mock import MockServer
from helpers import response, sample

from mmaip_core import EmptyRunError, GenerationRequest, ParseStatus, PluginManager, ScoreRequest, VideoQA
from mmaip_core.config import load_config
from mmaip_core.frames import FrameLoader
from mmaip_core.stages.build import BuildSummary, run_build

SECRET = "sk-ant-test-DO-NOT-LEAK-42"
FAST = {"backoff_s": 0.01, "max_backoff_s": 0.05, "timeout_s": 0.5}


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[MockServer]:
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    with MockServer() as mock:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", mock.anthropic_url)
        yield mock


@pytest.fixture
def request_(loader: FrameLoader, demo_dir: Path) -> GenerationRequest:
    video = demo_dir / "videos" / "clip000.mp4"
    sample_ = VideoQA(id="s1", video=str(video), question="What colour is it?", answer="red")
    return GenerationRequest(id="k0", sample=sample_, frames=loader.load(video))


def test_generator_sends_image_blocks_and_key(
    server: MockServer, manager: PluginManager, request_: GenerationRequest
) -> None:
    generator = manager.create("generator", "anthropic", {"model": "claude-sonnet-4", "max_frames": 2, **FAST})
    (r,) = generator.generate([request_], model="claude")
    assert r.text == "What colour is it? [2 images]" and r.generator == "anthropic"
    assert r.usage is not None and r.usage.prompt_tokens == 10 + 2 * 85
    (sent,) = server.requests
    headers = sent["headers"]
    assert sent["path"] == "/v1/messages"
    assert SECRET in (headers.get("x-api-key"), headers.get("authorization", "").removeprefix("Bearer "))
    blocks = sent["body"]["messages"][0]["content"]
    assert [b["type"] for b in blocks] == ["image", "image", "text"]
    assert blocks[0]["source"]["media_type"] == "image/jpeg"
    assert sent["body"]["temperature"] == 0.0 and "seed" not in sent["body"]


@pytest.mark.parametrize("model", ["ratelimit-claude", "flaky-claude"])
def test_transient_failures_are_retried(
    server: MockServer, manager: PluginManager, request_: GenerationRequest, model: str
) -> None:
    generator = manager.create("generator", "anthropic", {"model": model, **FAST})
    (r,) = generator.generate([request_], model="claude")
    assert r.error is None and len(server.requests) == (2 if "ratelimit" in model else 3)


def test_judge_structured_text_fallback_and_failures(server: MockServer, manager: PluginManager) -> None:
    judge = manager.create("scorer", "anthropic-judge", FAST)
    (j,) = judge.score([ScoreRequest(sample(), response("red", "r1"))])
    assert (j.status, j.score, j.model_id) == (ParseStatus.OK, 5.0, "claude-sonnet-4-20250514")
    body = server.requests[0]["body"]
    assert body["output_config"]["format"]["type"] == "json_schema" and "judge" in body["system"]
    fallback = manager.create("scorer", "anthropic-judge", {"model": "nojson-claude", **FAST})
    (j,) = fallback.score([ScoreRequest(sample(), response("blue", "r2"))])
    assert j.score == 2.0 and "output_config" not in server.requests[-1]["body"]
    garbage = manager.create("scorer", "anthropic-judge", {"model": "garbage-claude", "max_repairs": 1, **FAST})
    (j,) = garbage.score([ScoreRequest(sample(), response("red", "r3"))])
    assert (j.status, j.score, j.attempts) == (ParseStatus.PARSE_FAILURE, None, 2)


def test_build_with_claude(server: MockServer, manager: PluginManager, demo_dir: Path, tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "samples": {"path": str(demo_dir / "qa.jsonl")},
                "frames": {"num_frames": 2, "cache_dir": str(tmp_path / "frames")},
                "zoo": [
                    {"name": "claude", "generator": "anthropic", "model": "claude-3-5-haiku", **FAST},
                    {
                        "name": "truth",
                        "generator": "smoke",
                        "cache_dir": str(tmp_path / "tiny"),
                        "params": {"temperature": 0, "max_new_tokens": 4},
                    },
                ],
                "scorer": {"name": "anthropic-judge", "model": "claude-sonnet-4", **FAST},
            }
        )
    )
    out = tmp_path / "run"
    summary = run_build(load_config(config, manager), out, manager)
    assert summary.responses["claude"]["done"] == 9 and summary.judgements["ok"] == 18
    assert summary.cost_usd > 0
    assert not [p for p in out.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]


def test_message_batches(server: MockServer, manager: PluginManager, demo_dir: Path, tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "samples": {"path": str(demo_dir / "qa.jsonl")},
                "frames": {"num_frames": 2, "cache_dir": str(tmp_path / "frames")},
                "zoo": [{"name": "claude", "generator": "anthropic", "model": "claude-3-5-haiku", **FAST}],
                "scorer": {
                    "name": "anthropic-judge",
                    "model": "garbage-claude",
                    "batch": True,
                    "batch_poll_s": 0.01,
                    **FAST,
                },
            }
        )
    )
    with pytest.raises(EmptyRunError, match="none of the 9 answers could be scored"):
        run_build(load_config(config, manager), tmp_path / "run", manager)
    summary = BuildSummary.model_validate_json((tmp_path / "run" / "summary.json").read_text())
    assert summary.judgements["parse_failure"] == 9  # unusable replies are recorded, not repaired, in batch mode
    (request,) = [r for r in server.requests if r["path"] == "/v1/messages/batches"]
    params = request["body"]["requests"][0]["params"]
    assert params["temperature"] == 0.0 and params["output_config"]["format"]["type"] == "json_schema"
    assert len(request["body"]["requests"]) == 9
