"""Judge drift: the predictions of a finished evaluation judged again by other evaluators
(``mmaip evaluate CONFIG --out NEW --rejudge OLD``), and how much the numbers move.

No model under evaluation is run again: the predictions, questions and ground truths come from
``OLD/verdicts.jsonl``; the config contributes its ``evaluators`` (and ``frames``, for judges that look at
the video). ``NEW`` gets everything ``mmaip evaluate`` writes (its own ledger, so a rerun costs nothing)
plus ``drift.json`` and a drift section in ``report.md``.

Per (benchmark, model), each new evaluator is compared like for like: with the old evaluator of the same
name (the same role, judged by another model or prompt); a new evaluator whose name no old one has is
compared with every old one (``all_pairs=True`` compares every old with every new evaluator). On the
questions both judged (usable verdicts on both sides): ratio and mean score before and after, the paired
difference (new minus old) with its bootstrap interval over videos, the share of yes/no verdicts that stayed
the same, Cohen's kappa on yes/no, and the mean absolute score change. Per benchmark, whether the models'
order by mean score changed: Kendall's tau-b between the models' old and new mean scores (scipy; tied scores
are ties, never ordered by name), with the groups of tied models listed.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path

from pydantic import BaseModel, Field

from mmaip_core.analysis.agreement import cohen_kappa, kendall
from mmaip_core.analysis.metrics import Estimate, PairedDifference, paired_difference
from mmaip_core.config import RunConfig, resolve_again
from mmaip_core.errors import ConfigError, EmptyRunError, UserError
from mmaip_core.plugins.kinds import EvalRequest
from mmaip_core.plugins.manager import PluginManager
from mmaip_core.records import EvalRecord, ParseStatus, VideoQA
from mmaip_core.stages.evaluate import (
    EvalResults,
    create_evaluators,
    failed_to_answer,
    judge,
    require_verdicts,
    summarise,
    write_outputs,
)
from mmaip_core.stages.run import Progress, StageRun, load_frames, stage_sections
from mmaip_core.store import layout
from mmaip_core.store.files import write_text_atomic
from mmaip_core.store.jsonl import read_jsonl
from mmaip_core.store.runfolder import check_config, locked

__all__ = ["DriftReport", "DriftRow", "RankingRow", "drift_section", "judge_drift", "ranking_line", "rejudge"]


class DriftRow(BaseModel):
    """One old evaluator against one new evaluator on one model's predictions of one benchmark."""

    benchmark: str
    model: str
    old: str = Field(description="The earlier evaluator (name and fingerprint prefix).")
    new: str = Field(description="The new evaluator (name and fingerprint prefix).")
    n: int = Field(description="Questions with a usable verdict from both.")
    ratio_old: float | None
    ratio_new: float | None
    score_old: float | None
    score_new: float | None
    difference: PairedDifference = Field(description="New minus old, with 95% bootstrap intervals over videos.")
    verdict_agreement: float | None = Field(description="Share of questions with the same yes/no verdict.")
    kappa: float | None = Field(description="Cohen's kappa on the yes/no verdicts.")
    mean_abs_score_change: float | None


class RankingRow(BaseModel):
    """Whether the models' order on one benchmark changed between an old and a new evaluator."""

    benchmark: str
    old: str
    new: str
    order_old: list[str] = Field(description="Models by mean score, best first (tied models by name).")
    order_new: list[str]
    kendall: float | None = Field(
        description="Kendall's tau-b between the models' old and new mean scores (1: same order; ties "
        "corrected for); None when one side gives every model the same score, or fewer than two models."
    )
    ties_old: list[list[str]] = Field(default_factory=list, description="Groups of models with equal old scores.")
    ties_new: list[list[str]] = Field(default_factory=list, description="Groups of models with equal new scores.")


class DriftReport(BaseModel):
    """Everything ``drift.json`` holds."""

    previous: str = Field(description="The earlier evaluation folder.")
    rows: list[DriftRow]
    rankings: list[RankingRow]


def _label(record: EvalRecord) -> str:
    return f"{record.evaluator}@{record.fingerprint[:8]}"


def _mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def _compare(benchmark: str, model: str, old: list[EvalRecord], new: list[EvalRecord]) -> DriftRow:
    usable_old = {r.sample_id: r for r in old if r.status is ParseStatus.OK}
    matched = [(usable_old[r.sample_id], r) for r in new if r.status is ParseStatus.OK and r.sample_id in usable_old]
    before, after = [o for o, _ in matched], [n for _, n in matched]
    verdicts_old = ["yes" if o.correct else "no" for o in before]
    verdicts_new = ["yes" if n.correct else "no" for n in after]
    same = sum(x == y for x, y in zip(verdicts_old, verdicts_new, strict=True))
    return DriftRow(
        benchmark=benchmark,
        model=model,
        old=_label(old[0]),
        new=_label(new[0]),
        n=len(matched),
        ratio_old=_mean([float(bool(o.correct)) for o in before]),
        ratio_new=_mean([float(bool(n.correct)) for n in after]),
        score_old=_mean([float(o.score or 0) for o in before]),
        score_new=_mean([float(n.score or 0) for n in after]),
        difference=paired_difference(after, before)
        if matched
        else PairedDifference(n=0, ratio=Estimate(value=None), score=Estimate(value=None)),
        verdict_agreement=same / len(matched) if matched else None,
        kappa=cohen_kappa(verdicts_old, verdicts_new),
        mean_abs_score_change=_mean([abs(float(n.score or 0) - float(o.score or 0)) for o, n in matched]),
    )


def _score(row: DriftRow, new: bool) -> float | None:
    return row.score_new if new else row.score_old


def _order(rows: list[DriftRow], new: bool) -> list[str]:
    scored = [(_score(r, new), r.model) for r in rows]
    return [m for s, m in sorted(scored, key=lambda x: (-(x[0] if x[0] is not None else float("-inf")), x[1]))]


def _ties(rows: list[DriftRow], new: bool) -> list[list[str]]:
    """The groups of two or more models with the same mean score, best first."""
    groups: dict[float, list[str]] = defaultdict(list)
    for row in rows:
        if (score := _score(row, new)) is not None:
            groups[score].append(row.model)
    return [sorted(models) for _, models in sorted(groups.items(), reverse=True) if len(models) > 1]


def _ranking(benchmark: str, old: str, new: str, rows: list[DriftRow]) -> RankingRow:
    """Whether the models' order by mean score moved, on the models both evaluators scored."""
    scores = [(r.score_old, r.score_new) for r in rows if r.score_old is not None and r.score_new is not None]
    tau = kendall([before for before, _ in scores], [after for _, after in scores])
    return RankingRow(
        benchmark=benchmark,
        old=old,
        new=new,
        order_old=_order(rows, new=False),
        order_new=_order(rows, new=True),
        kendall=tau,
        ties_old=_ties(rows, new=False),
        ties_new=_ties(rows, new=True),
    )


def _grouped(records: list[EvalRecord]) -> dict[tuple[str, str, str], list[EvalRecord]]:
    groups: dict[tuple[str, str, str], list[EvalRecord]] = defaultdict(list)
    for record in records:
        groups[(record.benchmark, record.model, _label(record))].append(record)
    return groups


def _counterparts(old: list[EvalRecord], new: list[EvalRecord], all_pairs: bool) -> set[tuple[str, str]]:
    """The (old, new) evaluator labels to compare: like for like (the same evaluator name) unless ``all_pairs``;
    a new evaluator whose name no old one has is compared with every old one."""
    olds = {_label(r): r.evaluator for r in old}
    news = {_label(r): r.evaluator for r in new}
    pairs: set[tuple[str, str]] = set()
    for n, name in news.items():
        same = [o for o, other in olds.items() if other == name]
        pairs.update((o, n) for o in (olds if all_pairs or not same else same))
    return pairs


def judge_drift(previous: str, old: list[EvalRecord], new: list[EvalRecord], all_pairs: bool = False) -> DriftReport:
    """Compare the verdicts ``new`` with ``old`` (see the module docstring)."""
    before, after = _grouped(old), _grouped(new)
    compared = _counterparts(old, new, all_pairs)
    rows = [
        _compare(benchmark, model, records, after[(b, m, n)])
        for (benchmark, model, o), records in before.items()
        for (b, m, n) in after
        if (b, m) == (benchmark, model) and (o, n) in compared
    ]
    rankings = []
    for benchmark, o, n in sorted({(r.benchmark, r.old, r.new) for r in rows}):
        selected = [r for r in rows if (r.benchmark, r.old, r.new) == (benchmark, o, n)]
        if len(selected) >= 2:
            rankings.append(_ranking(benchmark, o, n, selected))
    return DriftReport(previous=previous, rows=rows, rankings=rankings)


def _predictions(records: list[EvalRecord]) -> dict[tuple[str, str, str], EvalRecord]:
    """One record per (benchmark, model, sample) of an earlier evaluation: its prediction (all its evaluators
    judged the same one)."""
    out: dict[tuple[str, str, str], EvalRecord] = {}
    for record in records:
        out.setdefault((record.benchmark, record.model, record.sample_id), record)
    return out


def rejudge(
    config: RunConfig,
    previous: str | Path,
    out: str | Path,
    manager: PluginManager,
    progress: Progress | None = None,
    allow_config_change: bool = False,
    all_pairs: bool = False,
) -> tuple[EvalResults, DriftReport]:
    """Judge the predictions of the evaluation in ``previous`` with ``config``'s evaluators into ``out`` (held by
    this process, remembering its config and ``previous``: see :mod:`mmaip_core.store.runfolder`); the drift
    compares like-for-like evaluators unless ``all_pairs`` (see the module docstring)."""
    if not config.evaluators:
        raise ConfigError(["evaluators: rejudging needs this section"])
    previous, out = Path(previous), Path(out)
    if previous.resolve() == out.resolve():
        raise UserError("--rejudge needs a new --out folder; the earlier evaluation stays as it is")
    if not (previous / layout.VERDICTS).is_file():
        raise UserError(f"{previous / 'verdicts.jsonl'} not found; is {previous} a finished evaluation?")
    old = list(read_jsonl(previous / layout.VERDICTS, EvalRecord))
    if not old:
        raise EmptyRunError(f"{previous / 'verdicts.jsonl'} holds no verdicts")
    sections = {
        "previous": str(previous.resolve()),
        **stage_sections(config, manager, ("frames", "evaluators", "prices")),
    }
    with locked(out) as folder:
        check_config(folder, "rejudge", sections, allow_config_change, lambda old: resolve_again(old, manager))
        with StageRun.open(config, folder, manager, progress) as run:
            records, benchmarks, models = _judge_again(run, _predictions(old))
            results = summarise(
                records, benchmarks, models, [e.name for e in config.evaluators], run, run.ledger.total_cost()
            )
        write_outputs(folder, config, manager, run, results, records)
        drift = judge_drift(str(previous), old, records, all_pairs)
        write_text_atomic(folder / layout.DRIFT, drift.model_dump_json(indent=2))
        report = (folder / layout.REPORT).read_text(encoding="utf-8")
        write_text_atomic(folder / layout.REPORT, report + "\n".join(drift_section(drift)))
    require_verdicts(folder, records)
    return results, drift


def _judge_again(
    run: StageRun, predictions: dict[tuple[str, str, str], EvalRecord]
) -> tuple[list[EvalRecord], list[str], list[str]]:
    """The config's evaluators' verdicts on ``predictions``; with the benchmarks and models, in order."""
    benchmarks = list(dict.fromkeys(b for b, _, _ in predictions))
    models = list(dict.fromkeys(m for _, m, _ in predictions))
    evaluators = create_evaluators(run)
    looks = any(e.uses_frames for _, e in evaluators)
    records: list[EvalRecord] = []
    for benchmark in benchmarks:
        rows = [r for (b, _, _), r in predictions.items() if b == benchmark]
        samples = {r.sample_id: _sample_of(r) for r in rows}
        frames = load_frames(run, list(samples.values())) if looks else {}
        for model in models:
            mine = [r for r in rows if r.model == model]
            requests = [
                EvalRequest(
                    sample=samples[r.sample_id],
                    benchmark=benchmark,
                    model=model,
                    prediction=r.prediction,
                    frames=frames.get(r.sample_id),
                    alt_prediction=r.alt_prediction,
                )
                for r in mine
                if not failed_to_answer(r)
            ]
            for name, evaluator in evaluators:
                judged = judge(run, evaluator, f"{name} {model} {benchmark}", requests)
                records.extend(r.model_copy(update={"evaluator": name}) for r in judged)
                unanswered = [r for r in mine if failed_to_answer(r)]
                records.extend(
                    r.model_copy(update={"evaluator": name, "fingerprint": evaluator.fingerprint}) for r in unanswered
                )
    return records, benchmarks, models


def _sample_of(record: EvalRecord) -> VideoQA:
    """The question a verdict was about, as the evaluators read it."""
    return VideoQA(
        id=record.sample_id,
        video=record.video or "",
        question=record.question,
        alt_question=record.alt_question,
        answer=record.answer,
        categories=record.categories,
        group=record.group,
    )


def drift_section(drift: DriftReport) -> list[str]:
    """The report's judge-drift section (Markdown lines)."""
    from mmaip_core.analysis.report import format_estimate, format_number, format_percent

    lines = [
        "",
        f"## Judge drift against `{drift.previous}`",
        "",
        "| benchmark | model | old → new | n | ratio % old → new | score old → new | score difference | same verdict | kappa | mean abs. score change |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in drift.rows:
        ratio = f"{format_number(r.ratio_old, scale=100)} → {format_number(r.ratio_new, scale=100)}"
        agreement = format_percent(r.verdict_agreement)
        lines.append(
            f"| {r.benchmark} | {r.model} | {r.old} → {r.new} | {r.n} | {ratio} | {format_number(r.score_old)} → {format_number(r.score_new)} | "
            f"{format_estimate(r.difference.score)} | {agreement} | {format_number(r.kappa)} | {format_number(r.mean_abs_score_change)} |"
        )
    lines += [ranking_line(k) for k in drift.rankings]
    return [*lines, ""]


def ranking_line(k: RankingRow) -> str:
    """One ranking in words: the orders, Kendall's tau-b and the ties (Markdown, also printed by the CLI)."""
    from mmaip_core.analysis.report import format_number

    sides = (("old", k.ties_old), ("new", k.ties_new))
    ties = [f"{side} ties {' = '.join(group)}" for side, groups in sides for group in groups]
    everyone = any(len(group) == len(k.order_old) for _, groups in sides for group in groups)
    tau = format_number(k.kendall)
    if k.kendall is None and everyone:
        tau = "undefined: one side scores every model alike"
    return (
        f"\n{k.benchmark}, {k.old} → {k.new}: models by score {', '.join(k.order_old)} → {', '.join(k.order_new)} "
        f"(Kendall tau-b {tau}{'; ' + '; '.join(ties) if ties else ''})"
    )
