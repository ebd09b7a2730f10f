"""The Iter-W2S-RLAIF round loop (``mmaip train``)::

    reference <- base model; model_0 <- base model
    for round t = 1..T:
        policy_t  <- trainer(init = model_{t-1}, reference = reference, pairs of round t)
        strong_t  <- policy_t + alpha * (policy_t - anchor)      # anchor: this round's reference, or the base
        model_t   <- strong_t (policy_t when alpha = 0)          # the round's model: the next round starts here
        reference <- the reference-update policy's combination of (base, reference, policy_t, strong_t)
    final <- model_T (keep: best -> the model_t with the best held-out reward accuracy)

Training always continues from the last round's model; the reference policy decides only what the next round is
measured against (``fixed``: every round is DPO against the base, training continued). With held-out pairs
(``eval_pairs`` or ``eval_fraction``) the trainer scores them after every round (``RoundResult.eval``).

The trainer is a plugin; the extrapolation and the reference combinations are streamed over the safetensors
files (:mod:`mmaip_core.train.extrapolate`). Every checkpoint is complete or absent (:mod:`mmaip_core.store.checkpoints`),
and ``OUT/manifest.json`` records each round once it is complete, so ``resume`` continues from the last
complete round (and the trainer from its last complete step inside the round).

Under ``accelerate launch`` every process runs this loop; the trainer shares the work, and only the main
process writes the extrapolated models and the manifest; a failure in such a main-only step stops every process
(:mod:`mmaip_core.train.processes`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from mmaip_core.config import RunConfig, TrainConfig
from mmaip_core.errors import TrainingError, UserError
from mmaip_core.frames import FrameLoader
from mmaip_core.plugins.kinds import Frames, PolicyTrainer, ReferencePolicy, RoundRequest
from mmaip_core.plugins.manager import PluginManager
from mmaip_core.records import ItemError, RoundRecord, RoundResult, TrainManifest, TrainPair
from mmaip_core.store import layout
from mmaip_core.store.checkpoints import is_complete, read_marker
from mmaip_core.store.files import read_record, write_text_atomic
from mmaip_core.store.jsonl import write_jsonl_atomic
from mmaip_core.store.manifest import run_manifest
from mmaip_core.store.runfolder import locked
from mmaip_core.train.extrapolate import combine_checkpoints, extrapolate
from mmaip_core.train.pairs import hold_out, read_train_pairs, round_shard
from mmaip_core.train.plot import plot_curves
from mmaip_core.train.processes import Processes

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


def _round_pairs(
    train: TrainConfig, pairs: list[TrainPair], t: int, start: Path, reference: Path, manager: PluginManager
) -> list[TrainPair]:
    chosen = round_shard(pairs, train.rounds, t, train.seed) if train.schedule == "shards" else list(pairs)
    return chosen + list(manager.call_round_pairs(t, str(start), str(reference), chosen))


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
    processes = Processes.current()
    with ExitStack() as held:
        with processes.together():  # a busy folder stops every process, not only the main one
            if processes.main:
                held.enter_context(locked(out))
        return _run_rounds(config, Path(out), manager, resume, progress, command)


@dataclass(frozen=True)
class _Run:
    """What every round of one training run shares."""

    train: TrainConfig
    trainer: PolicyTrainer
    policy: ReferencePolicy
    manager: PluginManager
    out: Path
    pairs: list[TrainPair]
    held_out: list[TrainPair]
    frames: Callable[[str], Frames]
    resume: bool
    progress: TrainProgress | None
    processes: Processes

    @property
    def base(self) -> Path:
        return self.out / "base"

    @property
    def manifest_path(self) -> Path:
        return self.out / layout.TRAIN_MANIFEST


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
    manifest = _load_manifest(out / layout.TRAIN_MANIFEST, trainer, resume)
    pairs, held_out, bad = _usable_pairs(train)
    frames = FrameLoader(train.frames or config.frames, manager).load  # each call reads the frame cache on disk
    run = _Run(train, trainer, policy, manager, out, pairs, held_out, frames, resume, progress, Processes.current())
    _prepare_folder(run, bad)
    manifest = manifest or _new_manifest(config, run, command)
    for t in range(len(manifest.rounds) + 1, train.rounds + 1):
        _run_round(run, manifest, t)
    kept = _kept_round(manifest.rounds, train.keep)
    manifest.final, manifest.final_round = str(_round_model(kept)), kept.round
    with run.processes.together():
        if run.processes.main:
            write_text_atomic(run.manifest_path, manifest.model_dump_json(indent=2))
            plot_curves(manifest, out / "curves.png")
    return manifest


def _new_manifest(config: RunConfig, run: _Run, command: list[str] | None) -> TrainManifest:
    """The manifest of a training run with no round yet."""
    return TrainManifest(
        base=str(run.base),
        trainer=run.train.trainer.plugin,
        trainer_fingerprint=run.trainer.fingerprint,
        rounds_planned=run.train.rounds,
        keep=run.train.keep,
        run=run_manifest(config.resolved(run.manager), run.manager, command or sys.argv),
    )


def _prepare_folder(run: _Run, bad: list[ItemError]) -> None:
    """The run folder with the unusable pair lines, the held-out pairs and the base model (main process)."""
    with run.processes.together():  # main-only steps: a failure there stops every process
        if run.processes.main:
            run.out.mkdir(parents=True, exist_ok=True)
            write_jsonl_atomic(run.out / "pair_errors.jsonl", bad)
            write_jsonl_atomic(run.out / "eval_pairs.jsonl", run.held_out)
            if not is_complete(run.base):
                run.trainer.save_base(run.base)


def _run_round(run: _Run, manifest: TrainManifest, t: int) -> None:
    """Round ``t``: its pairs, its trained policy, the extrapolation and next reference, its manifest record."""
    last = manifest.rounds[-1] if manifest.rounds else None
    reference = Path(last.next_reference) if last else run.base
    start = _round_model(last) if last else run.base
    main = run.processes.main
    folder = run.out / f"round-{t}"
    round_pairs = _round_pairs(run.train, run.pairs, t, start, reference, run.manager)
    with run.processes.together():
        if main:
            write_jsonl_atomic(folder / layout.PAIRS, round_pairs)
    request = RoundRequest(
        round=t,
        reference=reference,
        init=start,
        pairs=round_pairs,
        eval_pairs=run.held_out,
        out=folder / "policy",
        work=folder / "work",
        cache=run.out / "cache",
        frames=run.frames,
        resume=run.resume,
        progress=run.progress if main else None,
    )
    result = _train_policy(run.trainer, request)
    with run.processes.together():  # the main process extrapolates and writes the manifest
        record = _finish_round(run, t, reference, folder, result)
        record.init = str(start)
        manifest.rounds.append(record)
        if main:
            write_text_atomic(run.manifest_path, manifest.model_dump_json(indent=2))


def _usable_pairs(train: TrainConfig) -> tuple[list[TrainPair], list[TrainPair], list[ItemError]]:
    """The training pairs, the held-out pairs and the lines that could not be used; an error when they cannot
    fill the rounds."""
    pairs, bad = read_train_pairs(train.pairs)
    if not pairs:
        first = bad[0].message if bad else "-"
        raise UserError(f"{train.pairs}: no usable pair ({len(bad)} bad lines; first: {first})")
    pairs, held_out, bad_held_out = _held_out_pairs(train, pairs)
    if train.schedule == "shards" and len(pairs) < train.rounds:
        raise UserError(
            f"{train.pairs}: {len(pairs)} usable pair(s) cannot fill {train.rounds} shards (schedule: shards)"
        )
    return pairs, held_out, [*bad, *bad_held_out]


def _held_out_pairs(
    train: TrainConfig, pairs: list[TrainPair]
) -> tuple[list[TrainPair], list[TrainPair], list[ItemError]]:
    """(training pairs, held-out pairs, bad lines of the held-out file): ``eval_pairs`` read, or ``eval_fraction``
    of the pairs held out; no held-out pair is trained on."""
    if train.eval_fraction > 0:
        if len(pairs) < 2:
            raise UserError(f"{train.pairs}: eval_fraction needs at least 2 usable pairs, found {len(pairs)}")
        return *hold_out(pairs, train.eval_fraction, train.seed), []
    if train.eval_pairs is None:
        return pairs, [], []
    held_out, bad = read_train_pairs(train.eval_pairs)
    if not held_out:
        raise UserError(f"{train.eval_pairs}: no usable held-out pair ({len(bad)} bad lines)")
    shared = sorted({p.id for p in pairs} & {p.id for p in held_out})
    if shared:
        raise UserError(f"{train.eval_pairs}: pair ids also in {train.pairs}: {', '.join(shared[:5])}")
    return pairs, held_out, bad


def _round_model(record: RoundRecord) -> Path:
    """The model a round ends with: its extrapolated model, or its policy when alpha = 0."""
    return Path(record.strong or record.policy)


def _kept_round(rounds: list[RoundRecord], keep: str) -> RoundRecord:
    """The round whose model is final: the last, or (``best``) the best held-out reward accuracy, then the
    lowest held-out loss, then the earliest."""
    if keep == "last":
        return rounds[-1]
    return min(rounds, key=lambda r: (-r.result.eval.get("accuracy", -1.0), r.result.eval.get("loss", 0.0), r.round))


def _train_policy(trainer: PolicyTrainer, request: RoundRequest) -> RoundResult:
    """The round's policy: trained, or found complete (trained before a kill that came before the round was
    recorded); an error when the trainer returns without a complete policy."""
    if is_complete(request.out):
        return RoundResult.model_validate(read_marker(request.out)["result"])
    result = trainer.train_round(request)
    if not is_complete(request.out):
        raise TrainingError(f"round {request.round}: the trainer returned without a complete policy in {request.out}")
    return result


def _finish_round(run: _Run, t: int, reference: Path, folder: Path, result: RoundResult) -> RoundRecord:
    """Extrapolate, build the next reference, and describe the round (files are written by the main process)."""
    train, base, main, policy_dir = run.train, run.base, run.processes.main, folder / "policy"
    anchor = reference if train.anchor == "reference" else base
    strong = folder / "strong" if train.alpha > 0 else None
    if main and strong is not None and not is_complete(strong):
        extrapolate(policy_dir, anchor, train.alpha, strong, include_vision=train.extrapolate_vision)
    update = run.policy.next_reference(t)
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
