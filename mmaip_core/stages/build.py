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

from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from mmaip_core.calls.pricing import BATCH_DISCOUNT
from mmaip_core.config import RunConfig, ZooEntry
from mmaip_core.errors import ConfigError, EmptyRunError
from mmaip_core.plugins.kinds import (
    AsyncResponseGenerator,
    AsyncScorer,
    BatchScorer,
    Frames,
    ResponseGenerator,
    Scored,
    Scorer,
    ScoreRequest,
)
from mmaip_core.plugins.manager import PluginManager
from mmaip_core.records import (
    AnnotatedResponse,
    FrameManifest,
    Judgement,
    ParseStatus,
    PreferencePair,
    Response,
    VideoQA,
)
from mmaip_core.stages.run import (
    BuildSummary,
    ItemError,
    Progress,
    StageRun,
    first_error,
    generate_answers,
    generation_key,
    generation_requests,
    load_frames,
    read_samples,
    stage_sections,
    write_run_manifest,
)
from mmaip_core.stages.score import judgement_key, score_answers
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


def _score(
    run: StageRun, samples: Sequence[VideoQA], frames: dict[str, Frames], answers: dict[str, list[Response]]
) -> dict[str, Judgement]:
    """One judgement per answered response (by response id), from the ledger where possible."""
    assert run.config.scorer is not None
    scorer: Scorer = run.manager.create(
        "scorer", run.config.scorer.plugin, run.config.scorer.options, prices=run.prices
    )
    requests = [
        ScoreRequest(sample=sample, response=response, frames=frames.get(sample.id))
        for sample in samples
        for response in answers.get(sample.id, [])
    ]
    scored = score_answers(run, scorer, requests)
    run.summary.judgements = dict(reused=scored.reused, new=scored.new)
    run.summary.cost_by_stage["judgement"] = scored.cost_usd
    for response_id, judgement in scored.judgements.items():
        run.summary.judgements[judgement.status.value] = run.summary.judgements.get(judgement.status.value, 0) + 1
        if judgement.status is not ParseStatus.OK:
            cause = judgement.error.message if judgement.error else f"judge reply: {judgement.raw_reply!r}"
            run.fail("judgement", response_id, judgement.status.value, cause)
    return scored.judgements


def make_pairs(
    manager: PluginManager,
    strategy: str,
    options: dict[str, Any],
    samples: Sequence[VideoQA],
    annotated: Iterable[AnnotatedResponse],
) -> tuple[list[PreferencePair], Counter[str]]:
    """Pairs of every sample from its successfully scored responses; skipped questions by reason."""
    pairing = manager.create("pair-strategy", strategy, options)
    scored: dict[str, list[Scored]] = {s.id: [] for s in samples}
    for line in annotated:
        ok = [j for j in line.judgements if j.status is ParseStatus.OK]
        if line.response.text is not None and ok and line.response.sample_id in scored:
            scored[line.response.sample_id].append(Scored(line.response, ok[0]))
    pairs: list[PreferencePair] = []
    skipped: Counter[str] = Counter()
    for sample in samples:
        outcome = pairing.make_pairs(sample, scored[sample.id], prompt=sample.question)
        pairs.extend(outcome.pairs)
        if not outcome.pairs:
            skipped[outcome.skipped or "no pair"] += 1
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
) -> BuildSummary:
    """Run the whole build into ``out`` (resuming from its ledger) and return the summary.

    ``max_cost`` (USD, the folder's earlier spending included) admits an API call only while its estimated
    cost still fits; calls that do not fit are not made, and a rerun with a larger limit makes them. The
    folder is held by this process while the build runs, and a different config into a folder that holds a
    build stops with :class:`~mmaip_core.store.runfolder.ConfigChangedError` unless ``allow_config_change``. A build
    that reads no sample, or in which nothing succeeded, writes its outputs and raises EmptyRunError.
    """
    _require_sections(config)
    with locked(out) as folder:
        check_config(folder, "build", stage_sections(config, manager, BUILD_SECTIONS), allow_config_change)
        run = _build(config, folder, manager, progress or (lambda *_: None), max_cost)
    why = _nothing_built(run)
    if why:
        raise EmptyRunError(f"{folder}: {why}; every failed item is in {folder / 'errors.jsonl'}")
    return run.summary


def _build(
    config: RunConfig, out: Path, manager: PluginManager, progress: Progress, max_cost: float | None
) -> StageRun:
    with StageRun.open(config, out, manager, progress, max_cost) as run:
        samples = read_samples(run)
        run.summary.samples = len(samples)
        frames = load_frames(run, samples)
        answers = generate_answers(run, samples, frames)
        judgements = _score(run, samples, frames, answers)
        annotated = [
            AnnotatedResponse(response=r, judgements=[judgements[r.id]] if r.id in judgements else [])
            for s in samples
            for r in answers.get(s.id, [])
        ]
        pairs, skipped = make_pairs(manager, config.pairs.plugin, config.pairs.options, samples, annotated)
        run.summary.pairs, run.summary.skipped = len(pairs), dict(skipped)
        run.summary.cost_usd = run.ledger.total_cost()
        run.summary.refused_by_budget = run.budget.refused
    manifests: dict[str, FrameManifest] = {f.manifest.key: f.manifest for f in frames.values()}
    write_jsonl_atomic(out / layout.SAMPLES, samples)
    write_jsonl_atomic(out / layout.FRAMES, manifests.values())
    write_jsonl_atomic(out / layout.RESPONSES, annotated)
    write_jsonl_atomic(out / layout.PAIRS, pairs)
    write_jsonl_atomic(out / layout.ERRORS, run.errors)
    write_run_manifest(out, config, manager)
    write_text_atomic(out / layout.SUMMARY, run.summary.model_dump_json(indent=2))
    return run


def _nothing_built(run: StageRun) -> str | None:
    """Why a build has nothing to show (no sample, no frames, no answer, no score), or None.

    A build stopped by ``--max-cost`` before its first answer is not empty: its rerun with a larger limit goes on.
    """
    s = run.summary
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
    calls: int = Field(description="Calls the stage needs in all.")
    stored: int = Field(description="Calls already finished in the ledger.")
    new: int = Field(description="Calls that would be made.")
    estimated_usd: float = Field(description="Upper-bound cost of the new calls (0 for local models).")


class BuildPlan(BaseModel):
    """What ``mmaip build --dry-run`` reports: the work and its cost, before any call."""

    samples: int
    videos: int
    row_errors: int
    video_errors: int
    rows: list[PlanRow]
    spent_usd: float = Field(description="What earlier runs of this folder already spent.")

    @property
    def estimated_usd(self) -> float:
        return sum(r.estimated_usd for r in self.rows)


def plan_build(config: RunConfig, out: str | Path, manager: PluginManager) -> BuildPlan:
    """The calls a build would make and an upper bound of their cost; calls nothing, writes nothing.

    Frames are decoded (locally) to compute the call keys. Answers not generated yet are assumed to be as long
    as their generator allows (``max_output_tokens``) and all different, when the judge's cost is estimated.
    """
    _require_sections(config)
    assert config.scorer is not None
    path = Path(out) / layout.LEDGER
    with StageRun.open(config, Path(out), manager, ledger=path if path.is_file() else ":memory:") as run:
        samples = read_samples(run)
        frames = load_frames(run, samples)
        scorer: Scorer = manager.create("scorer", config.scorer.plugin, config.scorer.options, prices=run.prices)
        rows, judge_costs = [], {}
        for entry in config.zoo:
            row, costs = _plan_entry(run, entry, scorer, samples, frames)
            rows.append(row)
            judge_costs.update(costs)
        judged = _finished(run, list(judge_costs))
        share = BATCH_DISCOUNT if isinstance(scorer, BatchScorer) and scorer.batch else 1.0
        estimate = share * sum(cost for key, cost in judge_costs.items() if key not in judged)
        rows.append(
            PlanRow(
                stage="judgement",
                model_id=scorer.model_id,
                calls=len(judge_costs),
                stored=len(judged),
                new=len(judge_costs) - len(judged),
                estimated_usd=estimate,
            )
        )
        return BuildPlan(
            samples=len(samples),
            videos=len({f.manifest.key for f in frames.values()}),
            row_errors=run.summary.row_errors,
            video_errors=run.summary.video_errors,
            rows=rows,
            spent_usd=run.ledger.total_cost(),
        )


def _finished(run: StageRun, keys: list[str]) -> dict[str, Any]:
    return {k: e for k, e in run.ledger.get_many(keys).items() if e.done}


def _plan_entry(
    run: StageRun, entry: ZooEntry, scorer: Scorer, samples: Sequence[VideoQA], frames: dict[str, Frames]
) -> tuple[PlanRow, dict[str, float]]:
    """One zoo entry's planned calls, and the judgements of its answers with their estimated cost."""
    generator: ResponseGenerator = run.manager.create("generator", entry.plugin, entry.options)
    requests = generation_requests(entry, generator, samples, frames)
    done = _finished(run, [r.id for r in requests])
    todo = [r for r in requests if r.id not in done]
    estimate = 0.0
    if isinstance(generator, AsyncResponseGenerator):
        estimate = sum(run.prices.cost(generator.model_id, generator.estimate(r)) for r in todo)
    row = PlanRow(
        stage=f"generation {entry.name}",
        model_id=generator.model_id,
        calls=len(requests),
        stored=len(done),
        new=len(todo),
        estimated_usd=estimate,
    )
    length = 4 * generator.max_output_tokens
    costs: dict[str, float] = {}
    for r in requests:  # an answer not made yet: as long as allowed, and its own (so no two keys collapse)
        answer = Response.model_validate(done[r.id].record).text if r.id in done else (r.id * length)[:length]
        if answer is None:
            continue
        key = judgement_key(r.sample, answer, scorer, r.frames)
        costs[key] = 0.0
        if isinstance(scorer, AsyncScorer):
            placeholder = Response(
                id=r.id,
                sample_id=r.sample.id,
                model=entry.name,
                model_id=generator.model_id,
                generator=entry.plugin,
                params={},
                text=answer,
                frames=r.frames.manifest.key,
            )
            costs[key] = run.prices.cost(
                scorer.model_id, scorer.estimate(ScoreRequest(r.sample, placeholder, r.frames))
            )
    return row, costs


def require_build_files(out: Path, *names: str) -> None:
    """Raise one ConfigError naming every file of ``names`` that the build folder ``out`` lacks."""
    missing = [name for name in names if not (out / name).is_file()]
    if missing:
        raise ConfigError([f"{out / name}: not found; is {out} a finished build?" for name in missing])


def re_pair(out: str | Path, manager: PluginManager, strategy: str, options: dict[str, Any]) -> BuildSummary:
    """Re-pair a finished build with another strategy, without any model call; rewrites ``pairs.jsonl`` (holding
    the folder, so it cannot interleave with a build)."""
    out = Path(out)
    require_build_files(out, layout.SAMPLES, layout.RESPONSES, layout.SUMMARY)
    with locked(out):
        summary = read_record(out / layout.SUMMARY, BuildSummary)
        samples = list(read_jsonl(out / layout.SAMPLES, VideoQA))
        annotated = read_jsonl(out / layout.RESPONSES, AnnotatedResponse)
        pairs, skipped = make_pairs(manager, strategy, options, samples, annotated)
        write_jsonl_atomic(out / layout.PAIRS, pairs)
        summary.pairs, summary.skipped = len(pairs), dict(skipped)
        write_text_atomic(out / layout.SUMMARY, summary.model_dump_json(indent=2))
    return summary
