"""Training examples as token ids and video inputs, and the batches the DPO and SFT steps read.

A prompt is rendered exactly as the ``hf`` generator renders it (same chat template, same frames placement),
and expanded by the model's real processor, so the number of video tokens is exact. An answer is the text
the chat template adds for an assistant turn (answer plus end-of-turn), tokenised on its own, as TRL does
for conversational data. Nothing is ever truncated: an example longer than ``max_length`` is left out and
reported.

- Preference pairs (:func:`prepare_pairs`): ``prompt_ids``, ``chosen_ids`` and ``rejected_ids``, batched by
  :class:`VideoPreferenceCollator` (TRL's preference collator).
- Answers for supervised fine-tuning (:func:`prepare_answers`): ``input_ids`` (prompt then answer) and
  ``labels`` (``IGNORE_INDEX`` over the prompt, video tokens included, then the answer's ids), batched by
  :class:`VideoLanguageModelingCollator` (TRL's language-modelling collator).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from trl.trainer.dpo_trainer import DataCollatorForPreference
from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

from mmaip_core import Frames, ItemError, TrainPair, VideoError, VideoQA, stable_hash
from mmaip_plugins.trainers.features import FeatureStore
from mmaip_plugins.zoo.hf import chat_messages, chat_prompt, processor_inputs

__all__ = [
    "IGNORE_INDEX",
    "PreparedAnswers",
    "PreparedExamples",
    "PreparedPairs",
    "VideoBatches",
    "VideoLanguageModelingCollator",
    "VideoPreferenceCollator",
    "prepare_answers",
    "prepare_pairs",
    "processor_fingerprint",
    "video_token_of",
]

TEXT_KEYS = ("input_ids", "attention_mask", "mm_token_type_ids")
PIXEL_KEYS = ("pixel_values_videos", "pixel_values")
IGNORE_INDEX = -100
"""Label of the tokens the cross-entropy leaves out (the ignore_index of transformers' and PyTorch's loss)."""


def processor_fingerprint(processor: Any) -> str:
    """Hash of what turns frames into pixel inputs (the video processor's settings)."""
    video_processor = getattr(processor, "video_processor", None) or processor.image_processor
    return stable_hash(video_processor.to_json_string())[:16]


def video_token_of(processor: Any) -> int | None:
    """Id of the processor's video placeholder token (None for processors without one)."""
    token = getattr(processor, "video_token", None)
    return int(processor.tokenizer.convert_tokens_to_ids(token)) if token else None


@dataclass
class PreparedExamples:
    """Tokenised examples (``examples``), the processor's video inputs by video key (with one prompt that
    shows each video), and the items left out. Its methods tokenise a question and an answer as the ``hf``
    generator renders them."""

    processor: Any
    system_prompt: str | None = None
    examples: list[dict[str, Any]] = field(default_factory=list)
    videos: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)
    prompts: dict[str, list[int]] = field(default_factory=dict)
    video_prompts: dict[str, list[int]] = field(default_factory=dict)
    skipped: list[ItemError] = field(default_factory=list)
    token_types: bool = False
    fingerprint: str = field(init=False)
    video_token_id: int | None = field(init=False)

    def __post_init__(self) -> None:
        self.fingerprint = processor_fingerprint(self.processor)
        self.video_token_id = video_token_of(self.processor)

    def messages(self, question: str) -> list[dict[str, Any]]:
        """The hf generator's messages: the system prompt, if any, then the question."""
        system = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        return [*system, {"role": "user", "content": question}]

    def prompt(self, messages: list[dict[str, Any]], frames: Frames) -> tuple[str, list[int]]:
        """The video key and prompt token ids of ``messages`` about ``frames``; each prompt is processed once."""
        video_key = stable_hash([frames.manifest.key, self.fingerprint])[:24]
        prompt_key = stable_hash([video_key, messages])[:24]
        if prompt_key not in self.prompts:
            inputs = processor_inputs(self.processor, [chat_prompt(self.processor, messages, frames)], [frames])
            self.prompts[prompt_key] = inputs["input_ids"][0].tolist()
            self.token_types = self.token_types or "mm_token_type_ids" in inputs
            self.videos.setdefault(video_key, {k: v for k, v in inputs.items() if k not in TEXT_KEYS})
            self.video_prompts.setdefault(video_key, self.prompts[prompt_key])
        return video_key, self.prompts[prompt_key]

    def answer(self, messages: list[dict[str, Any]], frames: Frames, answer: str) -> list[int]:
        """Token ids of the assistant turn the chat template adds after the prompt (answer, end of turn)."""
        prompt = chat_prompt(self.processor, messages, frames)
        turn = chat_messages([*messages, {"role": "assistant", "content": answer}], frames)
        full = str(self.processor.apply_chat_template(turn, tokenize=False))
        tokenizer = self.processor.tokenizer
        text = full[len(prompt) :] if full.startswith(prompt) else answer + (tokenizer.eos_token or "")
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])

    def skip(self, item: str, error_class: str, message: str) -> None:
        self.skipped.append(ItemError(stage="train", item=item, error_class=error_class, message=message))

    def fits(self, item: str, length: int, prompt_ids: Sequence[int], max_length: int | None) -> bool:
        """Whether ``length`` tokens fit ``max_length``; an item that does not is reported as too long."""
        if max_length is None or length <= max_length:
            return True
        video_tokens = sum(1 for t in prompt_ids if t == self.video_token_id)
        self.skip(
            item,
            "TooLong",
            f"needs {length} tokens ({video_tokens} of them video) but max_length is {max_length}; "
            "video tokens are never cut: raise max_length or train on fewer frames or a smaller max_side",
        )
        return False


@dataclass
class PreparedPairs(PreparedExamples):
    """Preference pairs: each example holds ``id``, ``video``, ``prompt_ids``, ``chosen_ids``, ``rejected_ids``."""


@dataclass
class PreparedAnswers(PreparedExamples):
    """Answers for SFT: each example holds ``id``, ``video``, ``input_ids`` and ``labels``."""


def prepare_pairs(
    pairs: Sequence[TrainPair],
    frames: Callable[[str], Frames],
    processor: Any,
    *,
    system_prompt: str | None,
    max_length: int | None,
) -> PreparedPairs:
    """Tokenise every pair; each video is processed once; bad videos and over-long pairs are reported."""
    out = PreparedPairs(processor, system_prompt)
    for pair in pairs:
        try:
            loaded = frames(pair.video)
        except VideoError as exc:
            out.skip(pair.id, "VideoError", str(exc))
            continue
        messages = out.messages(pair.prompt)
        video_key, prompt_ids = out.prompt(messages, loaded)
        chosen = out.answer(messages, loaded, pair.chosen)
        rejected = out.answer(messages, loaded, pair.rejected)
        if out.fits(pair.id, len(prompt_ids) + max(len(chosen), len(rejected)), prompt_ids, max_length):
            out.examples.append(
                {
                    "id": pair.id,
                    "video": video_key,
                    "prompt_ids": prompt_ids,
                    "chosen_ids": chosen,
                    "rejected_ids": rejected,
                }
            )
    return out


def prepare_answers(
    samples: Sequence[VideoQA],
    frames: Mapping[str, Frames],
    processor: Any,
    *,
    system_prompt: str | None,
    max_length: int | None,
) -> PreparedAnswers:
    """Tokenise every sample with its answer (``frames`` by the samples' ``video``); each video is processed
    once; samples without an answer or frames, and over-long ones, are reported."""
    out = PreparedAnswers(processor, system_prompt)
    for sample in samples:
        loaded = frames.get(sample.video)
        if sample.answer is None:
            out.skip(sample.id, "NoAnswer", "the sample has no answer to train on")
            continue
        if loaded is None:
            out.skip(sample.id, "NoFrames", f"no frames were given for video {sample.video}")
            continue
        messages = out.messages(sample.question)
        video_key, prompt_ids = out.prompt(messages, loaded)
        answer = out.answer(messages, loaded, sample.answer)
        if out.fits(sample.id, len(prompt_ids) + len(answer), prompt_ids, max_length):
            labels = [IGNORE_INDEX] * len(prompt_ids) + answer
            out.examples.append(
                {"id": sample.id, "video": video_key, "input_ids": prompt_ids + answer, "labels": labels}
            )
    return out


@dataclass
class VideoBatches:
    """Adds each row's video to a batch: cached encoder outputs when ``features`` is given (frozen tower),
    else the processor's pixel inputs."""

    videos: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)
    features: FeatureStore | None = None
    token_types: bool = False
    video_token_id: int | None = None
    device: torch.device | str = "cpu"
    dtype: torch.dtype = torch.float32

    def with_videos(self, text: Mapping[str, torch.Tensor], keys: Sequence[str]) -> dict[str, Any]:
        """``text`` (padded token tensors, one row per key) on the device, with the videos of ``keys``."""
        batch: dict[str, Any] = {k: v.to(self.device) for k, v in text.items()}
        names = set(self.videos[keys[0]])
        if self.features is not None:
            names -= set(PIXEL_KEYS)
            batch["mm_encoder_outputs"] = {"video": self.features.batch(keys, self.device, self.dtype)}
        for name in sorted(names):
            value = torch.cat([self.videos[k][name] for k in keys], dim=0).to(self.device)
            batch[name] = value.to(self.dtype) if value.is_floating_point() and name in PIXEL_KEYS else value
        if self.token_types:  # 2 marks video tokens (Qwen models need it with video_grid_thw)
            batch["mm_token_type_ids"] = (batch["input_ids"] == self.video_token_id).long() * 2
        return batch


@dataclass
class VideoPreferenceCollator(VideoBatches, DataCollatorForPreference):
    """TRL's preference collator (rows: chosen_0..B-1, then rejected_0..B-1) plus each row's video."""

    def torch_call(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        return self.with_videos(super().torch_call(examples), [e["video"] for e in examples] * 2)


@dataclass
class VideoLanguageModelingCollator(VideoBatches, DataCollatorForLanguageModeling):
    """TRL's language-modelling collator (right padding; the labels as prepared, padded with ``IGNORE_INDEX``)
    plus each row's video."""

    def torch_call(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        text = super().torch_call([{"input_ids": e["input_ids"], "labels": e["labels"]} for e in examples])
        return self.with_videos(text, [e["video"] for e in examples])
