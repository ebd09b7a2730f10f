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

No video's frames or pixels are kept: :class:`VideoInputs` keeps, per video, what makes its inputs again (the
video, a prompt that shows it) and the few numbers that are neither text nor pixels (e.g. ``video_grid_thw``);
a batch that needs pixels gets them from the frames (the frame loader reads its cache on disk) and the processor
then, and they go with the batch. Memory does not grow with the number of videos.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from trl.trainer.dpo_trainer import DataCollatorForPreference
from trl.trainer.sft_trainer import DataCollatorForLanguageModeling
from trl.trainer.utils import pad

from mmaip_core import Frames, ItemError, TrainPair, VideoError, VideoQA, stable_hash
from mmaip_plugins.trainers.common import large_blocks_mapped
from mmaip_plugins.trainers.features import FeatureStore
from mmaip_plugins.zoo.hf import chat_messages, chat_prompt, processor_inputs

__all__ = [
    "IGNORE_INDEX",
    "SHARED_PREFIX",
    "PreparedAnswers",
    "PreparedExamples",
    "PreparedPairs",
    "VideoBatches",
    "VideoInputSource",
    "VideoInputs",
    "VideoLanguageModelingCollator",
    "VideoPreferenceCollator",
    "VideoRecipe",
    "prepare_answers",
    "prepare_pairs",
    "processor_fingerprint",
    "video_token_of",
]

TEXT_KEYS = ("input_ids", "attention_mask", "mm_token_type_ids")
PIXEL_KEYS = ("pixel_values_videos", "pixel_values")
SHARED_PREFIX = "shared_prefix"
"""Batch key (and model keyword) of a preference batch's prefix and answer rows (``shared_prefix`` collators)."""
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


class VideoInputSource(Protocol):
    """The processor's inputs of each video, by video key, as a batch needs them."""

    def kept(self, key: str) -> Mapping[str, torch.Tensor]:
        """The inputs other than text and pixels (e.g. ``video_grid_thw``): a few numbers, kept in memory."""
        ...

    def inputs(self, key: str) -> Mapping[str, torch.Tensor]:
        """Every input but the text, pixels included, made for this call (the caller drops them)."""
        ...


@dataclass(frozen=True)
class VideoRecipe:
    """What one video's processor inputs are made from again: the video as the frame source knows it, and a
    prompt that shows it (text and token ids); with the inputs that are neither text nor pixels."""

    video: str
    prompt: str
    prompt_ids: list[int]
    kept: dict[str, torch.Tensor]


@dataclass
class VideoInputs:
    """The processor's video inputs by video key, from ``frames`` (e.g. the frame loader, which reads its cache on
    disk) and ``processor``; of each video only its :class:`VideoRecipe` is kept."""

    processor: Any
    frames: Callable[[str], Frames]
    recipes: dict[str, VideoRecipe] = field(default_factory=dict)

    def add(self, key: str, recipe: VideoRecipe) -> None:
        """Remember how to make the inputs of video ``key`` (the first recipe of a key is kept)."""
        self.recipes.setdefault(key, recipe)

    def kept(self, key: str) -> Mapping[str, torch.Tensor]:
        return self.recipes[key].kept

    def inputs(self, key: str) -> dict[str, torch.Tensor]:
        """The inputs of ``key`` as the processor made them when the video's prompt was first tokenised (the
        same call on the same frames): made again now, held by the caller only."""
        recipe = self.recipes[key]
        made = processor_inputs(self.processor, [recipe.prompt], [self.frames(recipe.video)])
        return {k: v for k, v in made.items() if k not in TEXT_KEYS}


@dataclass
class PreparedExamples:
    """Tokenised examples (``examples``), how each video's processor inputs are made (``videos``, by video key;
    ``frames`` gives a video's frames), and the items left out. Its methods tokenise a question and an answer as
    the ``hf`` generator renders them."""

    processor: Any
    frames: Callable[[str], Frames]
    system_prompt: str | None = None
    examples: list[dict[str, Any]] = field(default_factory=list)
    prompts: dict[str, list[int]] = field(default_factory=dict)
    skipped: list[ItemError] = field(default_factory=list)
    token_types: bool = False
    videos: VideoInputs = field(init=False)
    fingerprint: str = field(init=False)
    video_token_id: int | None = field(init=False)

    def __post_init__(self) -> None:
        self.videos = VideoInputs(self.processor, self.frames)
        self.fingerprint = processor_fingerprint(self.processor)
        self.video_token_id = video_token_of(self.processor)

    def messages(self, question: str) -> list[dict[str, Any]]:
        """The hf generator's messages: the system prompt, if any, then the question."""
        system = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        return [*system, {"role": "user", "content": question}]

    def prompt(self, messages: list[dict[str, Any]], video: str, frames: Frames) -> tuple[str, list[int]]:
        """The video key and prompt token ids of ``messages`` about ``frames`` (the frames of ``video``); each
        prompt is processed once, and its pixels are dropped."""
        video_key = stable_hash([frames.manifest.key, self.fingerprint])[:24]
        prompt_key = stable_hash([video_key, messages])[:24]
        if prompt_key not in self.prompts:
            text = chat_prompt(self.processor, messages, frames)
            inputs = processor_inputs(self.processor, [text], [frames])
            self.prompts[prompt_key] = inputs["input_ids"][0].tolist()
            self.token_types = self.token_types or "mm_token_type_ids" in inputs
            kept = {k: v for k, v in inputs.items() if k not in TEXT_KEYS and k not in PIXEL_KEYS}
            self.videos.add(video_key, VideoRecipe(video, text, self.prompts[prompt_key], kept))
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
    out = PreparedPairs(processor, frames, system_prompt)
    with large_blocks_mapped():  # pixels made and freed per prompt must not fragment the heap
        for pair in pairs:
            try:
                loaded = frames(pair.video)
            except VideoError as exc:
                out.skip(pair.id, "VideoError", str(exc))
                continue
            messages = out.messages(pair.prompt)
            video_key, prompt_ids = out.prompt(messages, pair.video, loaded)
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
    out = PreparedAnswers(processor, frames.__getitem__, system_prompt)
    with large_blocks_mapped():  # pixels made and freed per prompt must not fragment the heap
        for sample in samples:
            if sample.answer is None:
                out.skip(sample.id, "NoAnswer", "the sample has no answer to train on")
                continue
            if sample.video is None or (loaded := frames.get(sample.video)) is None:
                out.skip(sample.id, "NoFrames", f"no frames were given for video {sample.video}")
                continue
            messages = out.messages(sample.question)
            video_key, prompt_ids = out.prompt(messages, sample.video, loaded)
            answer = out.answer(messages, loaded, sample.answer)
            if out.fits(sample.id, len(prompt_ids) + len(answer), prompt_ids, max_length):
                labels = [IGNORE_INDEX] * len(prompt_ids) + answer
                out.examples.append(
                    {"id": sample.id, "video": video_key, "input_ids": prompt_ids + answer, "labels": labels}
                )
    return out


@dataclass
class VideoBatches:
    """Adds each row's video to a batch from ``videos``: cached encoder outputs when ``features`` is given (frozen
    tower), else the processor's pixel inputs, made for this batch only."""

    videos: VideoInputSource | None = None
    features: FeatureStore | None = None
    token_types: bool = False
    video_token_id: int | None = None
    device: torch.device | str = "cpu"
    dtype: torch.dtype = torch.float32

    def with_videos(self, text: Mapping[str, torch.Tensor], keys: Sequence[str]) -> dict[str, Any]:
        """``text`` (padded token tensors, one row per key) on the device, with the videos of ``keys``."""
        if self.videos is None:
            raise TypeError("a video batch needs `videos`, the source of each video's inputs")
        batch: dict[str, Any] = {k: v.to(self.device) for k, v in text.items()}
        unique = list(dict.fromkeys(keys))
        if self.features is not None:
            batch["mm_encoder_outputs"] = {"video": self.features.batch(keys, self.device, self.dtype)}
            inputs = {k: self.videos.kept(k) for k in unique}
        else:
            inputs = {k: self.videos.inputs(k) for k in unique}
        for name in sorted(inputs[keys[0]]):
            value = torch.cat([inputs[k][name] for k in keys], dim=0).to(self.device)
            batch[name] = value.to(self.dtype) if value.is_floating_point() and name in PIXEL_KEYS else value
        if self.token_types:  # 2 marks video tokens (Qwen models need it with video_grid_thw)
            batch["mm_token_type_ids"] = (batch["input_ids"] == self.video_token_id).long() * 2
        return batch


@dataclass
class VideoPreferenceCollator(VideoBatches, DataCollatorForPreference):
    """TRL's preference collator (rows: chosen_0..B-1, then rejected_0..B-1) plus each row's video. With
    ``shared_prefix``, the videos go with the pairs' prefixes instead, under :data:`SHARED_PREFIX`
    (``trainers/shared_prefix.py`` computes each prefix once for both answers)."""

    shared_prefix: bool = False

    def torch_call(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        text = super().torch_call(examples)
        keys = [e["video"] for e in examples]
        if not self.shared_prefix:
            return self.with_videos(text, keys * 2)
        prefix, answers = self.pair_rows(examples)
        batch: dict[str, Any] = {k: v.to(self.device) for k, v in text.items()}
        answer_rows = {k: v.to(self.device) for k, v in answers.items()}
        batch[SHARED_PREFIX] = {"prefix": self.with_videos(prefix, keys), "answers": answer_rows}
        return batch

    def pair_rows(self, examples: list[dict[str, Any]]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Each pair's prefix (its prompt but the last token) and its answer rows (chosen_0, rejected_0,
        chosen_1, ...: the prompt's last token, then the answer, labelled), right-padded."""
        prefixes, rows, labels = [], [], []
        for e in examples:
            *head, last = e["prompt_ids"]
            if not head or last == self.video_token_id:
                raise ValueError(f"pair {e.get('id')}: a shared prefix needs a prompt ending in text tokens")
            prefixes.append(torch.tensor(head))
            for answer in (e["chosen_ids"], e["rejected_ids"]):
                rows.append(torch.tensor([last, *answer]))
                labels.append(torch.tensor([IGNORE_INDEX, *answer]))
        prefix = pad(prefixes, padding_value=self.pad_token_id, padding_side="right")
        ids = pad(rows, padding_value=self.pad_token_id, padding_side="right")
        return (
            {"input_ids": prefix, "attention_mask": _real(prefixes, prefix)},
            {
                "input_ids": ids,
                "attention_mask": _real(rows, ids),
                "labels": pad(labels, padding_value=IGNORE_INDEX, padding_side="right"),
            },
        )


def _real(rows: list[torch.Tensor], padded: torch.Tensor) -> torch.Tensor:
    """The attention mask of right-padded ``rows``: 1 on each row's tokens, 0 on its padding."""
    return (torch.arange(padded.shape[1]) < torch.tensor([[len(r)] for r in rows])).long()


@dataclass
class VideoLanguageModelingCollator(VideoBatches, DataCollatorForLanguageModeling):
    """TRL's language-modelling collator (right padding; the labels as prepared, padded with ``IGNORE_INDEX``)
    plus each row's video."""

    def torch_call(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        text = super().torch_call([{"input_ids": e["input_ids"], "labels": e["labels"]} for e in examples])
        return self.with_videos(text, [e["video"] for e in examples])
