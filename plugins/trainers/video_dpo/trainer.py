"""The ``video-dpo`` trainer: one round of DPO on video for a Hugging Face video MLLM (options: ``config.py``).

Per round, and in this order (the steps of ``_Round.run``):

1. load the round's starting model (``request.start``: the last round's model) with its real processor (a
   round that starts elsewhere than its reference loads the reference first, for step 4);
2. prepare the pairs, the round's and the held-out ones: tokenise them (``trainers/data.py``); a pair that does not
   fit ``max_length`` is reported and left out;
3. with a frozen vision tower, encode each video once and store its features on disk (``trainers/features.py``),
   keyed by the frames, the video processor and a hash of the vision weights, so later rounds reuse them;
   no video's frames, pixels or features are held for the round: a batch reads them when it needs them (frames
   from the frame cache, pixels from the processor, features from the store's files) and drops them after, so
   memory does not grow with the number of videos;
4. compute the reference log-probs of every pair in one pass, under the mixed-precision autocast of the steps:
   when the round starts from its reference, with the policy before its first step (it *is* the reference
   then; a LoRA model with its adapter disabled), so no second model is held in memory; otherwise with the
   reference loaded for that pass alone, before the policy (one model in memory at a time);
5. the training steps: TRL's DPO objective (``loss.py``) over TRL's fused LM head (log-probs of the answer
   tokens only), AdamW, warmup and schedule, gradient accumulation, accelerate for devices and
   DDP/FSDP/DeepSpeed; a non-finite loss or gradient skips the step; step checkpoints are complete or absent,
   so ``resume`` continues mid-round;
6. score the held-out pairs with the trained policy (eval loss, reward accuracy and margin);
7. finish the policy: save it (LoRA: the adapter, and the merged model beside it) as a complete checkpoint
   folder.

Precision: the weights (and AdamW's state) are in ``dtype`` (float32 by default, the master weights) and
accelerate autocasts the forward passes to ``mixed_precision`` (bf16 by default on a GPU that supports it).
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import shutil
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from mmaip_core import (
    Processes,
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
from mmaip_plugins.trainers.common import (
    caches_vision,
    check_finite,
    freeze_vision_parts,
    is_vision,
    parameter_groups,
    resolve_dtype,
    resolve_mixed_precision,
)
from mmaip_plugins.trainers.data import PreparedPairs, VideoPreferenceCollator, prepare_pairs, video_token_of
from mmaip_plugins.trainers.features import FeatureStore, encode_video, weights_hash
from mmaip_plugins.trainers.shared_prefix import add_shared_prefix, shares_prefix
from mmaip_plugins.trainers.video_dpo.config import VideoDpoOptions
from mmaip_plugins.trainers.video_dpo.loss import TrlDpoObjective
from mmaip_plugins.zoo.hf import load_pretrained
from mmaip_plugins.zoo.tiny import build_tiny_model

__all__ = ["VideoDpoTrainer"]

CURVES = {
    "rewards/margins": "margin",
    "rewards/accuracies": "accuracy",
    "rewards/chosen": "reward_chosen",
    "rewards/rejected": "reward_rejected",
    "logps/chosen": "logp_chosen",
    "logps/rejected": "logp_rejected",
}
"""TRL's metric names -> the names of mmaip's per-step curves."""


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


def _series() -> defaultdict[str, list[float]]:
    return defaultdict(list)


@dataclass(frozen=True)
class _Plan:
    """How a round's pairs become micro-batches and optimizer steps (the same on every process)."""

    per_micro: int
    """Pairs per micro-batch, all processes together."""
    micro_per_epoch: int
    total_micro: int
    total_steps: int
    accumulation: int

    @classmethod
    def of(cls, pairs: int, options: VideoDpoOptions, world: int) -> _Plan:
        per_micro = options.batch_size * world
        micro_per_epoch = math.ceil(pairs / per_micro)
        total_micro = micro_per_epoch * options.epochs
        accumulation = options.gradient_accumulation_steps
        return cls(per_micro, micro_per_epoch, total_micro, math.ceil(total_micro / accumulation), accumulation)

    def group(self, micro: int) -> tuple[int, bool]:
        """The micro-batches of the optimizer step that micro-batch ``micro`` belongs to (the round's last step
        may have fewer), and whether ``micro`` ends that step (gradients are synchronised then)."""
        start = (micro // self.accumulation) * self.accumulation
        size = min(self.accumulation, self.total_micro - start)
        return size, micro + 1 == start + size


@dataclass
class _Progress:
    """Where the training steps are. A step checkpoint keeps ``step``, ``micro`` and ``curves``."""

    step: int = 0
    micro: int = 0
    bad: int = 0
    """Non-finite steps in a row."""
    curves: defaultdict[str, list[float]] = field(default_factory=_series)
    pending: defaultdict[str, list[float]] = field(default_factory=_series)
    """Loss and metrics of the micro-batches of the step under way."""


def _gather_head_each_forward(model: Any) -> None:
    """Under FSDP2, gather the LM head when the model's forward starts. accelerate gives the head an FSDP unit of
    its own (with the final norm when that is a child of the base model, which it is not in the bundled video
    families), gathered when one of its modules' forward runs; TRL's fused head reads the weight without calling
    the head, so the weight would stay sharded and its gradient miss the other processes' share (measured: grad
    norm 1.877 instead of 1.834). Gathered so, its gradient is reduced after the backward (FSDP's final callback)."""
    from torch.distributed.fsdp import FSDPModule

    fsdp2 = isinstance(model, FSDPModule)  # else e.g. DDP's wrapper, without get_output_embeddings
    if not fsdp2:
        return
    head = model.get_output_embeddings()
    if isinstance(head, FSDPModule):
        model.register_forward_pre_hook(lambda *_: head.unshard())


class _Round:
    """The state of one round."""

    def __init__(self, options: VideoDpoOptions, request: RoundRequest) -> None:
        from accelerate import Accelerator
        from accelerate.state import AcceleratorState

        AcceleratorState._reset_state()  # the mixed precision is the round's own, even after another config's run
        self.o = options
        self.request = request
        cpu = options.device == "cpu" or not torch.cuda.is_available()
        self.acc = Accelerator(
            cpu=cpu,
            mixed_precision=resolve_mixed_precision(options.mixed_precision, "cpu" if cpu else options.device),
            log_with=options.report_to or None,
            project_dir=str(request.work),
        )
        self.objective = TrlDpoObjective(options, self.acc)
        self.result = RoundResult(steps=0, pairs=0)

    def run(self) -> RoundResult:
        """One round: the pairs with their reference log-probs, the training steps, the policy saved."""
        start = time.perf_counter()
        processor, model, prepared = self._model_and_pairs()
        store = self._freeze_vision(model, processor, prepared)
        model = self._prepare_model(model)
        collator = self._collator(processor, prepared, store, model)
        with self.acc.autocast():
            examples = self._pairs_with_reference(model, prepared, collator)
        held_out = {p.id for p in self.request.eval_pairs}
        train = [e for e in examples if e["id"] not in held_out]
        self.result.pairs = len(train)
        model, progress = self._train(model, collator, train)
        self.result.steps = progress.step
        self.result.curves = dict(progress.curves)
        self.result.eval = self._evaluate(model, collator, [e for e in examples if e["id"] in held_out])
        self.result.wall_s = round(time.perf_counter() - start, 3)
        self._save_policy(model, processor)
        return self.result

    # -- the pairs and the model ----------------------------------------------------------------------

    def _model_and_pairs(self) -> tuple[Any, Any, PreparedPairs]:
        """The processor, the policy's starting model and the prepared pairs. A round that starts elsewhere than
        its reference loads the reference first, scores every pair with it and lets it go before the start is
        loaded: one model in memory at a time."""
        request = self.request
        scores = request.start != request.reference and self._stored_reference_logps() is None  # resumed: stored
        processor, model = self._load(request.reference if scores else request.start)
        prepared = self._prepare_pairs(processor)
        if scores:
            self._score_reference(model, processor, prepared)
            del model
            processor, model = self._load(request.start)
        return processor, model, prepared

    def _score_reference(self, reference: Any, processor: Any, prepared: PreparedPairs) -> None:
        """The reference log-probs of every pair from the reference model itself (its own vision features and
        answer-only LM head), stored in the work folder where the policy's pass finds them."""
        from trl.trainer.utils import add_fused_lm_head

        store = self._freeze_vision(reference, processor, prepared)
        add_fused_lm_head(reference, outputs=self.objective.fused_outputs)
        with self.acc.autocast():
            self._reference_logps(reference, prepared, self._collator(processor, prepared, store, reference))

    def _load(self, folder: Path) -> tuple[Any, Any]:
        """The checkpoint ``folder`` (the policy's start, or the reference), dropout off, on the accelerate
        device."""
        from trl.trainer.utils import disable_dropout_in_model

        o = self.o
        self._check_sharding()
        processor, model = load_pretrained(
            str(folder),
            dtype=resolve_dtype(o.dtype),
            attn_implementation=o.attn_implementation,
            trust_remote_code=o.trust_remote_code,
        )
        disable_dropout_in_model(model)
        return processor, model.to(self.acc.device)

    def _prepare_pairs(self, processor: Any) -> PreparedPairs:
        """The round's pairs tokenised; those left out are reported, and a round with none left is an error."""
        o, request = self.o, self.request
        pairs = [*request.pairs, *request.eval_pairs]
        prepared = prepare_pairs(
            pairs, request.frames, processor, system_prompt=o.system_prompt, max_length=o.max_length
        )
        self.result.skipped = prepared.skipped
        held_out = {p.id for p in request.eval_pairs}
        if not any(e["id"] not in held_out for e in prepared.examples):
            first = prepared.skipped[0].message if prepared.skipped else "no pairs"
            raise TrainingError(f"round {request.round}: no pair can be trained on ({first})")
        return prepared

    def _freeze_vision(self, model: Any, processor: Any, prepared: PreparedPairs) -> FeatureStore | None:
        """With ``freeze_vision``: the tower frozen (and the projector, unless ``train_projector``). With both
        frozen, every video encoded once into the store of these vision weights (``cache/vision/<hash>``); else
        None (pixels go in each step, through the frozen tower)."""
        freeze_vision_parts(model, self.o)
        if not caches_vision(self.o):
            return None
        store = FeatureStore(self.request.cache / "vision" / weights_hash(model, is_vision)[:16])
        self._encode(model, prepared, store, video_token_of(processor) if prepared.token_types else None)
        return store

    def _encode(self, model: Any, prepared: PreparedPairs, store: FeatureStore, token_type_id: int | None) -> None:
        """Encode every video not yet in ``store`` (each process a share), once, one video in memory at a time."""
        videos = prepared.videos
        todo = sorted(k for k in videos.recipes if not store.has(k))
        self.acc.wait_for_everyone()  # every process shares out the same list before any is written
        for key in todo[self.acc.process_index :: self.acc.num_processes]:
            store.put(key, encode_video(model, videos.recipes[key].prompt_ids, videos.inputs(key), token_type_id))
        self.result.vision_encodes += len(todo)
        self.acc.wait_for_everyone()

    def _prepare_model(self, model: Any) -> Any:
        """The model as it trains: TRL's fused LM head (answer-token log-probs only), LoRA when asked, gradient
        checkpointing when asked."""
        from trl.trainer.utils import add_fused_lm_head

        add_fused_lm_head(model, outputs=self.objective.fused_outputs)  # before peft wraps the model
        if self.o.shared_prefix and not self._sharded():
            add_shared_prefix(model, gradient_checkpointing=self.o.gradient_checkpointing)
        if self.o.lora is not None:
            model = self._wrap_lora(model)
        if self.o.gradient_checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            if self.o.lora is not None:
                model.enable_input_require_grads()
        return model

    def _sharded(self) -> bool:
        """Whether FSDP or DeepSpeed shards the weights. Then each sequence is computed in full: the shared prefix
        runs every layer twice in one forward, and FSDP2 gathers a layer's weights again for the backward only
        when the gradient reaches that layer's outputs, which the prefix's KV cache bypasses (the last layer's
        weights are then found freed)."""
        from accelerate.utils import DistributedType

        return self.acc.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED)

    def _check_sharding(self) -> None:
        """Under FSDP or DeepSpeed, what the round supports: every process loads the whole model (the videos are
        encoded and the reference log-probs computed before ``prepare`` shards it), and no LoRA (merging the
        adapter needs the whole model on one process)."""
        if not self._sharded():
            return
        fsdp = getattr(self.acc.state, "fsdp_plugin", None)
        deepspeed = getattr(self.acc.state, "deepspeed_plugin", None)
        if (fsdp is not None and fsdp.cpu_ram_efficient_loading) or (
            deepspeed is not None and deepspeed.zero3_init_flag
        ):
            raise TrainingError(
                "fsdp_cpu_ram_efficient_loading / zero3_init_flag: true is not supported: every process needs the "
                "whole model before it is sharded; set it to false (examples/accelerate/fsdp2.yaml, zero3.yaml)"
            )
        if self.o.lora is not None:
            raise TrainingError(
                "lora with FSDP or DeepSpeed is not supported; use DDP (examples/accelerate/multi_gpu.yaml)"
            )

    def _wrap_lora(self, model: Any) -> Any:
        from peft import LoraConfig, get_peft_model

        assert self.o.lora is not None
        lora = self.o.lora
        config = LoraConfig(
            r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=lora.target_modules
        )
        return get_peft_model(model, config)

    def _collator(
        self, processor: Any, prepared: PreparedPairs, store: FeatureStore | None, model: Any
    ) -> VideoPreferenceCollator:
        """Batches of pairs (chosen rows, then rejected rows) with their videos: cached features or pixels."""
        return VideoPreferenceCollator(
            pad_token_id=processor.tokenizer.pad_token_id,
            videos=prepared.videos,
            features=store,
            token_types=prepared.token_types,
            video_token_id=video_token_of(processor),
            device=self.acc.device,
            dtype=next(model.parameters()).dtype,
            shared_prefix=shares_prefix(model),
        )

    # -- reference log-probs --------------------------------------------------------------------------

    def _pairs_with_reference(
        self, model: Any, prepared: PreparedPairs, collator: VideoPreferenceCollator
    ) -> list[dict[str, Any]]:
        """The training examples: every pair with its reference log-probs (TRL's ``ref_*_logps`` keys)."""
        reference = self._reference_logps(model, prepared, collator)
        examples = [
            {**e, "ref_chosen_logps": reference[e["id"]][0], "ref_rejected_logps": reference[e["id"]][1]}
            for e in prepared.examples
        ]
        return examples

    def _reference_logps(
        self, model: Any, prepared: PreparedPairs, collator: VideoPreferenceCollator
    ) -> dict[str, list[float]]:
        """Reference log-probs of every pair (chosen, rejected), computed once per round and kept on disk."""
        from accelerate.utils import gather_object

        stored = self._stored_reference_logps()
        if stored is not None:
            return stored
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
            stored_as = {"reference": self._reference_id(), "logps": merged}
            write_text_atomic(self.request.work / "reference_logps.json", json.dumps(stored_as))
        self.acc.wait_for_everyone()
        return merged

    def _reference_id(self) -> dict[str, Any]:
        """What identifies the round's reference: its folder and its completion marker, as JSON reads them."""
        reference = {"folder": str(self.request.reference), **read_marker(self.request.reference)}
        return dict(json.loads(json.dumps(reference, default=str)))

    def _stored_reference_logps(self) -> dict[str, list[float]] | None:
        """The reference log-probs this round stored before (``work/reference_logps.json``) for this reference,
        or None."""
        path = self.request.work / "reference_logps.json"
        if not path.is_file():
            return None
        stored = json.loads(path.read_text())
        return dict(stored["logps"]) if stored.get("reference") == self._reference_id() else None

    # -- the training steps ---------------------------------------------------------------------------

    def _train(
        self, model: Any, collator: VideoPreferenceCollator, examples: list[dict[str, Any]]
    ) -> tuple[Any, _Progress]:
        """The training steps with their step checkpoints, from the last complete one when resuming; the model
        as accelerate prepared it, and where the steps ended."""
        o, request = self.o, self.request
        plan = _Plan.of(len(examples), o, self.acc.num_processes)
        model, optimizer, scheduler = self._optimiser(model, plan)
        trainable = [p for p in model.parameters() if p.requires_grad]  # after prepare: FSDP2 swaps them for shards
        _gather_head_each_forward(model)
        progress = self._resume()
        model.train()
        while progress.micro < plan.total_micro:
            if not self._micro_step(model, collator, examples, plan, progress):
                continue  # gradients accumulate until the step's last micro-batch
            self._optimizer_step(trainable, optimizer, scheduler, progress)
            if request.progress is not None:
                request.progress(f"round {request.round}", progress.step, plan.total_steps)
            if progress.step % o.save_steps == 0 and progress.micro < plan.total_micro:
                self._save_step(model, progress.step, progress.micro, dict(progress.curves))
        if o.report_to:
            self.acc.end_training()
        return model, progress

    def _optimiser(self, model: Any, plan: _Plan) -> tuple[Any, Any, Any]:
        """AdamW over the trainable parameters (a group per learning rate: ``learning_rates``) and its schedule;
        model and optimizer prepared by accelerate, the scheduler registered for step checkpoints, the trackers
        started."""
        from transformers import get_scheduler

        o, acc = self.o, self.acc
        optimizer = torch.optim.AdamW(parameter_groups(model, o), lr=o.learning_rate, weight_decay=o.weight_decay)
        scheduler = get_scheduler(
            o.lr_scheduler_type,
            optimizer,
            num_warmup_steps=round(o.warmup_ratio * plan.total_steps),
            num_training_steps=plan.total_steps,
        )
        model, optimizer = acc.prepare(model, optimizer)
        acc.register_for_checkpointing(scheduler)
        if o.report_to:
            acc.init_trackers(f"round-{self.request.round}")
        return model, optimizer, scheduler

    def _resume(self) -> _Progress:
        """The start of the round, or with ``resume`` the last complete step checkpoint's state: model,
        optimizer, scheduler and RNG (accelerate), step, micro-batch, skipped steps and curves."""
        progress = _Progress()
        last = latest_complete(self.request.work, "step") if self.request.resume else None
        if last is not None:
            self.acc.load_state(str(last))
            marker = read_marker(last)
            progress.step, progress.micro = int(marker["step"]), int(marker["micro"])
            self.result.skipped_steps = int(marker["skipped_steps"])
            progress.curves.update({k: list(v) for k, v in marker["curves"].items()})
            self.result.resumed_from_step = progress.step
        return progress

    def _order(self, epoch: int, n: int) -> list[int]:
        order = list(range(n))
        random.Random(f"{self.o.seed}-{self.request.round}-{epoch}").shuffle(order)
        return order

    def _micro_batch(
        self, collator: VideoPreferenceCollator, examples: list[dict[str, Any]], plan: _Plan, micro: int
    ) -> Any:
        """This process's share of micro-batch ``micro``: a pure function of (seed, round, epoch), so a resumed
        round sees the batches an uninterrupted one does."""
        epoch, index = divmod(micro, plan.micro_per_epoch)
        order = self._order(epoch, len(examples))
        chunk = [order[(index * plan.per_micro + k) % len(order)] for k in range(plan.per_micro)]
        return collator([examples[i] for i in chunk[self.acc.process_index :: self.acc.num_processes]])

    def _micro_step(
        self,
        model: Any,
        collator: VideoPreferenceCollator,
        examples: list[dict[str, Any]],
        plan: _Plan,
        progress: _Progress,
    ) -> bool:
        """Forward and backward of the next micro-batch (gradients synchronised on a step's last one); its loss
        and TRL's metrics wait in ``progress.pending``. Whether the optimizer step is due."""
        acc = self.acc
        batch = self._micro_batch(collator, examples, plan, progress.micro)
        group, sync = plan.group(progress.micro)
        with contextlib.nullcontext() if sync else acc.no_sync(model):
            loss, metrics = self.objective.loss(model, batch)
            acc.backward(loss / group)
        progress.pending["loss"].append(float(acc.gather(loss.detach()).mean()))
        for name, value in metrics.items():
            if name in CURVES:
                progress.pending[CURVES[name]].append(value)
        progress.micro += 1
        return sync

    def _optimizer_step(
        self, trainable: list[torch.nn.Parameter], optimizer: Any, scheduler: Any, progress: _Progress
    ) -> None:
        """Clip and step; or, when the loss or the gradient norm is not finite, skip the step (``max_bad_steps``
        skipped in a row stop the run). A step taken goes into the curves."""
        o, request = self.o, self.request
        norm = self.acc.clip_grad_norm_(trainable, o.max_grad_norm)
        finite = math.isfinite(float(norm)) and all(math.isfinite(v) for v in progress.pending["loss"])
        if finite:
            optimizer.step()
            scheduler.step()
            progress.bad = 0
        else:
            self.result.skipped_steps += 1
            progress.bad += 1
        optimizer.zero_grad(set_to_none=True)
        progress.step += 1
        if progress.bad >= o.max_bad_steps:
            raise TrainingError(
                f"round {request.round}: {progress.bad} steps in a row had a non-finite loss or gradient (last at "
                f"step {progress.step}); lower learning_rate or check the data; complete checkpoints are kept in "
                f"{request.work}"
            )
        if finite:
            self._record_step(progress, float(norm), scheduler.get_last_lr()[0])
        progress.pending.clear()

    def _record_step(self, progress: _Progress, grad_norm: float, lr: float) -> None:
        """The step's curves: its number, gradient norm, learning rate, and the means of its micro-batches'
        loss and metrics; logged to the trackers when there are any."""
        curves = progress.curves
        curves["step"].append(progress.step)
        curves["grad_norm"].append(grad_norm)
        curves["lr"].append(lr)
        for name, values in progress.pending.items():
            curves[name].append(sum(values) / len(values))
        if self.o.report_to:
            self.acc.log({name: values[-1] for name, values in curves.items()}, step=progress.step)

    def _save_step(self, model: Any, step: int, micro: int, curves: dict[str, list[float]]) -> None:
        """A step checkpoint every process writes into; complete (marker, rename) only once all are done. A
        failure on one process, in the main process's steps too, stops every process with its cause."""
        work, processes = self.request.work, Processes(self.acc.process_index, self.acc.num_processes)
        final, tmp = work / f"step-{step}", work / f".step-{step}.partial"
        with processes.together():
            if processes.main:
                shutil.rmtree(tmp, ignore_errors=True)
                tmp.mkdir(parents=True)
        check_finite(model)
        with processes.together():
            self.acc.save_state(str(tmp))
        with processes.together():
            if processes.main:
                info = {"step": step, "micro": micro, "skipped_steps": self.result.skipped_steps, "curves": curves}
                mark_complete(tmp, final, info)
                prune(work, "step", self.o.keep_step_checkpoints)

    # -- held-out pairs -------------------------------------------------------------------------------

    def _evaluate(
        self, model: Any, collator: VideoPreferenceCollator, examples: list[dict[str, Any]]
    ) -> dict[str, float]:
        """The held-out pairs under the trained policy: DPO loss, reward accuracy and margin (TRL's metrics),
        means over the pairs; empty without held-out pairs. Every process scores its share of each batch (the
        metrics are gathered), so a batch smaller than the processes lends its first pair to the idle ones."""
        if not examples:
            return {}
        acc, per = self.acc, self.o.batch_size * self.acc.num_processes
        sums = {"loss": 0.0, "accuracy": 0.0, "margin": 0.0}
        model.eval()
        with torch.no_grad(), acc.autocast():
            for start in range(0, len(examples), per):
                batch = examples[start : start + per]
                share = batch[acc.process_index :: acc.num_processes] or batch[:1]
                loss, metrics = self.objective.loss(model, collator(share))
                sums["loss"] += float(acc.gather(loss.detach()).mean()) * len(batch)
                sums["accuracy"] += metrics["rewards/accuracies"] * len(batch)
                sums["margin"] += metrics["rewards/margins"] * len(batch)
        return {**{name: total / len(examples) for name, total in sums.items()}, "pairs": float(len(examples))}

    # -- finishing the policy -------------------------------------------------------------------------

    def _save_policy(self, model: Any, processor: Any) -> None:
        """The policy as a complete checkpoint folder (LoRA: the adapter in ``adapter/`` and the merged model);
        the round's step checkpoints are no longer needed. The main process writes it; a failure there stops
        every process with its cause."""
        acc = self.acc
        check_finite(model)
        state = None if self.o.lora is not None else acc.get_state_dict(model)  # every process takes part
        processes = Processes(acc.process_index, acc.num_processes)
        with processes.together():
            if processes.main:
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
