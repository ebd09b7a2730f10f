"""Supervised fine-tuning (SFT) of a Hugging Face video MLLM on video questions with their answers.

- The prompt is the ``hf`` generator's (``data.py``: same chat template, same frames placement, the real
  processor), and the loss the model's own cross-entropy on the answer tokens only: the prompt and its video
  tokens are labelled ``IGNORE_INDEX``. After training, the ``hf`` generator answers as the answers read.
- With a frozen vision tower (default) each video is encoded once (``features.py``) and its encoder outputs are
  reused every step; with ``cache_dir`` they stay on disk, keyed by the vision weights, for later runs.
- Nothing is cut: a sample longer than ``max_length`` is left out and reported, as are samples without an
  answer or frames.
- The loop is transformers' ``Trainer`` (AdamW, schedule and warmup, gradient accumulation, clipping,
  seeding, devices through accelerate): the same seed gives the same weights. ``mixed_precision`` becomes its
  ``bf16``/``fp16`` arguments (float32 master weights, autocast), ``learning_rates`` an AdamW with a parameter
  group per rate.
- The result is a complete checkpoint folder (model and processor, ``COMPLETE.json`` last) that the ``hf``
  generator, ``mmaip extrapolate`` and the ``video-dpo`` trainer load.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from mmaip_core import Frames, ItemError, TrainingError, VideoQA, staged
from mmaip_plugins.trainers.common import (
    VideoTrainingOptions,
    caches_vision,
    check_finite,
    freeze_vision_parts,
    is_vision,
    parameter_groups,
    resolve_dtype,
    resolve_mixed_precision,
)

if TYPE_CHECKING:
    from mmaip_plugins.trainers.data import PreparedAnswers
    from mmaip_plugins.trainers.features import FeatureStore

__all__ = ["SftOptions", "SftResult", "sft"]


class SftOptions(VideoTrainingOptions):
    """Options of :func:`sft`; the names are those of the ``video-dpo`` trainer (and of transformers'
    ``TrainingArguments`` where they have one)."""

    learning_rate: float = Field(default=1e-5, gt=0)
    warmup_ratio: float = Field(default=0.03, ge=0, lt=1)
    max_steps: int | None = Field(default=None, ge=1, description="Optimizer steps; when given, overrides epochs.")
    cache_dir: Path | None = Field(
        default=None,
        description="Where encoded videos are kept (cache_dir/vision/<vision-weights hash>/, the layout of "
        "video-dpo's OUT/cache); default: a temporary folder.",
    )


class SftResult(BaseModel):
    """What :func:`sft` did."""

    model_config = ConfigDict(extra="forbid")

    out: Path = Field(description="The complete checkpoint folder written.")
    steps: int = Field(description="Optimizer steps taken.")
    examples: int = Field(description="Samples trained on.")
    losses: list[float] = Field(description="Training loss (answer-token cross-entropy) of each step.")
    skipped: list[ItemError] = Field(default_factory=list, description="Samples left out, each with the cause.")
    vision_encodes: int = Field(default=0, description="Videos encoded by the vision tower (cached ones: 0).")
    wall_s: float = Field(description="Wall time in seconds: loading, tokenising, encoding, training (not saving).")


def _training_arguments(options: SftOptions, work: Path) -> Any:
    from transformers import TrainingArguments

    o = options
    precision = resolve_mixed_precision(o.mixed_precision, o.device)
    return TrainingArguments(
        output_dir=str(work),
        use_cpu=o.device == "cpu",
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        seed=o.seed,
        learning_rate=o.learning_rate,
        lr_scheduler_type=o.lr_scheduler_type,
        warmup_steps=o.warmup_ratio,  # a float below 1 is a ratio of the total steps
        weight_decay=o.weight_decay,
        max_grad_norm=o.max_grad_norm,
        num_train_epochs=o.epochs,
        max_steps=o.max_steps or -1,
        per_device_train_batch_size=o.batch_size,
        gradient_accumulation_steps=o.gradient_accumulation_steps,
        report_to=o.report_to or "none",
        logging_steps=1,  # every step's loss comes back in SftResult.losses
        save_strategy="no",  # the one checkpoint is written complete-or-absent by sft()
        disable_tqdm=True,
        remove_unused_columns=False,  # the collator reads the examples' video keys
        dataloader_pin_memory=False,  # batches come from the collator already on the device
    )


def _encode_videos(model: Any, prepared: PreparedAnswers, folder: Path) -> tuple[FeatureStore, int]:
    """A feature store for the frozen tower of ``model``, holding every video of ``prepared``; the number
    of videos encoded now (those not already stored)."""
    from mmaip_plugins.trainers.features import FeatureStore, encode_video, weights_hash

    store = FeatureStore(folder / "vision" / weights_hash(model, is_vision)[:16])
    token_type_id = prepared.video_token_id if prepared.token_types else None
    videos = prepared.videos
    todo = [key for key in videos.recipes if not store.has(key)]
    for key in todo:
        store.put(key, encode_video(model, videos.recipes[key].prompt_ids, videos.inputs(key), token_type_id))
    return store, len(todo)


def _optimizer(net: Any, options: SftOptions) -> tuple[Any, None]:
    """With ``learning_rates``: AdamW with a parameter group per learning rate (weight decay on every group, as
    in ``video-dpo``), the schedule still the Trainer's. Without: (None, None), the Trainer's own AdamW."""
    import torch

    if not options.learning_rates:
        return None, None
    groups = parameter_groups(net, options)
    return torch.optim.AdamW(groups, lr=options.learning_rate, weight_decay=options.weight_decay), None


def _train(net: Any, processor: Any, prepared: PreparedAnswers, options: SftOptions) -> tuple[Any, int]:
    """Train ``net`` in place; its ``TrainerState`` (steps, logged losses) and the number of videos encoded."""
    from transformers import Trainer
    from transformers.trainer_callback import PrinterCallback

    from mmaip_plugins.trainers.data import VideoLanguageModelingCollator

    o = options
    with tempfile.TemporaryDirectory(prefix="mmaip-sft-") as work:
        args = _training_arguments(o, Path(work))
        net.to(args.device)
        if o.gradient_checkpointing:  # as video-dpo does; TrainingArguments renamed its option in transformers 5.x
            net.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        store, encodes = None, 0
        freeze_vision_parts(net, o)
        if caches_vision(o):
            store, encodes = _encode_videos(net, prepared, o.cache_dir or Path(work))
        collator = VideoLanguageModelingCollator(
            pad_token_id=processor.tokenizer.pad_token_id,
            videos=prepared.videos,
            features=store,
            token_types=prepared.token_types,
            video_token_id=prepared.video_token_id,
            device=args.device,
            dtype=next(net.parameters()).dtype,
        )
        trainer = Trainer(
            model=net, args=args, train_dataset=prepared.examples, data_collator=collator, optimizers=_optimizer(net, o)
        )
        trainer.remove_callback(PrinterCallback)
        trainer.train()
    return trainer.state, encodes


def sft(
    model: str | Path, samples: Sequence[VideoQA], frames: Mapping[str, Frames], out: Path, options: SftOptions
) -> SftResult:
    """Fine-tune ``model`` (hub id or folder) on the answers of ``samples`` (``frames`` by each sample's
    ``video``, read when the encoding or a batch needs a video's pixels; a mapping that loads on access keeps
    the frames out of memory) and save it to ``out`` as a complete checkpoint folder. Raises TrainingError when
    no sample can be trained on."""
    from mmaip_plugins.trainers.data import prepare_answers
    from mmaip_plugins.zoo.hf import load_pretrained

    start = time.perf_counter()
    o = options
    processor, net = load_pretrained(
        str(model),
        revision=o.revision,
        dtype=resolve_dtype(o.dtype),
        attn_implementation=o.attn_implementation,
        trust_remote_code=o.trust_remote_code,
    )
    prepared = prepare_answers(samples, frames, processor, system_prompt=o.system_prompt, max_length=o.max_length)
    if not prepared.examples:
        first = prepared.skipped[0].message if prepared.skipped else "no samples"
        raise TrainingError(f"SFT of {model}: no sample can be trained on ({first})")
    state, encodes = _train(net, processor, prepared, o)
    result = SftResult(
        out=out,
        steps=state.global_step,
        examples=len(prepared.examples),
        losses=[float(entry["loss"]) for entry in state.log_history if "loss" in entry],
        skipped=prepared.skipped,
        vision_encodes=encodes,
        wall_s=round(time.perf_counter() - start, 3),
    )
    check_finite(net)
    info = {"source": str(model), "options": o.model_dump(mode="json"), "result": result.model_dump(mode="json")}
    with staged(out, info) as tmp:
        net.save_pretrained(tmp)
        processor.save_pretrained(tmp)
    return result
