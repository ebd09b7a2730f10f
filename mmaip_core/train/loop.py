"""The Iter-W2S-RLAIF round loop (``mmaip train``)::

    reference <- base model
    for round t = 1..T:
        policy_t  <- trainer(init = reference, reference = reference, pairs of round t)
        strong_t  <- policy_t + alpha * (policy_t - anchor)      # anchor: this round's reference, or the base
        reference <- the reference-update policy's combination of (base, reference, policy_t, strong_t)
    final <- strong_T (policy_T when alpha = 0)

The trainer is a plugin; the extrapolation and the reference combinations are streamed over the safetensors
files (:mod:`mmaip_core.train.extrapolate`). Every checkpoint is complete or absent (:mod:`mmaip_core.store.checkpoints`),
and ``OUT/manifest.json`` records each round once it is complete, so ``resume`` continues from the last
complete round (and the trainer from its last complete step inside the round).

Under ``accelerate launch`` every process runs this loop; the trainer shares the work, and only the main
process writes the extrapolated models and the manifest.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

from mmaip_core.config import RunConfig, TrainConfig
from mmaip_core.errors import TrainingError, UserError
from mmaip_core.frames import FrameLoader
from mmaip_core.plugins.kinds import PolicyTrainer, ReferencePolicy, RoundRequest
from mmaip_core.plugins.manager import PluginManager
from mmaip_core.records import ItemError, RoundRecord, RoundResult, TrainManifest, TrainPair
from mmaip_core.store import layout
from mmaip_core.store.checkpoints import is_complete, read_marker
from mmaip_core.store.files import read_record, write_text_atomic
from mmaip_core.store.jsonl import write_jsonl_atomic
from mmaip_core.store.manifest import run_manifest
from mmaip_core.store.runfolder import locked
from mmaip_core.train.extrapolate import combine_checkpoints, extrapolate
from mmaip_core.train.pairs import read_train_pairs, round_shard
from mmaip_core.train.plot import plot_curves

__all__ = ["TrainProgress", "run_training"]

TrainProgress = Callable[[str, int, int], None]
"""Called as ``progress(task, done, total)``, e.g. ``("round 1", 12, 40)``."""


def _load_manifest(path: Path, trainer: PolicyTrainer, resume: bool) -> TrainManifest | None:
    if not path.is_file():
        return None
    if not resume:
        raise UserError(
            f"{path.parent} already holds a training run; pass --resume to continue it, or choose another --out"
        )
    manifest = read_record(path, TrainManifest)
    if manifest.trainer_fingerprint != trainer.fingerprint:
        raise UserError(
            f"{path.parent} was trained with other trainer options (fingerprint {manifest.trainer_fingerprint}, "
            f"now {trainer.fingerprint}); resume needs the same options"
        )
    return manifest


def _main_process() -> tuple[bool, Callable[[], None]]:
    """(is this the main process, a barrier) under ``accelerate launch``; (True, no-op) otherwise."""
    import torch
    from accelerate import PartialState

    state = PartialState(cpu=not torch.cuda.is_available())  # several CPU processes: gloo
    return state.is_main_process, state.wait_for_everyone


def _round_pairs(
    train: TrainConfig, pairs: list[TrainPair], t: int, reference: Path, manager: PluginManager
) -> list[TrainPair]:
    chosen = round_shard(pairs, train.rounds, t, train.seed) if train.schedule == "shards" else list(pairs)
    return chosen + list(manager.call_round_pairs(t, str(reference), chosen))


def run_training(
    config: RunConfig,
    out: str | Path,
    manager: PluginManager,
    *,
    resume: bool = False,
    progress: TrainProgress | None = None,
    command: list[str] | None = None,
) -> TrainManifest:
    """Run (or resume) every round of the config's ``train`` section into ``out``; return the manifest.

    The main process holds ``out`` while it runs (:func:`mmaip_core.store.runfolder.locked`): a second training
    into the same folder stops at once."""
    main, _ = _main_process()
    with locked(out) if main else nullcontext(Path(out)) as folder:
        return _run_rounds(config, folder, manager, resume, progress, command)


def _run_rounds(
    config: RunConfig,
    out: Path,
    manager: PluginManager,
    resume: bool,
    progress: TrainProgress | None,
    command: list[str] | None,
) -> TrainManifest:
    train = config.train
    if train is None:
        raise UserError("the config has no `train` section")
    trainer = manager.create("trainer", train.trainer.plugin, train.trainer.options)
    policy = manager.create("reference-policy", train.reference.plugin, train.reference.options)
    main, barrier = _main_process()
    manifest_path = out / layout.TRAIN_MANIFEST
    manifest = _load_manifest(manifest_path, trainer, resume)
    pairs, bad = _usable_pairs(train)
    base = out / "base"
    if main:
        out.mkdir(parents=True, exist_ok=True)
        write_jsonl_atomic(out / "pair_errors.jsonl", bad)
        if not is_complete(base):
            trainer.save_base(base)
    barrier()
    manifest = manifest or TrainManifest(
        base=str(base),
        trainer=train.trainer.plugin,
        trainer_fingerprint=trainer.fingerprint,
        rounds_planned=train.rounds,
        run=run_manifest(config.resolved(manager), manager, command or sys.argv),
    )
    frames = FrameLoader(train.frames or config.frames, manager).load  # each call reads the frame cache on disk
    reference = Path(manifest.rounds[-1].next_reference) if manifest.rounds else base
    for t in range(len(manifest.rounds) + 1, train.rounds + 1):
        folder = out / f"round-{t}"
        round_pairs = _round_pairs(train, pairs, t, reference, manager)
        if main:
            write_jsonl_atomic(folder / layout.PAIRS, round_pairs)
        policy_dir = folder / "policy"
        request = RoundRequest(
            round=t,
            reference=reference,
            pairs=round_pairs,
            out=policy_dir,
            work=folder / "work",
            cache=out / "cache",
            frames=frames,
            resume=resume,
            progress=progress if main else None,
        )
        result = _train_policy(trainer, request)
        record = _finish_round(train, policy, t, base, reference, policy_dir, folder, result, main)
        barrier()
        manifest.rounds.append(record)
        reference = Path(record.next_reference)
        if main:
            write_text_atomic(manifest_path, manifest.model_dump_json(indent=2))
    last = manifest.rounds[-1]
    manifest.final = last.strong or last.policy
    if main:
        write_text_atomic(manifest_path, manifest.model_dump_json(indent=2))
        plot_curves(manifest, out / "curves.png")
    barrier()
    return manifest


def _usable_pairs(train: TrainConfig) -> tuple[list[TrainPair], list[ItemError]]:
    """The training pairs and the lines that could not be used; an error when they cannot fill the rounds."""
    pairs, bad = read_train_pairs(train.pairs)
    if not pairs:
        first = bad[0].message if bad else "-"
        raise UserError(f"{train.pairs}: no usable pair ({len(bad)} bad lines; first: {first})")
    if train.schedule == "shards" and len(pairs) < train.rounds:
        raise UserError(
            f"{train.pairs}: {len(pairs)} usable pair(s) cannot fill {train.rounds} shards (schedule: shards)"
        )
    return pairs, bad


def _train_policy(trainer: PolicyTrainer, request: RoundRequest) -> RoundResult:
    """The round's policy: trained, or found complete (trained before a kill that came before the round was
    recorded); an error when the trainer returns without a complete policy."""
    if is_complete(request.out):
        return RoundResult.model_validate(read_marker(request.out)["result"])
    result = trainer.train_round(request)
    if not is_complete(request.out):
        raise TrainingError(f"round {request.round}: the trainer returned without a complete policy in {request.out}")
    return result


def _finish_round(
    train: TrainConfig,
    policy: ReferencePolicy,
    t: int,
    base: Path,
    reference: Path,
    policy_dir: Path,
    folder: Path,
    result: RoundResult,
    main: bool,
) -> RoundRecord:
    """Extrapolate, build the next reference, and describe the round (files are written by the main process)."""
    anchor = reference if train.anchor == "reference" else base
    strong = folder / "strong" if train.alpha > 0 else None
    if main and strong is not None and not is_complete(strong):
        extrapolate(policy_dir, anchor, train.alpha, strong, include_vision=train.extrapolate_vision)
    update = policy.next_reference(t)
    sources: dict[str, Path] = {
        "base": base,
        "reference": reference,
        "policy": policy_dir,
        "strong": strong or policy_dir,
    }
    if update.single is not None:
        next_reference = sources[update.single]
    else:
        next_reference = folder / "next-reference"
        if main and not is_complete(next_reference):
            used: dict[str, str | Path] = {name: sources[name] for name in update.weights}
            weights = {str(name): w for name, w in update.weights.items()}
            combine_checkpoints(weights, {**used, "policy": policy_dir}, next_reference, copy_from="policy")
    return RoundRecord(
        round=t,
        reference=str(reference),
        policy=str(policy_dir),
        strong=str(strong) if strong else None,
        alpha=train.alpha,
        anchor=str(anchor),
        reference_policy=train.reference.plugin,
        next_reference=str(next_reference),
        next_reference_weights=dict(update.weights),
        shard=t if train.schedule == "shards" else None,
        pairs_file=str(folder / layout.PAIRS),
        result=result,
    )
