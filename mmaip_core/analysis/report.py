"""The evaluation report: ``report.md`` with PNG charts (bars with intervals, score histograms)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from mmaip_core.analysis.metrics import Estimate
from mmaip_core.records import EvalRecord, ParseStatus
from mmaip_core.store import layout
from mmaip_core.store.files import save_figure, write_text_atomic
from mmaip_core.store.hashing import stable_hash

if TYPE_CHECKING:
    from mmaip_core.stages.evaluate import EvalResults

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


def _charts(out: Path, results: EvalResults, records: Sequence[EvalRecord], evaluator: str) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in results.metrics if r.evaluator == evaluator]
    benchmarks = sorted({r.benchmark for r in rows})
    models = sorted({r.model for r in rows})
    width = 0.8 / max(len(models), 1)
    figure, axis = plt.subplots(figsize=(max(4, 1.6 * len(benchmarks) * max(len(models), 1)), 3.2))
    for i, model in enumerate(models):
        values, low, high = [], [], []
        for benchmark in benchmarks:
            row = next((r for r in rows if r.model == model and r.benchmark == benchmark), None)
            ratio = row.metrics.ratio if row else Estimate(value=None)
            value = ratio.value or 0.0
            values.append(100 * value)
            low.append(100 * (value - (ratio.low if ratio.low is not None else value)))
            high.append(100 * ((ratio.high if ratio.high is not None else value) - value))
        positions = [b + (i - (len(models) - 1) / 2) * width for b in range(len(benchmarks))]
        axis.bar(positions, values, width, yerr=[low, high], capsize=3, label=model)
    axis.set_xticks(range(len(benchmarks)), benchmarks)
    axis.set_ylabel("ratio (% yes), 95% CI")
    axis.set_ylim(0, 100)
    axis.set_title(f"{evaluator}: accuracy by benchmark")
    axis.legend(fontsize="small")
    figure.tight_layout()
    bars = f"ratio-{_slug(evaluator)}.png"
    save_figure(figure, out / bars)

    figure, axis = plt.subplots(figsize=(5, 3.2))
    for model in models:
        scores = [r.score for r in records if r.evaluator == evaluator and r.model == model and r.score is not None]
        if scores:
            axis.hist(scores, bins=20, histtype="step", linewidth=1.5, label=model)
    axis.set_xlabel("score")
    axis.set_ylabel("predictions")
    axis.set_title(f"{evaluator}: score distribution")
    if axis.get_legend_handles_labels()[0]:
        axis.legend(fontsize="small")
    figure.tight_layout()
    hist = f"scores-{_slug(evaluator)}.png"
    save_figure(figure, out / hist)
    return [bars, hist]


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
