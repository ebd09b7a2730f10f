"""Shards of an evaluation: ``mmaip evaluate CONFIG --out DIR --shard I/N``, as for a build
(:mod:`mmaip_core.stages.shards`): shard I evaluates the questions whose id hashes to I in ``DIR/shards/I-of-N/``,
and the last shard to end merges. The merged ``verdicts.jsonl`` holds the records in the order one process
writes them (by benchmark, model and evaluator; answered questions in reader order, then those the model failed
to answer), and the metrics, paired differences and report are computed from it.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from mmaip_core.config import RunConfig
from mmaip_core.plugins.manager import PluginManager
from mmaip_core.records import EvalRecord, ItemError
from mmaip_core.stages.evaluate import (
    EvalResults,
    failed_to_answer,
    require_verdicts,
    run_evaluation,
    summarise,
    write_outputs,
)
from mmaip_core.stages.run import Progress, StageRun
from mmaip_core.stages.shards import merge_errors, shard_folder
from mmaip_core.stages.stream import Shard, quiet, stream_samples
from mmaip_core.store import layout
from mmaip_core.store.files import read_record
from mmaip_core.store.jsonl import read_jsonl
from mmaip_core.store.runfolder import locked

__all__ = ["evaluate_shard"]


def evaluate_shard(
    config: RunConfig,
    out: str | Path,
    manager: PluginManager,
    shard: Shard,
    progress: Progress | None = None,
    allow_config_change: bool = False,
    limit: int | None = None,
) -> EvalResults | None:
    """Evaluate ``shard`` into its folder; the last shard to end merges all into ``out`` and returns the merged
    results (the others return None)."""
    out = Path(out)
    folder = shard_folder(out, shard)
    run_evaluation(config, folder, manager, progress, allow_config_change, limit, shard)
    folders = [shard_folder(out, Shard(i, shard.count)) for i in range(shard.count)]
    if not all((f / layout.RESULTS).is_file() for f in folders):
        return None
    return merge_evaluation(config, out, manager, folders, limit)


def merge_evaluation(
    config: RunConfig, out: Path, manager: PluginManager, folders: list[Path], limit: int | None
) -> EvalResults:
    """``out``'s outputs from the finished shard folders, as one process would have written them."""
    with locked(out), StageRun.open(config, out, manager, ledger=":memory:") as run:
        records = _merged_records(run, folders, limit)
        parts = [read_record(f / layout.RESULTS, EvalResults) for f in folders]
        run.verdicts = sum((Counter(p.verdicts) for p in parts), Counter())
        run.errors = merge_errors(read_jsonl(f / layout.ERRORS, ItemError) for f in folders)
        benchmarks, models = [b.name for b in config.benchmarks], [m.name for m in config.models]
        evaluators = [e.name for e in config.evaluators]
        results = summarise(records, benchmarks, models, evaluators, run, sum(p.cost_usd for p in parts))
        write_outputs(out, config, manager, run, results, records)
    require_verdicts(out, records)
    return results


def _merged_records(run: StageRun, folders: list[Path], limit: int | None) -> list[EvalRecord]:
    """Every shard's verdicts in one process's order."""
    groups: dict[tuple[str, str, str, bool], list[EvalRecord]] = {}
    for folder in folders:
        for record in read_jsonl(folder / layout.VERDICTS, EvalRecord):
            key = (record.benchmark, record.model, record.evaluator, failed_to_answer(record))
            groups.setdefault(key, []).append(record)
    merged: list[EvalRecord] = []
    config = run.config
    for benchmark in config.benchmarks:
        order = {s.id: i for i, s in enumerate(stream_samples(quiet(run), benchmark, limit))}
        for model in config.models:
            for evaluator in config.evaluators:
                for failed in (False, True):
                    part = groups.get((benchmark.name, model.name, evaluator.name, failed), [])
                    merged.extend(sorted(part, key=lambda r: order.get(r.sample_id, len(order))))
    return merged
