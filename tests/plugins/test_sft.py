"""Supervised fine-tuning: answer-only labels against an independent tokenisation, memorisation that the
``hf`` generator reproduces (same prompt format), complete checkpoint folders, determinism, the feature
cache, and over-long samples."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from mmaip_core import VISION_PATTERN, Frames, GenerationRequest, PluginManager, TrainingError, VideoQA, is_complete
from mmaip_core.frames import FrameLoader, FrameSettings
from mmaip_core.train.extrapolate import extrapolate, tensor_files
from mmaip_plugins.trainers.sft import SftOptions, sft
from mmaip_plugins.trainers.video_dpo.config import VideoDpoOptions
from mmaip_plugins.trainers.video_dpo.trainer import VideoDpoTrainer
from mmaip_plugins.zoo.tiny import build_tiny_model

FAMILIES = ["qwen2-vl", "llava-onevision"]


@pytest.fixture(scope="module")
def samples(demo_dir: Path) -> list[VideoQA]:
    """The demo's questions on its first two clips (three each), with absolute video paths."""
    rows = [json.loads(line) for line in (demo_dir / "qa.jsonl").read_text().splitlines()]
    return [VideoQA(**{**row, "video": str(demo_dir / row["video"])}) for row in rows[:6]]


@pytest.fixture(scope="module")
def frames(samples: list[VideoQA], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Frames]:
    settings = FrameSettings(num_frames=4, cache_dir=tmp_path_factory.mktemp("frames"))  # type: ignore[call-arg]
    loader = FrameLoader(settings, PluginManager(env={}))
    return {video: loader.load(video) for video in {s.video for s in samples}}


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return {k: v for shard in set(tensor_files(folder).values()) for k, v in load_file(folder / shard).items()}


def _options(**extra: object) -> SftOptions:
    return SftOptions.model_validate({"device": "cpu", "learning_rate": 1e-2, "warmup_ratio": 0.0, **extra})


@pytest.mark.parametrize("family", FAMILIES)
def test_labels_cover_exactly_the_answer_tokens(
    family: str, samples: list[VideoQA], frames: dict[str, Frames], tiny_models: Path
) -> None:
    """Every example is the hf generator's prompt, then the answer turn; only the answer turn is labelled.
    Checked against the processor run on the whole rendered conversation."""
    from mmaip_plugins.trainers.data import IGNORE_INDEX, VideoLanguageModelingCollator, prepare_answers
    from mmaip_plugins.zoo.hf import chat_messages, chat_prompt, load_pretrained, processor_inputs

    processor, _ = load_pretrained(str(build_tiny_model(family, 0, tiny_models)))
    prepared = prepare_answers(samples, frames, processor, system_prompt="Be brief.", max_length=None)
    assert len(prepared.examples) == len(samples) and not prepared.skipped
    for sample, example in zip(samples, prepared.examples, strict=True):
        video = frames[sample.video]
        messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": sample.question}]
        prompt = chat_prompt(processor, messages, video)
        conversation = chat_messages([*messages, {"role": "assistant", "content": sample.answer}], video)
        full = str(processor.apply_chat_template(conversation, tokenize=False))
        prompt_ids = processor_inputs(processor, [prompt], [video])["input_ids"][0].tolist()
        full_ids = processor_inputs(processor, [full], [video])["input_ids"][0].tolist()
        assert example["input_ids"] == full_ids and full_ids[: len(prompt_ids)] == prompt_ids
        labelled = [i for i, label in enumerate(example["labels"]) if label != IGNORE_INDEX]
        assert labelled == list(range(len(prompt_ids), len(full_ids)))
        answer = processor.tokenizer.decode([example["labels"][i] for i in labelled])
        assert answer == full[len(prompt) :] == f"{sample.answer}<|im_end|>\n"

    collator = VideoLanguageModelingCollator(
        pad_token_id=processor.tokenizer.pad_token_id,
        videos=prepared.videos,
        token_types=prepared.token_types,
        video_token_id=prepared.video_token_id,
    )
    batch = collator(prepared.examples[:3])
    answer_tokens = sum(len(e["labels"]) - e["labels"].count(IGNORE_INDEX) for e in prepared.examples[:3])
    assert int((batch["labels"] != IGNORE_INDEX).sum()) == answer_tokens
    assert "pixel_values_videos" in batch


@pytest.mark.parametrize("family", FAMILIES)
def test_sft_memorises_answers_the_hf_generator_reproduces(
    family: str,
    samples: list[VideoQA],
    frames: dict[str, Frames],
    tiny_models: Path,
    tmp_path: Path,
    manager: PluginManager,
) -> None:
    base = build_tiny_model(family, 0, tiny_models)
    options = _options(max_steps=40, batch_size=6, lr_scheduler_type="constant")
    result = sft(base, samples, frames, tmp_path / "sft", options)
    assert result.steps == len(result.losses) == 40 and result.examples == 6 and result.vision_encodes == 2
    assert result.losses[-1] < result.losses[0] / 10

    assert is_complete(result.out)  # a complete folder: the hf generator, extrapolation and DPO load it
    names = {p.name for p in result.out.iterdir()}
    assert {"config.json", "generation_config.json", "tokenizer.json", "processor_config.json"} <= names
    generator = manager.create(
        "generator", "hf", {"model": str(result.out), "device": "cpu", "params": {"max_new_tokens": 6}}
    )
    requests = [GenerationRequest(id=s.id, sample=s, frames=frames[s.video]) for s in samples]
    answers = [r.text for r in generator.generate(requests, model="sft")]
    # colour and shape questions differ in their text; the direction question reads the same on both clips
    assert sum(a == s.answer for a, s in zip(answers, samples, strict=True)) >= 4, answers

    before, after = _weights(base), _weights(result.out)
    assert before.keys() == after.keys()
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    assert changed and not any(VISION_PATTERN.search(name) for name in changed)  # the tower was frozen
    assert is_complete(extrapolate(result.out, base, 0.5, tmp_path / "strong").out)
    VideoDpoTrainer(VideoDpoOptions(model=str(result.out))).save_base(tmp_path / "dpo-base")
    assert is_complete(tmp_path / "dpo-base")


def test_same_seed_same_weights_and_cached_features(
    samples: list[VideoQA], frames: dict[str, Frames], tiny_models: Path, tmp_path: Path
) -> None:
    base = build_tiny_model("qwen2-vl", 0, tiny_models)
    options = _options(max_steps=3, batch_size=2, cache_dir=tmp_path / "cache")
    first = sft(base, samples, frames, tmp_path / "a", options)
    again = sft(base, samples, frames, tmp_path / "b", options)
    other = sft(base, samples, frames, tmp_path / "c", options.model_copy(update={"seed": 1}))
    assert (first.vision_encodes, again.vision_encodes, other.vision_encodes) == (2, 0, 0)  # encoded once
    a, b, c = _weights(first.out), _weights(again.out), _weights(other.out)
    assert all(torch.equal(a[name], b[name]) for name in a) and first.losses == again.losses
    assert any(not torch.equal(a[name], c[name]) for name in a)  # another seed, another order


def test_over_long_samples_are_reported_never_cut(
    samples: list[VideoQA], frames: dict[str, Frames], tiny_models: Path, tmp_path: Path
) -> None:
    from mmaip_plugins.trainers.data import prepare_answers
    from mmaip_plugins.zoo.hf import load_pretrained

    base = build_tiny_model("qwen2-vl", 0, tiny_models)
    processor, _ = load_pretrained(str(base))
    prepared = prepare_answers(samples, frames, processor, system_prompt=None, max_length=None)
    lengths = {e["id"]: len(e["input_ids"]) for e in prepared.examples}
    limit = sorted(lengths.values())[2]
    no_answer = VideoQA(id="open", video=samples[0].video, question="What happens?")
    options = _options(max_steps=1, max_length=limit, freeze_vision=False)
    result = sft(base, [*samples, no_answer], frames, tmp_path / "out", options)
    too_long = {e.item for e in result.skipped if e.error_class == "TooLong"}
    assert too_long == {i for i, n in lengths.items() if n > limit} and too_long
    assert all("video" in e.message for e in result.skipped if e.error_class == "TooLong")
    assert [e.item for e in result.skipped if e.error_class == "NoAnswer"] == ["open"]
    assert result.examples == 6 - len(too_long) and result.vision_encodes == 0  # pixels each step
    with pytest.raises(TrainingError, match="video tokens are never cut"):
        sft(base, samples, frames, tmp_path / "none", options.model_copy(update={"max_length": 8}))
    assert not (tmp_path / "none").exists()
