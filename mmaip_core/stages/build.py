"""The build stage (MMAIP-V): zoo answers -> scores -> preference pairs, every call through the ledger.

``run_build(config, out, manager)`` writes into ``out``:

- ``ledger.sqlite``: every generation and judgement, keyed by content (see :mod:`mmaip_core.store.ledger`);
- ``samples.jsonl`` (VideoQA), ``frames.jsonl`` (FrameManifest per frame key);
- ``responses.jsonl`` (AnnotatedResponse: every answer with its judgements and frame key);
- ``pairs.jsonl`` (PreferencePair); ``errors.jsonl`` (every item that failed, with its cause);
- ``run-manifest.json`` and ``summary.json``.

Output files are written atomically. Rerunning the same command asks no model again for a finished call;
changing one zoo entry re-asks only that entry's calls and the judgements of its answers.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from mmaip_core.calls.local import local_worker
from mmaip_core.calls.pricing import BATCH_DISCOUNT
from mmaip_core.config import PluginChoice, RunConfig, ZooEntry, resolve_again
from mmaip_core.errors import ConfigError, EmptyRunError, VideoError
from mmaip_core.frames import FrameLoader
from mmaip_core.plugins.kinds import (
    AsyncResponseGenerator,
    AsyncScorer,
    BatchScorer,
    Frames,
    GenerationRequest,
    ResponseGenerator,
    Scorer,
    ScoreRequest,
)
from mmaip_core.plugins.manager import PluginManager
from mmaip_core.records import AnnotatedResponse, PreferencePair, Response, VideoQA
from mmaip_core.stages.build_sample import BuildOutputs, SampleBuilder, SampleOutcome, pairs_of
from mmaip_core.stages.models import SCORE_BATCH, Answerer, Judge
from mmaip_core.stages.run import (
    BuildSummary,
    ItemError,
    Progress,
    StageRun,
    first_error,
    generation_key,
    stage_sections,
    write_run_manifest,
)
from mmaip_core.stages.score import judgement_key
from mmaip_core.stages.shards import merge_shards, shard_folder, shards_done
from mmaip_core.stages.stream import (
    WHOLE,
    FrameSource,
    Shard,
    Window,
    count_samples,
    quiet,
    stream_in_order,
    stream_samples,
)
from mmaip_core.store import layout
from mmaip_core.store.files import read_record, write_text_atomic
from mmaip_core.store.jsonl import read_jsonl, write_jsonl_atomic
from mmaip_core.store.runfolder import check_config, locked

__all__ = [
    "BuildPlan",
    "BuildSummary",
    "ItemError",
    "Progress",
    "generation_key",
    "judgement_key",
    "make_pairs",
    "plan_build",
    "re_pair",
    "require_build_files",
    "run_build",
]


def make_pairs(
    manager: PluginManager,
    strategy: str,
    options: dict[str, Any],
    samples: Sequence[VideoQA],
    annotated: Iterable[AnnotatedResponse],
) -> tuple[list[PreferencePair], Counter[str]]:
    """Pairs of every sample from its successfully scored responses; skipped questions by reason."""
    pairing = manager.create("pair-strategy", strategy, options)
    lines: dict[str, list[AnnotatedResponse]] = {s.id: [] for s in samples}
    for line in annotated:
        lines.setdefault(line.response.sample_id, []).append(line)
    pairs: list[PreferencePair] = []
    skipped: Counter[str] = Counter()
    for sample in samples:
        made, why = pairs_of(pairing, sample, lines[sample.id])
        pairs.extend(made)
        if why:
            skipped[why] += 1
    return pairs, skipped


def _require_sections(config: RunConfig) -> None:
    missing = [name for name, value in (("samples", config.samples), ("scorer", config.scorer)) if value is None]
    if missing or not config.zoo:
        raise ConfigError([f"{name}: a build needs this section" for name in missing or ["zoo"]])


BUILD_SECTIONS = ("samples", "frames", "zoo", "scorer", "pairs", "prices")
"""The config sections a build reads: a run folder remembers them (:mod:`mmaip_core.store.runfolder`)."""


def run_build(
    config: RunConfig,
    out: str | Path,
    manager: PluginManager,
    progress: Progress | None = None,
    max_cost: float | None = None,
    allow_config_change: bool = False,
    limit: int | None = None,
    shard: Shard = WHOLE,
) -> BuildSummary:
    """Run the whole build into ``out`` (resuming from its ledger) and return the summary.

    ``limit`` builds the first ``limit`` samples only. A ``shard`` of several builds its share of the samples
    in a folder of its own (:mod:`mmaip_core.stages.shards`); the last shard to end merges them into ``out``
    and returns the merged summary (the others return their own).

    ``max_cost`` (USD, the folder's earlier spending included) admits an API call only while its estimated
    cost still fits; calls that do not fit are not made, and a rerun with a larger limit makes them. The
    folder is held by this process while the build runs, and a different config into a folder that holds a
    build stops with :class:`~mmaip_core.store.runfolder.ConfigChangedError` unless ``allow_config_change``. A build
    that reads no sample, or in which nothing succeeded, writes its outputs and raises EmptyRunError.
    """
    _require_sections(config)
    out = Path(out)
    with locked(shard_folder(out, shard) if shard.count > 1 else out) as folder:
        sections = stage_sections(config, manager, BUILD_SECTIONS)
        check_config(folder, "build", sections, allow_config_change, lambda old: resolve_again(old, manager))
        run = _build(config, folder, manager, progress or (lambda *_: None), max_cost, limit, shard)
    summary = run.summary
    if shard.count > 1:
        if not shards_done(out, shard.count):
            return summary
        summary, folder = merge_shards(config, out, manager, shard.count), out
    why = _nothing_built(summary, run)
    if why:
        raise EmptyRunError(f"{folder}: {why}; every failed item is in {folder / 'errors.jsonl'}")
    return summary


def _build(
    config: RunConfig,
    out: Path,
    manager: PluginManager,
    progress: Progress,
    max_cost: float | None,
    limit: int | None,
    shard: Shard,
) -> StageRun:
    assert config.samples is not None
    with StageRun.open(config, out, manager, progress, max_cost) as run, local_worker() as worker:
        total = count_samples(run, config.samples, limit, shard)
        builder = _builder(run, worker, total)
        outputs = BuildOutputs(run, out, builder.judge)
        asyncio.run(_passes(builder, run, (config.samples, limit, shard), outputs.emit))
        outputs.close(builder.answerers)
    write_jsonl_atomic(out / layout.ERRORS, run.errors)
    write_run_manifest(out, config, manager)
    write_text_atomic(out / layout.SUMMARY, run.summary.model_dump_json(indent=2))
    return run


def _builder(run: StageRun, worker: ThreadPoolExecutor, total: int) -> SampleBuilder:
    """The zoo's answerers, the judge and the pair strategy of ``run``'s config."""
    config = run.config
    assert config.scorer is not None
    answerers = [
        Answerer(run, entry, run.manager.create("generator", entry.plugin, entry.options), worker, total * entry.n)
        for entry in config.zoo
    ]
    scorer: Scorer = run.manager.create("scorer", config.scorer.plugin, config.scorer.options, prices=run.prices)
    judge = Judge(run, scorer, worker, total * sum(entry.n for entry in config.zoo))
    pairing = run.manager.create("pair-strategy", config.pairs.plugin, config.pairs.options)
    in_flight = judge.in_flight + sum(a.in_flight for a in answerers)
    return SampleBuilder(answerers, judge, pairing, FrameSource(run, worker, Window.for_models(in_flight).frames))


async def _passes(
    builder: SampleBuilder,
    run: StageRun,
    reading: tuple[PluginChoice, int | None, Shard],
    emit: Callable[[SampleOutcome], None],
) -> None:
    """The build's pass over the samples (``reading``: what :func:`stream_samples` reads), in one event loop. With
    provider batches there are two: the first answers and submits the judgements, then, once they are collected,
    the second (all from the ledger) writes the outputs."""
    window = Window.for_models(builder.in_flight)
    try:
        if builder.judge.batches is not None:
            await stream_in_order(stream_samples(quiet(run), *reading), window.samples, builder.build, lambda _: None)
            builder.judge.batches.collect()  # blocks the loop, which has nothing else to do
        await stream_in_order(stream_samples(run, *reading), window.samples, builder.build, emit)
    finally:
        models: list[Answerer | Judge] = [*builder.answerers, builder.judge]
        for model in models:
            await model.aclose()


def _nothing_built(s: BuildSummary, run: StageRun) -> str | None:
    """Why a build has nothing to show (no sample, no frames, no answer, no score), or None.

    A build stopped by ``--max-cost`` before its first answer is not empty: its rerun with a larger limit goes on.
    """
    if s.samples == 0:
        return f"no sample could be read ({s.row_errors} bad row(s){first_error(run, 'samples')})"
    if s.refused_by_budget:
        return None
    answers = sum(c.get("done", 0) for c in s.responses.values())
    checks = (
        (s.video_errors == s.samples, "frames", f"none of the {s.samples} samples' videos could be read"),
        (answers == 0, "generation", "no zoo model answered any question"),
        (s.judgements.get("ok", 0) == 0, "judgement", f"none of the {answers} answers could be scored"),
    )
    for failed, stage, what in checks:
        if failed:
            return what + first_error(run, stage)
    return None


class PlanRow(BaseModel):
    """One stage of a planned build."""

    stage: str
    model_id: str | None
    calls: int = Field(default=0, description="Calls the stage needs in all.")
    stored: int = Field(default=0, description="Calls already finished in the ledger.")
    new: int = Field(default=0, description="Calls that would be made.")
    estimated_usd: float = Field(default=0.0, description="Upper-bound cost of the new calls (0 for local models).")


class BuildPlan(BaseModel):
    """What ``mmaip build --dry-run`` reports: the work and its cost, before any call."""

    samples: int = 0
    videos: int = 0
    row_errors: int = 0
    video_errors: int = 0
    rows: list[PlanRow] = Field(default_factory=list)
    spent_usd: float = Field(default=0.0, description="What earlier runs of this folder already spent.")
    shard: str = Field(default="0-of-1", description="The shard planned (I-of-N).")
    window: int = Field(default=0, description="Most samples holding frames at once.")
    frames_mb: float = Field(
        default=0.0,
        description="Most memory the frames of the samples in flight take (MB): the build's peak beyond "
        "the models, whatever the number of samples.",
    )

    @property
    def estimated_usd(self) -> float:
        return sum(r.estimated_usd for r in self.rows)


def plan_build(
    config: RunConfig, out: str | Path, manager: PluginManager, limit: int | None = None, shard: Shard = WHOLE
) -> BuildPlan:
    """The calls a build would make and an upper bound of their cost; calls nothing, writes nothing.

    Frames are decoded (locally, one sample at a time) to compute the call keys. Answers not generated yet are
    assumed to be as long as their generator allows (``max_output_tokens``) and all different, when the
    judge's cost is estimated.
    """
    _require_sections(config)
    assert config.samples is not None and config.scorer is not None
    path = Path(out) / layout.LEDGER
    with StageRun.open(config, Path(out), manager, ledger=path if path.is_file() else ":memory:") as run:
        scorer: Scorer = manager.create("scorer", config.scorer.plugin, config.scorer.options, prices=run.prices)
        zoo = [(entry, manager.create("generator", entry.plugin, entry.options)) for entry in config.zoo]
        planner = _Planner(run, scorer, zoo)
        for sample in stream_samples(run, config.samples, limit, shard):
            planner.add(sample)
        return planner.plan(shard)


class _Planner:
    """The calls of a build, sample by sample (their frames released after each)."""

    def __init__(self, run: StageRun, scorer: Scorer, zoo: list[tuple[ZooEntry, ResponseGenerator]]) -> None:
        self.run, self.scorer, self.zoo = run, scorer, zoo
        self.loader = FrameLoader(run.config.frames, run.manager)
        self.rows = [PlanRow(stage=f"generation {e.name}", model_id=g.model_id) for e, g in zoo]
        self.judge_costs: dict[str, float] = {}
        self.videos: set[str] = set()
        self.samples = self.video_errors = self.frame_bytes = 0

    def add(self, sample: VideoQA) -> None:
        self.samples += 1
        try:
            frames = self.loader.load(sample.video) if sample.video is not None else None
        except VideoError:
            self.video_errors += 1
            return
        if frames is not None:
            self.videos.add(frames.manifest.key)
            self.frame_bytes = max(self.frame_bytes, frames.array.nbytes)
        for (entry, generator), row in zip(self.zoo, self.rows, strict=True):
            self.judge_costs.update(_plan_entry(self.run, entry, generator, self.scorer, sample, frames, row))

    def plan(self, shard: Shard) -> BuildPlan:
        judged = _finished(self.run, list(self.judge_costs))
        share = BATCH_DISCOUNT if isinstance(self.scorer, BatchScorer) and self.scorer.batch else 1.0
        estimate = share * sum(cost for key, cost in self.judge_costs.items() if key not in judged)
        calls = len(self.judge_costs)
        judging = PlanRow(
            stage="judgement", model_id=self.scorer.model_id, calls=calls, stored=len(judged), new=calls - len(judged)
        )
        judging.estimated_usd = estimate
        window = Window.for_models(sum(_in_flight(g) for _, g in self.zoo) + _in_flight(self.scorer)).frames
        return BuildPlan(
            samples=self.samples,
            videos=len(self.videos),
            row_errors=sum(e.stage == "samples" for e in self.run.errors),
            video_errors=self.video_errors,
            rows=[*self.rows, judging],
            spent_usd=self.run.ledger.total_cost(),
            shard=shard.label,
            window=window,
            frames_mb=round(window * self.frame_bytes / 2**20, 1),
        )


def _in_flight(model: ResponseGenerator | Scorer) -> int:
    """Calls a model takes at once (see :attr:`mmaip_core.stages.models.Answerer.in_flight`)."""
    if isinstance(model, AsyncResponseGenerator | AsyncScorer):
        return model.call_options.concurrency
    return model.batch_size if isinstance(model, ResponseGenerator) else SCORE_BATCH


def _finished(run: StageRun, keys: list[str]) -> dict[str, Any]:
    return {k: e for k, e in run.ledger.get_many(keys).items() if e.done}


def _plan_entry(
    run: StageRun,
    entry: ZooEntry,
    generator: ResponseGenerator,
    scorer: Scorer,
    sample: VideoQA,
    frames: Frames | None,
    row: PlanRow,
) -> dict[str, float]:
    """One zoo entry's planned calls for ``sample`` (added to ``row``), and the judgements of its answers with
    their estimated cost."""
    keys = [generation_key(sample, frames, entry.name, entry.plugin, generator.fingerprint, i) for i in range(entry.n)]
    requests = [GenerationRequest(id=k, sample=sample, frames=frames, sample_index=i) for i, k in enumerate(keys)]
    done = _finished(run, keys)
    todo = [r for r in requests if r.id not in done]
    row.calls, row.stored, row.new = row.calls + len(requests), row.stored + len(done), row.new + len(todo)
    if isinstance(generator, AsyncResponseGenerator):
        row.estimated_usd += sum(run.prices.cost(generator.model_id, generator.estimate(r)) for r in todo)
    length = 4 * generator.max_output_tokens
    costs: dict[str, float] = {}
    for r in requests:  # an answer not made yet: as long as allowed, and its own (so no two keys collapse)
        answer = Response.model_validate(done[r.id].record).text if r.id in done else (r.id * length)[:length]
        if answer is None:
            continue
        key = judgement_key(sample, answer, scorer, frames)
        costs[key] = 0.0
        if isinstance(scorer, AsyncScorer):
            placeholder = Response(
                id=r.id,
                sample_id=sample.id,
                model=entry.name,
                model_id=generator.model_id,
                generator=entry.plugin,
                params={},
                text=answer,
                frames=frames.manifest.key if frames is not None else None,
            )
            costs[key] = run.prices.cost(scorer.model_id, scorer.estimate(ScoreRequest(sample, placeholder, frames)))
    return costs


def require_build_files(out: Path, *names: str) -> None:
    """Raise one ConfigError naming every file of ``names`` that the build folder ``out`` lacks."""
    missing = [name for name in names if not (out / name).is_file()]
    if missing:
        raise ConfigError([f"{out / name}: not found; is {out} a finished build?" for name in missing])


def re_pair(
    out: str | Path, manager: PluginManager, strategy: str, options: dict[str, Any], target: str | Path | None = None
) -> BuildSummary:
    """Re-pair a finished build with another strategy, without any model call (holding the folder, so it cannot
    interleave with a build). The pairs go to ``target``; without one, they replace the build's ``pairs.jsonl``
    and the pair counts of its ``summary.json``. Returns the build's summary with the new pair counts."""
    out = Path(out)
    require_build_files(out, layout.SAMPLES, layout.RESPONSES, layout.SUMMARY)
    with locked(out):
        summary = read_record(out / layout.SUMMARY, BuildSummary)
        samples = list(read_jsonl(out / layout.SAMPLES, VideoQA))
        annotated = read_jsonl(out / layout.RESPONSES, AnnotatedResponse)
        pairs, skipped = make_pairs(manager, strategy, options, samples, annotated)
        write_jsonl_atomic(Path(target) if target is not None else out / layout.PAIRS, pairs)
        summary.pairs, summary.skipped = len(pairs), dict(skipped)
        if target is None:
            write_text_atomic(out / layout.SUMMARY, summary.model_dump_json(indent=2))
    return summary
