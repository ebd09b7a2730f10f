"""Preference pairs as token ids and video inputs, and the batches the DPO step reads.

A pair's prompt is rendered exactly as the ``hf`` generator renders it (same chat template, same frames
placement), and expanded by the model's real processor, so the number of video tokens is exact. The answer
is the text the chat template adds for an assistant turn (answer plus end-of-turn), tokenised on its own,
as TRL does for conversational data. Nothing is ever truncated: a pair longer than ``max_length`` is left
out and reported.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from trl.trainer.dpo_trainer import DataCollatorForPreference

from mmaip_core import Frames, ItemError, TrainPair, VideoError, stable_hash
from mmaip_plugins.trainers.features import FeatureStore
from mmaip_plugins.zoo.hf import chat_messages, chat_prompt, processor_inputs

__all__ = [
    "PreparedPairs",
    "VideoPreferenceCollator",
    "prepare_pairs",
    "processor_fingerprint",
    "video_token_of",
]

TEXT_KEYS = ("input_ids", "attention_mask", "mm_token_type_ids")
PIXEL_KEYS = ("pixel_values_videos", "pixel_values")


@dataclass
class PreparedPairs:
    """Tokenised pairs (``examples``), the processor's video inputs by video key (with one prompt that shows
    each video), and the pairs left out."""

    examples: list[dict[str, Any]] = field(default_factory=list)
    videos: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)
    prompts: dict[str, list[int]] = field(default_factory=dict)
    video_prompts: dict[str, list[int]] = field(default_factory=dict)
    skipped: list[ItemError] = field(default_factory=list)
    token_types: bool = False


def processor_fingerprint(processor: Any) -> str:
    """Hash of what turns frames into pixel inputs (the video processor's settings)."""
    video_processor = getattr(processor, "video_processor", None) or processor.image_processor
    return stable_hash(video_processor.to_json_string())[:16]


def video_token_of(processor: Any) -> int | None:
    """Id of the processor's video placeholder token (None for processors without one)."""
    token = getattr(processor, "video_token", None)
    return int(processor.tokenizer.convert_tokens_to_ids(token)) if token else None


def _answer_ids(processor: Any, messages: list[dict[str, Any]], frames: Frames, answer: str) -> list[int]:
    prompt = chat_prompt(processor, messages, frames)
    turn = chat_messages([*messages, {"role": "assistant", "content": answer}], frames)
    full = str(processor.apply_chat_template(turn, tokenize=False))
    tokenizer = processor.tokenizer
    text = full[len(prompt) :] if full.startswith(prompt) else answer + (tokenizer.eos_token or "")
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def prepare_pairs(
    pairs: Sequence[TrainPair],
    frames: Callable[[str], Frames],
    processor: Any,
    *,
    system_prompt: str | None,
    max_length: int | None,
) -> PreparedPairs:
    """Tokenise every pair; each video is processed once; bad videos and over-long pairs are reported."""
    out = PreparedPairs()
    system = [{"role": "system", "content": system_prompt}] if system_prompt else []
    fingerprint = processor_fingerprint(processor)
    video_token_id = video_token_of(processor)
    for pair in pairs:
        try:
            loaded = frames(pair.video)
        except VideoError as exc:
            out.skipped.append(ItemError(stage="train", item=pair.id, error_class="VideoError", message=str(exc)))
            continue
        video_key = stable_hash([loaded.manifest.key, fingerprint])[:24]
        messages = [*system, {"role": "user", "content": pair.prompt}]
        prompt_key = stable_hash([video_key, messages])[:24]
        if prompt_key not in out.prompts:
            inputs = processor_inputs(processor, [chat_prompt(processor, messages, loaded)], [loaded])
            out.prompts[prompt_key] = inputs["input_ids"][0].tolist()
            out.token_types = out.token_types or "mm_token_type_ids" in inputs
            out.videos.setdefault(video_key, {k: v for k, v in inputs.items() if k not in TEXT_KEYS})
            out.video_prompts.setdefault(video_key, out.prompts[prompt_key])
        prompt_ids = out.prompts[prompt_key]
        chosen = _answer_ids(processor, messages, loaded, pair.chosen)
        rejected = _answer_ids(processor, messages, loaded, pair.rejected)
        longest = len(prompt_ids) + max(len(chosen), len(rejected))
        if max_length is not None and longest > max_length:
            video_tokens = sum(1 for t in prompt_ids if t == video_token_id)
            out.skipped.append(
                ItemError(
                    stage="train",
                    item=pair.id,
                    error_class="TooLong",
                    message=f"needs {longest} tokens ({video_tokens} of them video) but max_length is {max_length}; "
                    "video tokens are never cut: raise max_length or train on fewer frames or a smaller max_side",
                )
            )
            continue
        out.examples.append(
            {"id": pair.id, "video": video_key, "prompt_ids": prompt_ids, "chosen_ids": chosen, "rejected_ids": rejected}
        )
    return out


@dataclass
class VideoPreferenceCollator(DataCollatorForPreference):
    """TRL's preference collator (rows: chosen_0..B-1, then rejected_0..B-1) plus each row's video: cached
    encoder outputs when ``features`` is given (frozen tower), else the processor's pixel inputs."""

    videos: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)
    features: FeatureStore | None = None
    token_types: bool = False
    video_token_id: int | None = None
    device: torch.device | str = "cpu"
    dtype: torch.dtype = torch.float32

    def torch_call(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        batch: dict[str, Any] = {k: v.to(self.device) for k, v in super().torch_call(examples).items()}
        keys = [e["video"] for e in examples] * 2
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
