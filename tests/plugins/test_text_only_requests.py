"""Every zoo generator answers a text-only request (``frames`` None): the question alone, no image or video."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from api_mock import MockServer

from mmaip_core import GenerationRequest, PluginManager, VideoQA
from mmaip_core.frames import FrameLoader
from mmaip_plugins.zoo.hf import batches
from mmaip_plugins.zoo.tiny import build_tiny_model

FAST = {"backoff_s": 0.01, "max_backoff_s": 0.05, "timeout_s": 2.0}


def _text_only(index: int = 0) -> GenerationRequest:
    sample = VideoQA(id="t1", question="What is the capital of France?")
    return GenerationRequest(id=f"text-{index}", sample=sample, frames=None, sample_index=index)


@pytest.fixture
def video_request(loader: FrameLoader, demo_dir: Path) -> GenerationRequest:
    video = demo_dir / "videos" / "clip000.mp4"
    sample = VideoQA(id="v1", video=str(video), question="What colour is the shape?")
    return GenerationRequest(id="video-0", sample=sample, frames=loader.load(video))


@pytest.fixture
def api_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[MockServer]:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-text-only")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-text-only")
    with MockServer() as mock:
        monkeypatch.setenv("OPENAI_BASE_URL", mock.url)
        monkeypatch.setenv("ANTHROPIC_BASE_URL", mock.anthropic_url)
        yield mock


def test_openai_sends_the_question_alone(api_server: MockServer, manager: PluginManager) -> None:
    generator = manager.create("generator", "openai", {"model": "gpt-4o-mini", "system_prompt": "Be brief.", **FAST})
    (r,) = generator.generate([_text_only()], model="m")
    assert r.error is None and r.text == "What is the capital of France? [0 images]"
    assert r.frames is None and r.usage is not None and r.usage.image_tokens == 0
    assert generator.estimate(_text_only()).prompt_tokens < 30  # no image tokens planned
    (sent,) = api_server.requests
    system, user = sent["body"]["messages"]
    assert system == {"role": "system", "content": "Be brief."}
    assert user == {"role": "user", "content": "What is the capital of France?"}


def test_anthropic_sends_the_question_alone(api_server: MockServer, manager: PluginManager) -> None:
    generator = manager.create("generator", "anthropic", {"model": "claude-sonnet-4", **FAST})
    (r,) = generator.generate([_text_only()], model="claude")
    assert r.error is None and r.text == "What is the capital of France? [0 images]" and r.frames is None
    assert r.usage is not None and r.usage.image_tokens == 0
    assert generator.estimate(_text_only()).prompt_tokens < 30
    (sent,) = api_server.requests
    assert sent["body"]["messages"] == [{"role": "user", "content": "What is the capital of France?"}]


def test_api_generators_mix_text_only_and_video_requests(
    api_server: MockServer, manager: PluginManager, video_request: GenerationRequest
) -> None:
    generator = manager.create("generator", "openai", {"model": "gpt-4o-mini", "max_frames": 2, **FAST})
    text, video = generator.generate([_text_only(), video_request], model="m")
    assert text.text == "What is the capital of France? [0 images]" and text.frames is None
    assert video_request.frames is not None
    assert video.text == "What colour is the shape? [2 images]" and video.frames == video_request.frames.manifest.key


@pytest.mark.parametrize("family", ["qwen2-vl", "llava-onevision"])
def test_hf_answers_text_only_requests_without_video_input(
    manager: PluginManager, tiny_models: Path, video_request: GenerationRequest, family: str
) -> None:
    folder = build_tiny_model(family, 0, tiny_models)
    options = {"model": str(folder), "device": "cpu", "batch_size": 4, "params": {"max_new_tokens": 4}}
    generator = manager.create("generator", "hf", options)
    mixed = [_text_only(0), _text_only(1), video_request, _text_only(2)]
    responses = generator.generate(mixed, model="local")
    assert [r.id for r in responses] == ["text-0", "text-1", "video-0", "text-2"]
    assert all(r.error is None and isinstance(r.text, str) for r in responses)
    text, video = responses[0], responses[2]
    assert video_request.frames is not None
    assert text.frames is None and video.frames == video_request.frames.manifest.key
    assert text.usage is not None and video.usage is not None
    assert text.usage.prompt_tokens < 40 < video.usage.prompt_tokens  # the video's tokens are in its prompt only
    assert len({r.text for r in responses if r.frames is None}) == 1  # greedy: same question, same answer


def test_hf_prompt_of_a_text_only_request_has_no_visual_token(tiny_models: Path) -> None:
    from transformers import AutoProcessor

    from mmaip_plugins.zoo.hf import chat_prompt

    processor = AutoProcessor.from_pretrained(build_tiny_model("qwen2-vl", 0, tiny_models))
    prompt = chat_prompt(processor, [{"role": "user", "content": "Hi?"}], None)
    assert prompt == "<|im_start|>user\nHi?<|im_end|>\n<|im_start|>assistant\n"


def test_batches_never_mix_text_only_and_video_requests(video_request: GenerationRequest) -> None:
    requests = [_text_only(0), _text_only(1), _text_only(2), video_request, video_request, _text_only(3)]
    assert [[r.id for r in b] for b in batches(requests, 2)] == [
        ["text-0", "text-1"],
        ["text-2"],
        ["video-0", "video-0"],
        ["text-3"],
    ]
