"""The ``video-dpo`` trainer: one round of DPO on video for a Hugging Face video MLLM.

Per round, and in this order:

1. load the round's reference (it is also the policy's initialisation) with its real processor;
2. tokenise the pairs (``data.py``); a pair that does not fit ``max_length`` is reported and left out;
3. with a frozen vision tower, encode each video once and store its features on disk (``features.py``),
   keyed by the frames, the video processor and a hash of the vision weights, so later rounds reuse them;
4. compute the reference log-probs of every pair in one pass, with the policy before its first step (it *is*
   the reference then; a LoRA model with its adapter disabled), so no second model is held in memory;
5. train: TRL's DPO objective over TRL's fused LM head (log-probs of the answer tokens only), AdamW, warmup
   and schedule, gradient accumulation, accelerate for devices and DDP/FSDP/DeepSpeed; a non-finite loss or
   gradient skips the step; step checkpoints are complete or absent, so ``resume`` continues mid-round;
6. save the policy (LoRA: the adapter, and the merged model beside it) as a complete checkpoint folder.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import shutil
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch

from mmaip_core import (
    VISION_PATTERN,
    RoundRequest,
    RoundResult,
    TrainingError,
    latest_complete,
    mark_complete,
    prune,
    read_marker,
    stable_hash,
    staged,
    write_text_atomic,
)
from mmaip_plugins.trainers.data import PreparedPairs, VideoPreferenceCollator, prepare_pairs, video_token_of
from mmaip_plugins.trainers.features import FeatureStore, encode_video, weights_hash
from mmaip_plugins.trainers.loss import TrlDpoObjective
from mmaip_plugins.trainers.options import VideoDpoOptions
from mmaip_plugins.zoo.hf import load_pretrained
from mmaip_plugins.zoo.tiny import build_tiny_model

__all__ = ["VideoDpoTrainer", "check_finite", "is_vision", "resolve_dtype"]

CURVES = {
    "rewards/margins": "margin",
    "rewards/accuracies": "accuracy",
    "rewards/chosen": "reward_chosen",
    "rewards/rejected": "reward_rejected",
    "logps/chosen": "logp_chosen",
    "logps/rejected": "logp_rejected",
}
"""TRL's metric names -> the names of mmaip's per-step curves."""


def is_vision(name: str) -> bool:
    """Whether a parameter belongs to the vision tower or projector."""
    return bool(VISION_PATTERN.search(name))


def resolve_dtype(dtype: str) -> str:
    """``auto``: bfloat16 on a GPU that supports it, else float32."""
    if dtype != "auto":
        return dtype
    return "bfloat16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "float32"


class VideoDpoTrainer:
    """DPO on video pairs, one round per call (see the module docstring)."""

    plugin = "video-dpo"

    def __init__(self, options: VideoDpoOptions) -> None:
        self.options = options
        self.fingerprint = stable_hash(options.model_dump(mode="json"))[:16]

    def source(self) -> str:
        """The starting model: a hub id or folder, or the tiny model of ``smoke``."""
        o = self.options
        if o.smoke is not None:
            return str(build_tiny_model(o.smoke.family, o.smoke.seed, o.smoke.cache_dir))
        assert o.model is not None
        return o.model

    def save_base(self, out: Path) -> None:
        o = self.options
        processor, model = load_pretrained(
            self.source(), revision=o.revision, dtype=resolve_dtype(o.dtype), trust_remote_code=o.trust_remote_code
        )
        with staged(out, {"source": self.source(), "revision": o.revision}) as tmp:
            model.save_pretrained(tmp)
            processor.save_pretrained(tmp)

    def train_round(self, request: RoundRequest) -> RoundResult:
        return _Round(self.options, request).run()


class _Round:
    """The state of one round."""

    def __init__(self, options: VideoDpoOptions, request: RoundRequest) -> None:
        from accelerate import Accelerator

        self.o = options
        self.request = request
        cpu = options.device == "cpu" or not torch.cuda.is_available()
        self.acc = Accelerator(cpu=cpu, log_with=options.report_to or None, project_dir=str(request.work))
        self.objective = TrlDpoObjective(options, self.acc)
        self.result = RoundResult(steps=0, pairs=0)

    # -- setup ---------------------------------------------------------------------------------------

    def _load(self) -> tuple[Any, Any]:
        from trl.trainer.utils import disable_dropout_in_model

        o = self.o
        processor, model = load_pretrained(
            str(self.request.reference),
            dtype=resolve_dtype(o.dtype),
            attn_implementation=o.attn_implementation,
            trust_remote_code=o.trust_remote_code,
        )
        disable_dropout_in_model(model)
        return processor, model.to(self.acc.device)

    def _encode(self, model: Any, prepared: PreparedPairs, store: FeatureStore, token_type_id: int | None) -> None:
        """Encode every video not yet in ``store`` (each process a share), once."""
        todo = sorted(k for k in prepared.videos if not store.has(k))
        self.acc.wait_for_everyone()  # every process shares out the same list before any is written
        for key in todo[self.acc.process_index :: self.acc.num_processes]:
            store.put(key, encode_video(model, prepared.video_prompts[key], prepared.videos[key], token_type_id))
        self.result.vision_encodes = len(todo)
        self.acc.wait_for_everyone()

    def _reference_logps(self, model: Any, prepared: PreparedPairs, collator: VideoPreferenceCollator) -> dict[str, list[float]]:
        """Reference log-probs of every pair (chosen, rejected), computed once per round and kept on disk."""
        from accelerate.utils import gather_object

        path = self.request.work / "reference_logps.json"
        reference = {"folder": str(self.request.reference), **read_marker(self.request.reference)}
        if path.is_file():
            stored = json.loads(path.read_text())
            if stored.get("reference") == json.loads(json.dumps(reference, default=str)):
                return dict(stored["logps"])
        examples = prepared.examples[self.acc.process_index :: self.acc.num_processes]
        logps: dict[str, list[float]] = {}
        model.eval()
        for start in range(0, len(examples), self.o.batch_size):
            chunk = examples[start : start + self.o.batch_size]
            chosen, rejected = self.objective.reference_logps(model, collator(chunk))
            logps.update({e["id"]: [float(c), float(r)] for e, c, r in zip(chunk, chosen, rejected, strict=True)})
        merged: dict[str, list[float]] = {}
        for part in gather_object([logps]):
            merged.update(part)
        self.result.reference_forwards = 2 * len(merged)
        if self.acc.is_main_process:
            write_text_atomic(path, json.dumps({"reference": reference, "logps": merged}, default=str))
        self.acc.wait_for_everyone()
        return merged

    def _wrap_lora(self, model: Any) -> Any:
        from peft import LoraConfig, get_peft_model

        assert self.o.lora is not None
        lora = self.o.lora
        config = LoraConfig(
            r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=lora.target_modules
        )
        return get_peft_model(model, config)

    # -- the loop ------------------------------------------------------------------------------------

    def _order(self, epoch: int, n: int) -> list[int]:
        order = list(range(n))
        random.Random(f"{self.o.seed}-{self.request.round}-{epoch}").shuffle(order)
        return order

    def _save_step(self, model: Any, step: int, micro: int, curves: dict[str, list[float]]) -> None:
        """A step checkpoint every process writes into; complete (marker, rename) only once all are done."""
        work = self.request.work
        final, tmp = work / f"step-{step}", work / f".step-{step}.partial"
        if self.acc.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        self.acc.wait_for_everyone()
        check_finite(model)
        self.acc.save_state(str(tmp))
        self.acc.wait_for_everyone()
        if self.acc.is_main_process:
            info = {"step": step, "micro": micro, "skipped_steps": self.result.skipped_steps, "curves": curves}
            mark_complete(tmp, final, info)
            prune(work, "step", self.o.keep_step_checkpoints)
        self.acc.wait_for_everyone()

    def run(self) -> RoundResult:
        from transformers import get_scheduler
        from trl.trainer.utils import add_fused_lm_head

        start = time.perf_counter()
        o, request, acc = self.o, self.request, self.acc
        processor, model = self._load()
        prepared = prepare_pairs(
            request.pairs, request.frames, processor, system_prompt=o.system_prompt, max_length=o.max_length
        )
        self.result.skipped = prepared.skipped
        if not prepared.examples:
            first = prepared.skipped[0].message if prepared.skipped else "no pairs"
            raise TrainingError(f"round {request.round}: no pair can be trained on ({first})")
        store = None
        if o.freeze_vision:
            for name, param in model.named_parameters():
                if is_vision(name):
                    param.requires_grad_(False)
            store = FeatureStore(request.cache / "vision" / weights_hash(model, is_vision)[:16])
            self._encode(model, prepared, store, video_token_of(processor) if prepared.token_types else None)
        add_fused_lm_head(model, outputs=self.objective.fused_outputs)  # before peft wraps the model
        if o.lora is not None:
            model = self._wrap_lora(model)
        if o.gradient_checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            if o.lora is not None:
                model.enable_input_require_grads()
        collator = VideoPreferenceCollator(
            pad_token_id=processor.tokenizer.pad_token_id,
            videos=prepared.videos,
            features=store,
            token_types=prepared.token_types,
            video_token_id=video_token_of(processor),
            device=acc.device,
            dtype=next(model.parameters()).dtype,
        )
        reference = self._reference_logps(model, prepared, collator)
        examples = [
            {**e, "ref_chosen_logps": reference[e["id"]][0], "ref_rejected_logps": reference[e["id"]][1]}
            for e in prepared.examples
        ]
        self.result.pairs = len(examples)

        trainable = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(trainable, lr=o.learning_rate, weight_decay=o.weight_decay)
        world = acc.num_processes
        per_micro = o.batch_size * world
        micro_per_epoch = math.ceil(len(examples) / per_micro)
        total_micro = micro_per_epoch * o.epochs
        total_steps = math.ceil(total_micro / o.gradient_accumulation_steps)
        scheduler = get_scheduler(
            o.lr_scheduler_type, optimizer, num_warmup_steps=round(o.warmup_ratio * total_steps), num_training_steps=total_steps
        )
        model, optimizer = acc.prepare(model, optimizer)
        acc.register_for_checkpointing(scheduler)
        if o.report_to:
            acc.init_trackers(f"round-{request.round}")

        step, micro, bad = 0, 0, 0
        curves: dict[str, list[float]] = defaultdict(list)
        last = latest_complete(request.work, "step") if request.resume else None
        if last is not None:
            acc.load_state(str(last))
            marker = read_marker(last)
            step, micro = int(marker["step"]), int(marker["micro"])
            self.result.skipped_steps = int(marker["skipped_steps"])
            curves.update({k: list(v) for k, v in marker["curves"].items()})
            self.result.resumed_from_step = step
        model.train()
        pending: dict[str, list[float]] = defaultdict(list)
        while micro < total_micro:
            epoch, index = divmod(micro, micro_per_epoch)
            order = self._order(epoch, len(examples))
            chunk = [order[(index * per_micro + k) % len(order)] for k in range(per_micro)]
            batch = collator([examples[i] for i in chunk[acc.process_index :: world]])
            group_start = (micro // o.gradient_accumulation_steps) * o.gradient_accumulation_steps
            group = min(o.gradient_accumulation_steps, total_micro - group_start)
            sync = micro + 1 == group_start + group
            with contextlib.nullcontext() if sync else acc.no_sync(model):
                loss, metrics = self.objective.loss(model, batch)
                acc.backward(loss / group)
            pending["loss"].append(float(acc.gather(loss.detach()).mean()))
            for name, value in metrics.items():
                if name in CURVES:
                    pending[CURVES[name]].append(value)
            micro += 1
            if not sync:
                continue
            norm = acc.clip_grad_norm_(trainable, o.max_grad_norm)
            finite = math.isfinite(float(norm)) and all(math.isfinite(v) for v in pending["loss"])
            if finite:
                optimizer.step()
                scheduler.step()
                bad = 0
            else:
                self.result.skipped_steps += 1
                bad += 1
            optimizer.zero_grad(set_to_none=True)
            step += 1
            if bad >= o.max_bad_steps:
                raise TrainingError(
                    f"round {request.round}: {bad} steps in a row had a non-finite loss or gradient (last at step "
                    f"{step}); lower learning_rate or check the data; complete checkpoints are kept in {request.work}"
                )
            if finite:
                curves["step"].append(step)
                curves["grad_norm"].append(float(norm))
                curves["lr"].append(scheduler.get_last_lr()[0])
                for name, values in pending.items():
                    curves[name].append(sum(values) / len(values))
                if o.report_to:
                    acc.log({name: values[-1] for name, values in curves.items()}, step=step)
            pending.clear()
            if request.progress is not None:
                request.progress(f"round {request.round}", step, total_steps)
            if step % o.save_steps == 0 and micro < total_micro:
                self._save_step(model, step, micro, dict(curves))
        if o.report_to:
            acc.end_training()
        self.result.steps = step
        self.result.curves = dict(curves)
        self.result.wall_s = round(time.perf_counter() - start, 3)
        self._save_policy(model, processor)
        return self.result

    def _save_policy(self, model: Any, processor: Any) -> None:
        acc = self.acc
        check_finite(model)
        state = None if self.o.lora is not None else acc.get_state_dict(model)
        if acc.is_main_process:
            unwrapped = acc.unwrap_model(model)
            with staged(self.request.out, {"result": self.result.model_dump(mode="json")}) as tmp:
                if self.o.lora is not None:
                    unwrapped.save_pretrained(tmp / "adapter")
                    unwrapped.merge_and_unload().save_pretrained(tmp)
                else:
                    unwrapped.save_pretrained(tmp, state_dict=state)
                processor.save_pretrained(tmp)
            for step_dir in self.request.work.glob("step-*"):  # the policy is complete: step checkpoints go
                shutil.rmtree(step_dir, ignore_errors=True)
        acc.wait_for_everyone()


def check_finite(model: Any) -> None:
    """No checkpoint may hold a NaN or infinity."""
    for name, param in model.named_parameters():
        if param.requires_grad and not torch.isfinite(param).all():
            raise TrainingError(f"parameter {name} is not finite; no checkpoint was written")

