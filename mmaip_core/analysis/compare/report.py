"""The comparison report: ``report.md`` with an agreement heat map and bias plots."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from mmaip_core.analysis.charts import grouped_bars, label_or_no_data
from mmaip_core.analysis.metrics import Estimate
from mmaip_core.analysis.report import format_number, format_percent
from mmaip_core.records import Judgement, ParseStatus, Response
from mmaip_core.store import layout
from mmaip_core.store.files import save_figure, write_text_atomic

if TYPE_CHECKING:
    from mmaip_core.analysis.compare.run import Comparison
    from mmaip_core.analysis.compare.stats import PairAgreement

__all__ = ["cell_texts", "write_comparison_report"]


def cell_texts(agreement: Sequence[PairAgreement], field: str, names: Sequence[str]) -> dict[tuple[int, int], str]:
    """The text of each heat-map cell (row, column) of ``field``: the figure, a dash where it is undefined, "self"
    on the diagonal; same pairs as the count it is, k/n (1/1 is not the 1.00 of 40/40)."""
    index = {n: i for i, n in enumerate(names)}
    texts = {(i, j): "–" for i in range(len(names)) for j in range(len(names))}
    texts.update({(i, i): "self" for i in range(len(names))})
    for row in agreement:
        value = getattr(row, field)
        text = f"{row.same_pairs}/{row.pair_questions}" if field == "pair_agreement" else format_number(value)
        texts[(index[row.a], index[row.b])] = texts[(index[row.b], index[row.a])] = text
    return texts


def _heatmap(out: Path, comparison: Comparison) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = [s.name for s in comparison.scorers]
    index = {n: i for i, n in enumerate(names)}
    panels = [
        ("kappa", "Cohen's kappa (chosen/rejected)"),
        ("kendall", "mean Kendall tau per question"),
        ("pair_agreement", "same pairs (share of questions)"),
    ]
    figure, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6))
    for axis, (field, title) in zip(axes, panels, strict=True):
        grid = np.full((len(names), len(names)), np.nan)
        np.fill_diagonal(grid, 1.0)
        for row in comparison.agreement:
            value = getattr(row, field)
            if value is not None:
                grid[index[row.a], index[row.b]] = grid[index[row.b], index[row.a]] = value
        image = axis.imshow(grid, vmin=-1 if field != "pair_agreement" else 0, vmax=1, cmap="RdYlGn")
        for (i, j), text in cell_texts(comparison.agreement, field, names).items():
            axis.text(j, i, text, ha="center", va="center", fontsize=8)
        axis.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=8)
        axis.set_yticks(range(len(names)), names, fontsize=8)
        axis.set_title(title, fontsize=9)
        figure.colorbar(image, ax=axis, fraction=0.046)
    figure.tight_layout()
    save_figure(figure, out / "agreement.png")
    return "agreement.png"


def _bias(
    out: Path, comparison: Comparison, responses: Sequence[Response], judgements: Mapping[str, Mapping[str, Judgement]]
) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (scatter, bars) = plt.subplots(1, 2, figsize=(9, 3.4))
    for stats in comparison.scorers:
        points = [
            (len((r.text or "").split()), j.score)
            for r in responses
            if (j := judgements[stats.name].get(r.id)) is not None
            and j.status is ParseStatus.OK
            and j.score is not None
        ]
        if points:
            low, high = min(p[1] for p in points), max(p[1] for p in points)
            span = (high - low) or 1.0  # scales differ between scorers: show each on 0-1
            scatter.scatter(
                [p[0] for p in points],
                [(p[1] - low) / span for p in points],
                s=10,
                alpha=0.6,
                label=f"{stats.name} (rho {format_number(stats.length_bias.spearman)})",
            )
    label_or_no_data(
        scatter, "answer length (words)", "score, rescaled to 0-1 per scorer", "no scored answer", "x-small"
    )
    scatter.set_title("length bias", fontsize=9)
    rates = {s.name: [Estimate(value=s.parse_failure_rate)] for s in comparison.scorers}
    grouped_bars(bars, [""], rates, scale=100, digits=1)
    bars.set_ylabel("parse failures (% of answers)")
    bars.set_title("unreadable verdicts", fontsize=9)
    figure.tight_layout()
    save_figure(figure, out / "bias.png")
    return "bias.png"


def write_comparison_report(
    out: Path, comparison: Comparison, responses: Sequence[Response], judgements: Mapping[str, Mapping[str, Judgement]]
) -> Path:
    """Write ``report.md``, ``agreement.png`` and ``bias.png`` into ``out``; returns the report's path."""
    lines = [
        "# Scorer comparison",
        "",
        f"Build `{comparison.build}`: {comparison.answers} answers to {comparison.questions} questions; pairs made "
        f"with the build's `{comparison.strategy}` strategy. Definitions: `mmaip_core/analysis/compare/stats.py` and "
        "docs/evaluation.md.",
        *_scorer_table(comparison),
        *_agreement_table(comparison),
        *_human_table(comparison),
        "",
        f"![agreement]({_heatmap(out, comparison)})",
        "",
        f"![bias]({_bias(out, comparison, responses, judgements)})",
        "",
    ]
    path = out / layout.REPORT
    write_text_atomic(path, "\n".join(lines))
    return path


def _scorer_table(comparison: Comparison) -> list[str]:
    lines = [
        "",
        "## Scorers",
        "",
        "| scorer | plugin | judged | parse failures | errors | pairs | length bias rho (r) | position bias | "
        "cost $ | $ per pair | mean latency s | reused / new |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in comparison.scorers:
        lines.append(
            f"| {s.name} | {s.plugin} | {s.judged} | {s.parse_failures} ({format_percent(s.parse_failure_rate)}) | {s.errors} | "
            f"{s.pairs} | {format_number(s.length_bias.spearman)} ({format_number(s.length_bias.pearson)}) | n/a (pointwise) | "
            f"{s.cost_usd:.4f} | {format_number(s.cost_per_pair_usd, 5)} | {format_number(s.mean_latency_s, 4)} | {s.reused} / {s.new} |"
        )
    return lines


def _agreement_table(comparison: Comparison) -> list[str]:
    lines = [
        "",
        "## Agreement",
        "",
        "| A | B | questions | Spearman | Kendall | kappa | same decision | same pairs | pairs changed A→B / B→A |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for a in comparison.agreement:
        lines.append(
            f"| {a.a} | {a.b} | {a.questions} | {format_number(a.spearman)} ({a.spearman_questions}) | {format_number(a.kendall)} "
            f"({a.kendall_questions}) | {format_number(a.kappa)} ({a.decisions}) | {format_percent(a.decision_agreement)} | "
            f"{a.same_pairs}/{a.pair_questions} ({format_percent(a.pair_agreement)}) | {a.changed_a_to_b} / {a.changed_b_to_a} |"
        )
    return lines


def _human_table(comparison: Comparison) -> list[str]:
    """Each scorer's agreement with the human pairs (none without a human file)."""
    if comparison.human_file is None:
        return []
    lines = [
        "",
        f"## Agreement with human preferences (`{comparison.human_file}`, {comparison.human_pairs} pairs)",
        "",
        "| scorer | agrees | disagrees | ties | unscored | agreement |",
        "|---|---|---|---|---|---|",
    ]
    for s in comparison.scorers:
        if s.human is not None:
            h = s.human
            lines.append(
                f"| {s.name} | {h.agree} | {h.disagree} | {h.ties} | {h.unscored} | {format_percent(h.rate)} |"
            )
    return lines
