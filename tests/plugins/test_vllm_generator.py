"""The ``vllm`` generator. What it builds (prompts from the model's chat template, multimodal data, sampling
arguments, responses) is tested through its ``engine`` seam with a recording engine, on a tiny model's real
processor; the last test runs vLLM itself and needs vLLM and a CUDA GPU."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mmaip_core import GenerationRequest, ModelError, PluginManager, UserError, VideoQA
from mmaip_core.frames import FrameLoader
from mmaip_plugins.zoo.tiny import build_tiny_model
from mmaip_plugins.zoo.vllm import Completion, VLLMGenerator, VLLMOptions, engine_args

QWEN = "<|im_start|>user\n{}What colour is the shape?<|im_end|>\n<|im_start|>assistant\n"


class RecordingEngine:
    """An engine for the generator's ``engine`` seam: records every batch and answers each prompt with the
    seed it was given."""

    def __init__(self, fail: Exception | None = None) -> None:
        self.batches: list[tuple[list[dict[str, Any]], list[dict[str, Any]]]] = []
        self.fail = fail

    def generate(self, prompts: Sequence[dict[str, Any]], sampling: Sequence[dict[str, Any]]) -> list[Completion]:
        self.batches.append((list(prompts), list(sampling)))
        if self.fail is not None:
            raise self.fail
        return [Completion(f" seed {s['seed']}\n", len(p["prompt"]), 2) for p, s in zip(prompts, sampling, strict=True)]


@pytest.fixture
def video_request(loader: FrameLoader, demo_dir: Path) -> GenerationRequest:
    video = demo_dir / "videos" / "clip000.mp4"
    sample = VideoQA(id="v1", video=str(video), question="What colour is the shape?")
    return GenerationRequest(id="video-0", sample=sample, frames=loader.load(video))


def _text_only(index: int = 0) -> GenerationRequest:
    sample = VideoQA(id="t1", question="What colour is the shape?")
    return GenerationRequest(id=f"text-{index}", sample=sample, frames=None, sample_index=index)


def _generator(tiny_models: Path, engine: RecordingEngine, **options: Any) -> VLLMGenerator:
    folder = build_tiny_model("qwen2-vl", 0, tiny_models)
    return VLLMGenerator(VLLMOptions(model=str(folder), **options), engine=engine)


def test_one_engine_call_per_batch_with_the_chat_template_and_the_video(
    tiny_models: Path, video_request: GenerationRequest
) -> None:
    engine = RecordingEngine()
    generator = _generator(tiny_models, engine)
    video, text = generator.generate([video_request, _text_only()], model="qwen")
    (batch,) = engine.batches
    (video_prompt, text_prompt), _ = batch
    assert video_request.frames is not None
    assert video_prompt["prompt"] == QWEN.format("<|vision_start|><|video_pad|><|vision_end|>")
    assert video_prompt["multi_modal_data"].keys() == {"video"}
    assert np.array_equal(video_prompt["multi_modal_data"]["video"], video_request.frames.array)
    assert text_prompt == {"prompt": QWEN.format("")}  # text-only: no visual token, no multimodal data
    assert (video.text, video.generator, video.model, video.frames) == (
        "seed 0",
        "vllm",
        "qwen",
        video_request.frames.manifest.key,
    )
    assert text.frames is None and text.error is None
    assert video.usage is not None and video.usage.prompt_tokens == len(video_prompt["prompt"])


def test_frames_as_images(tiny_models: Path, video_request: GenerationRequest) -> None:
    engine = RecordingEngine()
    _generator(tiny_models, engine, video_input="images", system_prompt="Be brief.").generate(
        [video_request], model="m"
    )
    ((prompt,), _) = engine.batches[0]
    frames = video_request.frames
    assert frames is not None
    images = prompt["multi_modal_data"]["image"]
    assert len(images) == len(frames.array)
    assert all(np.array_equal(np.asarray(image), frame) for image, frame in zip(images, frames.array, strict=True))
    assert prompt["prompt"].startswith("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n")
    assert prompt["prompt"].count("<|vision_start|><|image_pad|><|vision_end|>") == len(frames.array)


def test_each_answer_has_its_own_seed_whatever_the_batch(tiny_models: Path, video_request: GenerationRequest) -> None:
    engine = RecordingEngine()
    params = {"temperature": 0.8, "top_p": 0.9, "top_k": 20, "max_new_tokens": 32, "seed": 7}
    generator = _generator(tiny_models, engine, params=params)
    requests = [GenerationRequest(f"k{i}", video_request.sample, video_request.frames, i) for i in range(4)]
    together = generator.generate(requests, model="m")
    alone = generator.generate(requests[2:3], model="m")
    assert [r.text for r in together] == ["seed 7", "seed 8", "seed 9", "seed 10"]
    assert alone[0].text == together[2].text
    first, second = engine.batches
    assert second[1] == [first[1][2]]
    assert first[1][0] == {"temperature": 0.8, "top_p": 0.9, "max_tokens": 32, "seed": 7, "top_k": 20}


def test_the_fingerprint_covers_what_decides_an_answer_only(tiny_models: Path) -> None:
    def fingerprint(**options: Any) -> str:
        return _generator(tiny_models, RecordingEngine(), **options).fingerprint

    base = fingerprint()
    engine_only = [
        {"gpu_memory_utilization": 0.5},
        {"tensor_parallel_size": 2},
        {"max_model_len": 8192},
        {"limit_mm_per_prompt": {"video": 2}},
        {"batch_size": 7},
    ]
    assert {fingerprint(**o) for o in engine_only} == {base}
    answers = [
        {"params": {"temperature": 0.5}},
        {"params": {"seed": 1}},
        {"revision": "v2"},
        {"system_prompt": "Be brief."},
        {"video_input": "images"},
        {"dtype": "bfloat16"},
    ]
    assert len({fingerprint(**o) for o in answers} | {base}) == len(answers) + 1
    assert fingerprint() == base  # stable


def test_engine_arguments() -> None:
    options = VLLMOptions(model="Qwen/Qwen2-VL-2B-Instruct", max_model_len=4096, tensor_parallel_size=2)
    args = engine_args(options)
    assert args["limit_mm_per_prompt"] == {"video": 1}
    assert (args["model"], args["max_model_len"], args["tensor_parallel_size"], args["seed"]) == (
        "Qwen/Qwen2-VL-2B-Instruct",
        4096,
        2,
        0,
    )
    assert engine_args(options.model_copy(update={"video_input": "images"}))["limit_mm_per_prompt"] == {"image": 32}
    custom = options.model_copy(update={"limit_mm_per_prompt": {"image": 64}})
    assert engine_args(custom)["limit_mm_per_prompt"] == {"image": 64}


def test_a_failing_batch_becomes_error_responses(tiny_models: Path, video_request: GenerationRequest) -> None:
    engine = RecordingEngine(fail=ValueError("prompt longer than max_model_len"))
    responses = _generator(tiny_models, engine).generate([video_request, _text_only()], model="m")
    assert [r.text for r in responses] == [None, None]
    assert all(r.error is not None and "max_model_len" in r.error.message for r in responses)


def test_a_model_without_a_processor_stops_with_a_model_error(video_request: GenerationRequest) -> None:
    generator = VLLMGenerator(VLLMOptions(model="no-such-org/no-such-model"), engine=RecordingEngine())
    with pytest.raises(ModelError, match="no-such-org/no-such-model could not be loaded"):
        generator.generate([video_request], model="m")


def test_without_vllm_the_plugin_names_the_extra(manager: PluginManager, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "vllm", None)  # as if it were not installed
    with pytest.raises(UserError, match=r"pip install \"mmaip\[vllm\]\""):
        manager.create("generator", "vllm", {"model": "Qwen/Qwen2-VL-2B-Instruct"})


def _available_offline(model: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return Path(model).is_dir() or isinstance(try_to_load_from_cache(model, "config.json"), str)


def test_vllm_answers_videos_and_text_with_a_real_model(
    manager: PluginManager, video_request: GenerationRequest
) -> None:
    pytest.importorskip("vllm", reason="vLLM is an optional extra (pip install 'mmaip[vllm]')")
    import torch

    if not torch.cuda.is_available():
        pytest.skip("vLLM needs a CUDA GPU")
    model = os.environ.get("MMAIP_VLLM_TEST_MODEL", "Qwen/Qwen2-VL-2B-Instruct")
    if not _available_offline(model):
        pytest.skip(f"{model} is not in the Hugging Face cache (tests run offline); set MMAIP_VLLM_TEST_MODEL")
    options = {
        "model": model,
        "max_model_len": 4096,
        "gpu_memory_utilization": 0.5,
        "params": {"temperature": 0.8, "max_new_tokens": 24, "seed": 1},
    }
    generator = manager.create("generator", "vllm", options)
    requests = [GenerationRequest(f"k{i}", video_request.sample, video_request.frames, i) for i in range(3)]
    requests.append(_text_only())
    first = generator.generate(requests, model="qwen")
    assert all(r.error is None and r.text for r in first), [r.error for r in first]
    assert [r.text for r in generator.generate(requests, model="qwen")] == [r.text for r in first]  # seeded
    video, text = first[0].usage, first[3].usage
    assert video is not None and text is not None
    assert video.prompt_tokens > text.prompt_tokens + 16  # the video's tokens are in its prompt
    assert 0 < video.completion_tokens <= 24 and first[3].frames is None
