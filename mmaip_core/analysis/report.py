"""The evaluation report: ``report.md`` with PNG charts (ratio and mean-score bars with intervals, score
histograms; a panel without data says so)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from mmaip_core.analysis.charts import grouped_bars, label_or_no_data
from mmaip_core.analysis.metrics import Estimate
from mmaip_core.records import EvalRecord, ParseStatus
from mmaip_core.store import layout
from mmaip_core.store.files import save_figure, write_text_atomic
from mmaip_core.store.hashing import stable_hash

if TYPE_CHECKING:
    from mmaip_core.stages.evaluate import EvalResults, MetricRow

__all__ = ["format_estimate", "format_number", "format_percent", "write_report"]


def format_estimate(e: Estimate, percent: bool = False) -> str:
    """``value [low, high]``, in percent for ratios; a dash without usable records."""
    if e.value is None or e.low is None or e.high is None:
        return "–"
    k, digits = (100, 1) if percent else (1, 2)
    return f"{e.value * k:.{digits}f} [{e.low * k:.{digits}f}, {e.high * k:.{digits}f}]"


def format_number(value: float | None, digits: int = 2, scale: float = 1.0) -> str:
    """``scale * value`` with ``digits`` decimals; a dash for a figure that does not exist."""
    return "–" if value is None else f"{scale * value:.{digits}f}"


def format_percent(value: float | None) -> str:
    """A share as a percentage with one decimal; a dash for a share that does not exist."""
    return "–" if value is None else f"{100 * value:.1f}%"


def _slug(text: str) -> str:
    """A file-name-safe form of ``text``, unique per text (a short hash is added when characters were replaced)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", text)
    return safe if safe == text else f"{safe}-{stable_hash(text)[:6]}"


def _estimates(rows: Sequence[MetricRow], score: bool) -> tuple[list[str], dict[str, list[Estimate]]]:
    """The benchmarks and, per model, its ratio (or mean score) estimate on each (no value where it has no row)."""
    benchmarks = sorted({r.benchmark for r in rows})
    found = {(r.model, r.benchmark): r.metrics.score if score else r.metrics.ratio for r in rows}
    models = sorted({r.model for r in rows})
    return benchmarks, {m: [found.get((m, b), Estimate(value=None)) for b in benchmarks] for m in models}


def _bar_chart(out: Path, name: str, rows: Sequence[MetricRow], score: bool, title: str) -> str:
    """Grouped bars with 95% intervals, one group per benchmark: ratios in % (0-100) or mean scores."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    benchmarks, series = _estimates(rows, score)
    figure, axis = plt.subplots(figsize=(max(4, 1.6 * len(benchmarks) * max(len(series), 1)), 3.2))
    if grouped_bars(axis, benchmarks, series, scale=1 if score else 100, digits=2 if score else 1):
        axis.set_ylabel("mean score, 95% CI" if score else "ratio (% yes), 95% CI")
        if not score:
            axis.set_ylim(0, 105)
    axis.set_title(title)
    figure.tight_layout()
    save_figure(figure, out / name)
    return name


def _histogram(out: Path, name: str, records: Sequence[EvalRecord], evaluator: str, models: Sequence[str]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(5, 3.2))
    for model in models:
        scores = [r.score for r in records if r.evaluator == evaluator and r.model == model and r.score is not None]
        if scores:
            axis.hist(scores, bins=20, histtype="step", linewidth=1.5, label=model)
    label_or_no_data(axis, "score", "predictions", "no scored prediction")
    axis.set_title(f"{evaluator}: score distribution")
    figure.tight_layout()
    save_figure(figure, out / name)
    return name


def _charts(out: Path, results: EvalResults, records: Sequence[EvalRecord], evaluator: str) -> list[str]:
    """One evaluator's charts: ratios and mean scores by benchmark (with intervals), and the score distribution."""
    rows = [r for r in results.metrics if r.evaluator == evaluator]
    slug = _slug(evaluator)
    return [
        _bar_chart(out, f"ratio-{slug}.png", rows, False, f"{evaluator}: accuracy by benchmark"),
        _bar_chart(out, f"score-{slug}.png", rows, True, f"{evaluator}: mean score by benchmark"),
        _histogram(out, f"scores-{slug}.png", records, evaluator, sorted({r.model for r in rows})),
    ]


def _category_lines(rows: Sequence[MetricRow]) -> list[str]:
    """The per-category table of ``rows`` (one evaluator's); nothing when no sample has categories."""
    if not any(r.categories for r in rows):
        return []
    lines = [
        "",
        "| benchmark | model | category | value | n | ratio % | score |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in sorted(rows, key=lambda r: (r.benchmark, r.model)):
        for name, values in row.categories.items():
            for value, m in values.items():
                lines.append(
                    f"| {row.benchmark} | {row.model} | {name} | {value} | {m.n} | {format_estimate(m.ratio, True)} | "
                    f"{format_estimate(m.score)} |"
                )
    return lines


def write_report(out: Path, results: EvalResults, records: Sequence[EvalRecord]) -> Path:
    """Write ``report.md`` and its charts into ``out``; returns the report's path."""
    lines = [
        "# Evaluation report",
        "",
        "Ratio = share of 'yes' verdicts; score = mean score. Brackets: 95% "
        "bootstrap intervals over videos. Unreadable verdicts are counted, never imputed.",
        "",
    ]
    for evaluator in sorted({r.evaluator for r in results.metrics}):
        lines += [
            f"## {evaluator}",
            "",
            "| benchmark | model | n | ratio % | score | unreadable | errors |",
            "|---|---|---|---|---|---|---|",
        ]
        for row in sorted(
            (r for r in results.metrics if r.evaluator == evaluator), key=lambda r: (r.benchmark, r.model)
        ):
            m = row.metrics
            lines.append(
                f"| {row.benchmark} | {row.model} | {m.n} | {format_estimate(m.ratio, True)} | {format_estimate(m.score)} | "
                f"{m.parse_failures} | {m.errors} |"
            )
        lines += _category_lines([r for r in results.metrics if r.evaluator == evaluator])
        paired = [p for p in results.paired if p.evaluator == evaluator]
        if paired:
            lines += [
                "",
                "| benchmark | A − B | n | ratio difference (points) | score difference |",
                "|---|---|---|---|---|",
            ]
            for p in paired:
                d = p.difference
                lines.append(
                    f"| {p.benchmark} | {p.model_a} − {p.model_b} | {d.n} | {format_estimate(d.ratio, True)} | {format_estimate(d.score)} |"
                )
        lines += ["", *[f"![{name}]({name})" for name in _charts(out, results, records, evaluator)], ""]
    unreadable = sum(r.status in (ParseStatus.PARSE_FAILURE, ParseStatus.OUT_OF_RANGE) for r in records)
    lines += [f"{len(records)} verdicts ({unreadable} unreadable); API cost ${results.cost_usd:.4f}.", ""]
    path = out / layout.REPORT
    write_text_atomic(path, "\n".join(lines))
    return path
