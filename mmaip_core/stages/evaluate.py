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

import asyncio
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from itertools import combinations
from pathlib import Path

from pydantic import BaseModel, Field

from mmaip_core.analysis.metrics import MetricSummary, PairedDifference, by_category, paired_difference, summarize
from mmaip_core.analysis.report import write_report
from mmaip_core.calls.local import LocalLane, local_worker
from mmaip_core.calls.runner import ApiLane
from mmaip_core.config import RunConfig, resolve_again
from mmaip_core.errors import ConfigError, EmptyRunError
from mmaip_core.plugins.kinds import AsyncEvaluator, EvalRequest, Evaluator
from mmaip_core.plugins.manager import PluginManager
from mmaip_core.records import EvalRecord, ParseStatus
from mmaip_core.stages.cached import Admission, StreamedCalls
from mmaip_core.stages.evaluate_models import BenchmarkAnswerers, evaluate_benchmarks
from mmaip_core.stages.models import ApiCalls
from mmaip_core.stages.run import (
    KEY_VERSION,
    ErrorCount,
    Progress,
    StageRun,
    count_errors,
    first_error,
    stage_sections,
    write_run_manifest,
)
from mmaip_core.stages.stream import WHOLE, Shard, count_samples, stream_samples
from mmaip_core.store import layout
from mmaip_core.store.files import write_text_atomic
from mmaip_core.store.hashing import stable_hash
from mmaip_core.store.jsonl import write_jsonl_atomic
from mmaip_core.store.runfolder import check_config, locked

__all__ = [
    "EvalResults",
    "MetricRow",
    "PairedRow",
    "Verdicts",
    "create_evaluators",
    "evaluation_key",
    "failed_to_answer",
    "judge",
    "readable",
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
    categories: dict[str, dict[str, MetricSummary]] = Field(
        default_factory=dict, description="The metrics per category field, then per value (the samples' categories)."
    )


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
    errors: list[ErrorCount] = Field(
        default_factory=list, description="Failed items (errors.jsonl) by stage, model and error class."
    )


def evaluation_key(evaluator: Evaluator, request: EvalRequest) -> str:
    """Content key of one verdict: evaluator fingerprint, question, ground truth, prediction, the second phrasing
    and its answer when the sample has one, and, for evaluators that look at the video, the frames."""
    sample = request.sample
    second = {"alt": [sample.alt_question, request.alt_prediction]} if sample.alt_question is not None else {}
    return stable_hash(
        {
            "v": KEY_VERSION,
            "kind": "evaluation",
            "evaluator": evaluator.fingerprint,
            "question": sample.question,
            "answer": sample.answer,
            "prediction": request.prediction,
            "frames": request.frames.manifest.key if request.frames and evaluator.uses_frames else None,
            **second,  # absent otherwise: the keys of samples with one phrasing stay as they were
        }
    )


class Verdicts:
    """The verdicts of one evaluator (``name``), through the ledger: an API evaluator's one call each, concurrently
    within its ``call_options``; a local evaluator's in batches of EVAL_CHUNK on the stage's local worker."""

    def __init__(
        self,
        run: StageRun,
        name: str,
        evaluator: Evaluator,
        worker: ThreadPoolExecutor,
        total: int,
        retry_unreadable: bool = False,
    ) -> None:
        self.run, self.name, self.evaluator = run, name, evaluator
        reuse = readable if retry_unreadable else None  # --retry-unreadable: unreadable verdicts are asked again
        self.calls = StreamedCalls(run, "evaluation", name, EvalRecord, total, reuse=reuse)
        self.api: ApiCalls[EvalRequest, EvalRecord] | None = None
        self.local: LocalLane[EvalRequest, EvalRecord] | None = None
        if isinstance(evaluator, AsyncEvaluator):
            admission: Admission[EvalRequest] = Admission(
                run.budget, lambda _: 0.0, lambda r: evaluation_key(evaluator, r)
            )
            self.api = ApiCalls(ApiLane(evaluator.aevaluate, evaluator.call_options), admission, evaluator.failed)
        else:
            self.local = LocalLane(evaluator.evaluate, EVAL_CHUNK, worker)

    @property
    def in_flight(self) -> int:
        return self.api.lane.options.concurrency if self.api else EVAL_CHUNK

    async def _ask(self, request: EvalRequest) -> EvalRecord:
        if self.api is not None:
            record = await self.api.run(request)
            assert record is not None  # an evaluation has no spending limit: no call is refused
            return record
        assert self.local is not None
        return await self.local.run(request)

    async def aclose(self) -> None:
        if isinstance(self.evaluator, AsyncEvaluator):
            await self.evaluator.aclose()

    async def verdict(self, request: EvalRequest, frames: str | None = None) -> EvalRecord:
        """The verdict on ``request``, stamped with its sample, model, benchmark and frames (``frames``: the key
        of the frames the model saw, when the request carries none because the evaluator does not look)."""

        async def ask() -> tuple[EvalRecord, bool, float]:
            record = await self._ask(request)
            return record, record.status is ParseStatus.ERROR, self.run.prices.cost(record.model_id, record.usage)

        record = await self.calls.get(evaluation_key(self.evaluator, request), ask)
        assert record is not None  # every verdict is asked and stored
        if not readable(record):
            why = record.rationale or record.raw_reply or "no reason given"
            problem = "imputed" if record.imputed else record.status.value
            item = f"{self.name}:{request.benchmark}:{request.model}:{request.sample.id}"
            self.run.fail("evaluation", item, problem, why, model=request.model, sample_id=request.sample.id)
        return record.model_copy(  # a verdict is about the text: restamp it with this request's place
            update={
                "evaluator": self.name,
                "sample_id": request.sample.id,
                "video": request.sample.video,
                "model": request.model,
                "benchmark": request.benchmark,
                "frames": request.frames.manifest.key if request.frames else frames,
                "alt_question": request.sample.alt_question,
                "alt_prediction": request.alt_prediction,
                "categories": request.sample.categories,
                "group": request.sample.group,
            }
        )

    def no_answer(self, request: EvalRequest, why: str, frames: str | None) -> EvalRecord:
        """The record of a question the model failed to answer: an error of the model, counted in the metrics
        (and in the progress, as a verdict settled)."""
        self.calls.skip()
        return _no_answer(request, (self.name, self.evaluator), why, frames)


def readable(record: EvalRecord) -> bool:
    """Whether ``record`` is a verdict the judge gave: read, and not imputed by the protocol's rule."""
    return record.status is ParseStatus.OK and not record.imputed


def judge(run: StageRun, evaluator: Evaluator, label: str, requests: Sequence[EvalRequest]) -> list[EvalRecord]:
    """Verdicts of ``requests``, from the ledger where possible, committed as they come."""

    async def all_of() -> list[EvalRecord]:
        try:
            return list(await asyncio.gather(*(verdicts.verdict(r) for r in requests)))
        finally:
            await verdicts.aclose()

    with local_worker() as worker:
        verdicts = Verdicts(run, label, evaluator, worker, len(requests))
        records = asyncio.run(all_of())
    run.verdicts.update(new=len(verdicts.calls.asked), reused=len(requests) - len(verdicts.calls.asked))
    return records


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
        alt_question=request.sample.alt_question,
        status=ParseStatus.ERROR,
        frames=frames,
        rationale=why,
        categories=request.sample.categories,
        group=request.sample.group,
    )


EVALUATE_SECTIONS = ("frames", "benchmarks", "models", "evaluators", "prices")
"""The config sections an evaluation reads: a run folder remembers them (:mod:`mmaip_core.store.runfolder`)."""


def run_evaluation(
    config: RunConfig,
    out: str | Path,
    manager: PluginManager,
    progress: Progress | None = None,
    allow_config_change: bool = False,
    limit: int | None = None,
    shard: Shard = WHOLE,
    retry_unreadable: bool = False,
) -> EvalResults:
    """Evaluate every model on every benchmark with every evaluator (resuming from ``out``'s ledger); ``limit``:
    the first questions of each benchmark only; ``shard``: its share of them only (see
    :mod:`mmaip_core.stages.evaluate_shards`, which runs shards and merges them); ``retry_unreadable``: ask
    again the verdicts the ledger holds as unreadable (or imputed).

    The folder is held by this process and remembers its config (see :func:`mmaip_core.stages.build.run_build`).
    A benchmark without a usable question, or an evaluation without a single usable verdict, is an
    EmptyRunError (raised once the outputs are written).
    """
    missing = [s for s in ("benchmarks", "models", "evaluators") if not getattr(config, s)]
    if missing:
        raise ConfigError([f"{s}: evaluation needs this section" for s in missing])
    with locked(out) as folder:
        sections = stage_sections(config, manager, EVALUATE_SECTIONS)
        check_config(folder, "evaluate", sections, allow_config_change, lambda old: resolve_again(old, manager))
        with StageRun.open(config, folder, manager, progress) as run:
            records = _evaluate(run, create_evaluators(run), limit, shard, retry_unreadable)
            results = summarise(
                records,
                [b.name for b in config.benchmarks],
                [m.name for m in config.models],
                [e.name for e in config.evaluators],
                run,
                run.ledger.total_cost(),
            )
        write_outputs(folder, config, manager, run, results, records)
    if shard.count == 1:
        require_verdicts(folder, records)
    return results


def _evaluate(
    run: StageRun,
    evaluators: list[tuple[str, Evaluator]],
    limit: int | None,
    shard: Shard,
    retry_unreadable: bool = False,
) -> list[EvalRecord]:
    """Every evaluator's verdicts on every model's answers to every benchmark's questions, a benchmark at a time,
    its samples streamed (at most a window of samples' frames in memory); ``limit``: the first questions only."""
    with local_worker() as worker:
        totals = [count_samples(run, b, limit, shard) for b in run.config.benchmarks]
        for benchmark, total in zip(run.config.benchmarks, totals, strict=True):
            if not total and not count_samples(run, benchmark, limit, WHOLE):
                sum(1 for _ in stream_samples(run, benchmark))  # records why no row could be read
                raise EmptyRunError(
                    f"benchmark '{benchmark.name}': no question could be read{first_error(run, 'samples')}"
                )
        total = sum(totals) * len(run.config.models)
        judges = [Verdicts(run, name, e, worker, total, retry_unreadable) for name, e in evaluators]
        answerers = BenchmarkAnswerers(run, worker, sum(totals))
        records = asyncio.run(evaluate_benchmarks(run, answerers, judges, limit, shard))
    asked = sum(len(j.calls.asked) for j in judges)
    run.verdicts.update(new=asked, reused=sum(j.calls.served for j in judges) - asked)
    return records


def failed_to_answer(record: EvalRecord) -> bool:
    """Whether ``record`` stands for a question the model failed to answer (not a verdict on an answer)."""
    return (
        record.status is ParseStatus.ERROR
        and record.prediction == ""
        and (record.rationale or "").startswith("no answer")
    )


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
    """The config's evaluators, by name (an instance's own name, or its plugin's)."""
    return [
        (e.name, run.manager.create("evaluator", e.plugin, e.options, prices=run.prices)) for e in run.config.evaluators
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
    metrics = [
        MetricRow(model=m, benchmark=b, evaluator=e, metrics=summarize(rs), categories=by_category(rs))
        for (m, b, e), rs in groups.items()
    ]
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
    errors = count_errors(run.errors)
    return EvalResults(metrics=metrics, paired=paired, verdicts=dict(run.verdicts), cost_usd=cost, errors=errors)


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
