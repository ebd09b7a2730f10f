"""The miniature's results: ``results.md`` (tables with intervals) and ``results.png`` (accuracy bars)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mmaip_core.analysis.charts import grouped_bars
from mmaip_core.analysis.metrics import Estimate
from mmaip_core.analysis.report import format_estimate, format_number, format_percent
from mmaip_core.store.files import save_figure, write_text_atomic

if TYPE_CHECKING:
    from mmaip_miniature.experiment import MiniatureResults

__all__ = ["results_table", "write_results"]

BENCHMARKS = ("held-out", "ood")


def _accuracy(results: MiniatureResults, model: int, benchmark: str, evaluator: str = "exact-match") -> Estimate:
    summary = results.models[model].metrics.get(f"{benchmark}/{evaluator}")
    return summary.ratio if summary is not None else Estimate(value=None)


def results_table(results: MiniatureResults) -> list[str]:
    """The main table (Markdown lines): exact-match accuracy per model and split, and the change from the base."""
    lines = [
        "| model | what | held-out accuracy % | vs base (points) | ood accuracy % | vs base (points) |",
        "|---|---|---|---|---|---|",
    ]
    for i, m in enumerate(results.models):
        cells = []
        for benchmark in BENCHMARKS:
            diff = m.versus_base.get(benchmark)
            cells += [
                format_estimate(_accuracy(results, i, benchmark), True),
                format_estimate(diff.ratio, True) if diff is not None else "–",
            ]
        lines.append(f"| {m.model} | {m.description} | {' | '.join(cells)} |")
    lines += [f"| {name} | {why} | – | – | – | – |" for name, why in results.untrained.items()]
    return lines


def _plot(out: Path, results: MiniatureResults) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [m.model for m in results.models]
    figure, axis = plt.subplots(figsize=(max(6, 1.1 * len(names)), 3.6))
    series = {b: [_accuracy(results, i, b) for i in range(len(names))] for b in BENCHMARKS}
    if grouped_bars(axis, names, series, scale=100, digits=1):  # a run without results says so: no zero bars
        axis.set_xticks(range(len(names)), names, rotation=25, ha="right", fontsize=8)
        axis.set_ylabel("exact-match accuracy %, 95% CI")
        axis.set_ylim(0, 105)
    axis.set_title("ShapesQA miniature: zoo members and the weakest model trained (a)-(d)", fontsize=9)
    figure.tight_layout()
    save_figure(figure, out / "results.png")
    return "results.png"


def write_results(out: Path, results: MiniatureResults) -> Path:
    """Write ``results.md`` and ``results.png`` into ``out``."""
    s = results.settings
    lines = [
        "# The paper in miniature (ShapesQA)",
        "",
        f"{results.date}, {results.machine}; seed {s.seed}; {s.train_videos} train videos ({s.zoo_videos} for the zoo's "
        f"fine-tuning), {s.held_out} held-out and {s.ood} out-of-domain videos, 3 questions each; {s.num_frames} frames. "
        f"Pairs: {results.pairs.get('zoo', 0)} from the zoo, {results.pairs.get('single', 0)} from the weakest model "
        f"alone. {s.rounds} rounds, alpha {s.alpha}. Brackets: 95% bootstrap intervals over videos; 'vs base': "
        "the change from the base model on the same questions.",
        "",
        *results_table(results),
        "",
        "## The text-only judge against the truth",
        "",
        "The `reference` evaluator (embedding similarity of prediction and ground truth, no video) beside exact "
        "match on the same predictions.",
        "",
        "| benchmark | model | exact-match accuracy % | text-only judge 'yes' % | same verdict | kappa |",
        "|---|---|---|---|---|---|",
    ]
    for r in results.text_judge:
        exact, text = format_number(r.ratio_old, 1, scale=100), format_number(r.ratio_new, 1, scale=100)
        lines.append(
            f"| {r.benchmark} | {r.model} | {exact} | {text} | {format_percent(r.verdict_agreement)} | "
            f"{format_number(r.kappa)} |"
        )
    walls = ", ".join(f"{k} {v:.0f} s" for k, v in results.wall_s.items())
    lines += ["", f"Wall time: {walls}.", "", f"![results]({_plot(out, results)})", ""]
    path = out / "results.md"
    write_text_atomic(path, "\n".join(lines))
    return path
