from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from mmaip_core import GenerationRequest, ModelError, PluginManager, VideoQA
from mmaip_core.frames import FrameLoader
from mmaip_plugins.zoo.tiny import build_tiny_model


@pytest.fixture
def requests(loader: FrameLoader, demo_dir: Path) -> list[GenerationRequest]:
    video = demo_dir / "videos" / "clip000.mp4"
    frames = loader.load(video)
    sample = VideoQA(id="clip000-colour", video=str(video), question="What colour is the shape?")
    return [GenerationRequest(id=f"call-{i}", sample=sample, frames=frames, sample_index=i) for i in range(3)]


@pytest.mark.parametrize("family", ["qwen2-vl", "qwen2.5-vl", "qwen3-vl", "llava-onevision", "llava-next-video"])
def test_smoke_models_answer_with_real_processors(
    manager: PluginManager, requests: list[GenerationRequest], tiny_models: Path, family: str
) -> None:
    generator = manager.create("generator", "smoke", {"family": family, "cache_dir": tiny_models})
    responses = generator.generate(requests, model="tiny")
    assert [r.id for r in responses] == ["call-0", "call-1", "call-2"]
    for r in responses:
        assert r.error is None and isinstance(r.text, str)
        assert r.smoke and r.generator == "smoke" and r.model == "tiny"
        assert r.model_id == f"smoke/{family}-seed0-v1"
        assert r.frames == requests[0].frames.manifest.key
        assert r.usage is not None and r.usage.prompt_tokens > 8 and 0 < r.usage.completion_tokens <= 16
        assert r.params["temperature"] == 1.0
    again = manager.create("generator", "smoke", {"family": family, "cache_dir": tiny_models})
    assert [r.text for r in again.generate(requests, model="tiny")] == [r.text for r in responses]


def test_seeds_make_different_models(
    manager: PluginManager, requests: list[GenerationRequest], tiny_models: Path
) -> None:
    greedy = {"temperature": 0, "max_new_tokens": 8}
    texts = [
        manager.create("generator", "smoke", {"seed": s, "cache_dir": tiny_models, "params": greedy})
        .generate(requests[:1], model="m")[0]
        .text
        for s in (0, 1)
    ]
    assert texts[0] != texts[1]


def test_tiny_models_are_built_once(tiny_models: Path) -> None:
    first = build_tiny_model("qwen2-vl", 0, tiny_models)
    stamp = (first / "config.json").stat().st_mtime_ns
    assert build_tiny_model("qwen2-vl", 0, tiny_models) == first
    assert (first / "config.json").stat().st_mtime_ns == stamp
    with pytest.raises(
        ValueError, match=r"choose one of: qwen2-vl, qwen2\.5-vl, qwen3-vl, llava-onevision, llava-next-video"
    ):
        build_tiny_model("gpt", 0, tiny_models)


def test_hf_generator_on_a_local_folder(
    manager: PluginManager, requests: list[GenerationRequest], tiny_models: Path
) -> None:
    folder = build_tiny_model("llava-onevision", 0, tiny_models)
    options = {"model": str(folder), "device": "cpu", "batch_size": 2, "params": {"max_new_tokens": 4}}
    responses = manager.create("generator", "hf", options).generate(requests, model="local")
    assert [r.generator for r in responses] == ["hf"] * 3
    assert not any(r.smoke for r in responses)
    assert len({r.text for r in responses}) == 1  # greedy: same question, same frames, same answer


def test_a_failing_batch_becomes_error_responses(
    manager: PluginManager, requests: list[GenerationRequest], tiny_models: Path
) -> None:
    broken = replace(requests[1], frames=replace(requests[1].frames, array=np.zeros((0, 96, 96, 3), np.uint8)))
    generator = manager.create("generator", "smoke", {"cache_dir": tiny_models, "batch_size": 1})
    responses = generator.generate([requests[0], broken, requests[2]], model="m")
    assert [r.error is None for r in responses] == [True, False, True]
    assert responses[1].text is None and responses[1].error is not None


def test_unknown_hub_model_fails_cleanly_offline(manager: PluginManager, requests: list[GenerationRequest]) -> None:
    generator = manager.create("generator", "hf", {"model": "no-such-org/no-such-model"})
    with pytest.raises(ModelError, match="no-such-org/no-such-model could not be loaded"):
        generator.generate(requests[:1], model="m")


def test_hf_judge_runs_a_local_model_and_never_scores_noise(
    manager: PluginManager, requests: list[GenerationRequest], tiny_models: Path
) -> None:
    from helpers import response

    from mmaip_core import ParseStatus, ScoreRequest

    folder = build_tiny_model("qwen2-vl", 0, tiny_models)
    judge = manager.create(
        "scorer", "hf-judge", {"model": str(folder), "vision": True, "max_repairs": 1, "max_tokens": 16}
    )
    frames = requests[0].frames
    verdicts = judge.score(
        [
            ScoreRequest(requests[0].sample, response("red", "r1"), frames),
            ScoreRequest(requests[0].sample, response(None, "r2"), frames),
        ]
    )
    noise, missing = verdicts
    assert noise.status in (ParseStatus.PARSE_FAILURE, ParseStatus.OUT_OF_RANGE) and noise.score is None
    assert noise.attempts == 2 and noise.raw_reply is not None and noise.frames == frames.manifest.key
    assert noise.usage is not None and noise.usage.prompt_tokens > 36  # the video tokens were in the prompt
    assert missing.status is ParseStatus.ERROR
