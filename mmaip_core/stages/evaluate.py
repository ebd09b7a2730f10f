"""The evaluation stage: models answer benchmark questions, evaluators judge the answers, metrics summarise.

``run_evaluation(config, out, manager)`` uses the config's ``benchmarks``, ``models`` and ``evaluators``
(and ``frames``) and writes into ``out``:

- ``ledger.sqlite``: every answer and every verdict under a content key, so a rerun asks no model again;
- ``verdicts.jsonl`` (EvalRecord), ``results.json`` (every metric, with 95% bootstrap intervals over videos,
  and paired differences between models), ``report.md`` with PNG charts, ``errors.jsonl`` and
  ``run-manifest.json``.

A verdict that could not be read is counted as a parse failure, never imputed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from itertools import combinations
from pathlib import Path

from pydantic import BaseModel, Field

from mmaip_core.analysis.metrics import MetricSummary, PairedDifference, paired_difference, summarize
from mmaip_core.analysis.report import write_report
from mmaip_core.config import RunConfig
from mmaip_core.errors import ConfigError, EmptyRunError
from mmaip_core.plugins.kinds import EvalRequest, Evaluator, Frames
from mmaip_core.plugins.manager import PluginManager
from mmaip_core.records import EvalRecord, ParseStatus
from mmaip_core.stages.cached import CachedCalls
from mmaip_core.stages.run import (
    KEY_VERSION,
    Progress,
    StageRun,
    chunks,
    first_error,
    generate_entry,
    load_frames,
    read_samples,
    stage_sections,
    write_run_manifest,
)
from mmaip_core.store import layout
from mmaip_core.store.files import write_text_atomic
from mmaip_core.store.hashing import stable_hash
from mmaip_core.store.jsonl import write_jsonl_atomic
from mmaip_core.store.runfolder import check_config, locked

__all__ = [
    "EvalResults",
    "MetricRow",
    "PairedRow",
    "create_evaluators",
    "evaluation_key",
    "judge",
    "require_verdicts",
    "run_evaluation",
    "summarise",
    "write_outputs",
]

EVAL_CHUNK = 16


class MetricRow(BaseModel):
    model: str
    benchmark: str
    evaluator: str
    metrics: MetricSummary


class PairedRow(BaseModel):
    benchmark: str
    evaluator: str
    model_a: str
    model_b: str
    difference: PairedDifference = Field(description="model_a minus model_b.")


class EvalResults(BaseModel):
    """Everything ``results.json`` holds."""

    metrics: list[MetricRow]
    paired: list[PairedRow]
    verdicts: dict[str, int] = Field(default_factory=dict, description="Verdicts reused from the ledger and new.")
    cost_usd: float = 0.0


def evaluation_key(evaluator: Evaluator, request: EvalRequest) -> str:
    """Content key of one verdict: evaluator fingerprint, question, ground truth, prediction and, for
    evaluators that look at the video, the frames."""
    return stable_hash(
        {
            "v": KEY_VERSION,
            "kind": "evaluation",
            "evaluator": evaluator.fingerprint,
            "question": request.sample.question,
            "answer": request.sample.answer,
            "prediction": request.prediction,
            "frames": request.frames.manifest.key if request.frames and evaluator.uses_frames else None,
        }
    )


def judge(run: StageRun, evaluator: Evaluator, label: str, requests: Sequence[EvalRequest]) -> list[EvalRecord]:
    """Verdicts of ``requests``, from the ledger where possible, committed chunk by chunk."""
    keyed = [(evaluation_key(evaluator, r), r) for r in requests]
    calls = CachedCalls(run, "evaluation", label, (k for k, _ in keyed), EvalRecord)
    todo = calls.todo(keyed)
    run.verdicts.update(reused=len(keyed) - len(todo), new=len(todo))
    for chunk in chunks(todo, EVAL_CHUNK):
        for (key, _), record in zip(chunk, evaluator.evaluate([r for _, r in chunk]), strict=True):
            cost = run.prices.cost(record.model_id, record.usage)
            calls.store(key, record, failed=record.status is ParseStatus.ERROR, cost=cost)
    # a verdict is about the text: restamp it with this request's sample, model and benchmark
    return [
        calls.results[k].model_copy(
            update={
                "sample_id": r.sample.id,
                "video": r.sample.video,
                "model": r.model,
                "benchmark": r.benchmark,
                "frames": r.frames.manifest.key if r.frames else None,
            }
        )
        for k, r in keyed
    ]


def _no_answer(request: EvalRequest, evaluator: tuple[str, Evaluator], why: str, frames: str | None) -> EvalRecord:
    """The record of a question the model failed to answer: an error of the model, counted in the metrics."""
    name, plugin = evaluator
    return EvalRecord(
        sample_id=request.sample.id,
        video=request.sample.video,
        benchmark=request.benchmark,
        model=request.model,
        evaluator=name,
        fingerprint=plugin.fingerprint,
        question=request.sample.question,
        answer=request.sample.answer,
        prediction="",
        status=ParseStatus.ERROR,
        frames=frames,
        rationale=why,
    )


EVALUATE_SECTIONS = ("frames", "benchmarks", "models", "evaluators", "prices")
"""The config sections an evaluation reads: a run folder remembers them (:mod:`mmaip_core.store.runfolder`)."""


def run_evaluation(
    config: RunConfig,
    out: str | Path,
    manager: PluginManager,
    progress: Progress | None = None,
    allow_config_change: bool = False,
) -> EvalResults:
    """Evaluate every model on every benchmark with every evaluator (resuming from ``out``'s ledger).

    The folder is held by this process and remembers its config (see :func:`mmaip_core.stages.build.run_build`).
    A benchmark without a usable question, or an evaluation without a single usable verdict, is an
    EmptyRunError (raised once the outputs are written).
    """
    missing = [s for s in ("benchmarks", "models", "evaluators") if not getattr(config, s)]
    if missing:
        raise ConfigError([f"{s}: evaluation needs this section" for s in missing])
    with locked(out) as folder:
        check_config(folder, "evaluate", stage_sections(config, manager, EVALUATE_SECTIONS), allow_config_change)
        with StageRun.open(config, folder, manager, progress) as run:
            records = _evaluate(run, create_evaluators(run))
            results = summarise(
                records,
                [b.name for b in config.benchmarks],
                [m.name for m in config.models],
                [e.plugin for e in config.evaluators],
                run,
                run.ledger.total_cost(),
            )
        write_outputs(folder, config, manager, run, results, records)
    require_verdicts(folder, records)
    return results


def _evaluate(run: StageRun, evaluators: list[tuple[str, Evaluator]]) -> list[EvalRecord]:
    """Every evaluator's verdicts on every model's answers to every benchmark's questions."""
    records: list[EvalRecord] = []
    for benchmark in run.config.benchmarks:
        samples = read_samples(run, benchmark)
        if not samples:
            raise EmptyRunError(f"benchmark '{benchmark.name}': no question could be read{first_error(run, 'samples')}")
        frames: dict[str, Frames] = load_frames(run, samples)
        by_id = {s.id: s for s in samples}
        for entry in run.config.models:
            answers = generate_entry(run, entry, samples, frames)
            requests = [
                EvalRequest(
                    sample=by_id[a.sample_id],
                    benchmark=benchmark.name,
                    model=entry.name,
                    prediction=a.text,
                    frames=frames.get(a.sample_id),
                )
                for a in answers
                if a.text is not None
            ]
            failed = [
                (
                    EvalRequest(sample=by_id[a.sample_id], benchmark=benchmark.name, model=entry.name, prediction=""),
                    f"no answer: {a.error.error_class}: {a.error.message}" if a.error else "no answer",
                    a.frames,
                )
                for a in answers
                if a.text is None
            ]
            for evaluator in evaluators:
                records.extend(judge(run, evaluator[1], f"{evaluator[0]} {entry.name} {benchmark.name}", requests))
                records.extend(_no_answer(request, evaluator, why, key) for request, why, key in failed)
    return records


def require_verdicts(out: Path, records: Sequence[EvalRecord]) -> None:
    """Raise EmptyRunError when not one of ``records`` is a usable verdict (every answer or judge call failed)."""
    if any(r.status is ParseStatus.OK for r in records):
        return
    first = next((r for r in records if r.rationale), None)
    cause = f"; first: {first.rationale}" if first else ""
    raise EmptyRunError(
        f"{out}: none of the {len(records)} verdicts is usable{cause}; see {out / 'errors.jsonl'} and verdicts.jsonl"
    )


def create_evaluators(run: StageRun) -> list[tuple[str, Evaluator]]:
    """The config's evaluators, by name."""
    return [
        (e.plugin, run.manager.create("evaluator", e.plugin, e.options, prices=run.prices))
        for e in run.config.evaluators
    ]


def summarise(
    records: Sequence[EvalRecord],
    benchmarks: Sequence[str],
    models: Sequence[str],
    evaluators: Sequence[str],
    run: StageRun,
    cost: float,
) -> EvalResults:
    """Metrics per (model, benchmark, evaluator) and paired differences between every two models."""
    groups: dict[tuple[str, str, str], list[EvalRecord]] = defaultdict(list)
    for record in records:
        groups[(record.model, record.benchmark, record.evaluator)].append(record)
    metrics = [MetricRow(model=m, benchmark=b, evaluator=e, metrics=summarize(rs)) for (m, b, e), rs in groups.items()]
    paired = [
        PairedRow(
            benchmark=b,
            evaluator=e,
            model_a=x,
            model_b=y,
            difference=paired_difference(groups[(x, b, e)], groups[(y, b, e)]),
        )
        for b in benchmarks
        for e in evaluators
        for x, y in combinations(models, 2)
    ]
    return EvalResults(metrics=metrics, paired=paired, verdicts=dict(run.verdicts), cost_usd=cost)


def write_outputs(
    out: Path,
    config: RunConfig,
    manager: PluginManager,
    run: StageRun,
    results: EvalResults,
    records: Sequence[EvalRecord],
) -> None:
    """``verdicts.jsonl``, ``errors.jsonl``, ``results.json``, ``run-manifest.json`` and the report."""
    write_jsonl_atomic(out / layout.VERDICTS, records)
    write_jsonl_atomic(out / layout.ERRORS, run.errors)
    write_text_atomic(out / layout.RESULTS, results.model_dump_json(indent=2))
    write_run_manifest(out, config, manager)
    write_report(out, results, records)
