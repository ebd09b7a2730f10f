"""The miniature's results: ``results.md`` (tables with intervals) and ``results.png`` (accuracy bars)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mmaip_core.analysis.charts import grouped_bars
from mmaip_core.analysis.metrics import Estimate, MetricSummary, PairedDifference
from mmaip_core.analysis.report import format_estimate, format_number, format_percent
from mmaip_core.store.files import save_figure, write_text_atomic
from mmaip_miniature.analysis import BENCHMARKS
from mmaip_miniature.chain import ALPHA_RULE
from mmaip_miniature.stats import SeedSpread

if TYPE_CHECKING:
    from mmaip_miniature.experiment import MiniatureResults

__all__ = ["alpha_table", "base_table", "fit_table", "recipe_table", "results_table", "tests_table", "write_results"]


def _ratio(summary: MetricSummary | None) -> str:
    return format_estimate(summary.ratio if summary is not None else Estimate(value=None), True)


def _diff(diff: PairedDifference | None) -> str:
    return format_estimate(diff.ratio, True) if diff is not None else "–"


def _spread(spread: SeedSpread | None, scale: float = 100) -> str:
    """``mean ± sd`` over the seeds (``mean`` alone with one seed)."""
    if spread is None or spread.mean is None:
        return "–"
    sd = f" ± {format_number(spread.sd, 1, scale)}" if spread.sd is not None else ""
    return f"{format_number(spread.mean, 1, scale)}{sd}"


def _main_rows(results: MiniatureResults) -> list[str]:
    rows = []
    for m in results.models:
        if m.variant is None:  # a zoo member: no seeds
            cells = [
                c
                for b in BENCHMARKS
                for c in (_ratio(m.metrics.get(f"{b}/exact-match")), "–", _diff(m.versus_base.get(b)))
            ]
            gaps = [_diff(m.video_gap.get(c)) for c in ("shuffled", "blank")]
            rows.append(f"| {m.model} | {m.description} | {' | '.join(cells + gaps)} |")
    for v in results.variants:
        cells = [
            c
            for b in BENCHMARKS
            for c in (_ratio(v.pooled.get(b)), _spread(v.accuracy.get(b)), _diff(v.versus_base.get(b)))
        ]
        gaps = [_diff(v.video_gap.get(c)) for c in ("shuffled", "blank")]
        seeds = f"{len(v.seeds)} seed{'' if len(v.seeds) == 1 else 's'}"
        rows.append(f"| {v.model} | {v.description} ({seeds}) | {' | '.join(cells + gaps)} |")
    return rows + [f"| {name} | {why} | {' | '.join(['–'] * 8)} |" for name, why in results.untrained.items()]


def results_table(results: MiniatureResults) -> list[str]:
    """The main table (Markdown lines): exact-match accuracy per model and split (a trained variant: every
    seed's questions pooled, and the mean ± sd over seeds), the change from the base and the video gap; then
    the paired tests."""
    lines = [
        "| model | what | held-out % | seeds: mean ± sd | vs base (points) | ood % | seeds: mean ± sd | vs base (points) "
        "| video gap: real − shuffled (points) | real − blank (points) |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *_main_rows(results),
    ]
    return lines + (["", *tests_table(results)] if results.tests else [])


def tests_table(results: MiniatureResults) -> list[str]:
    """The paired tests: A minus B over the questions of every seed, bootstrap interval and sign-flip p."""
    lines = [
        "| comparison | benchmark | seeds | questions | A − B (points) | p (sign-flip) |",
        "|---|---|---|---|---|---|",
    ]
    for t in results.tests:
        seeds = ", ".join(map(str, t.seeds))
        p = format_number(t.p_value, 3)
        lines.append(f"| {t.name} | {t.benchmark} | {seeds} | {t.difference.n} | {_diff(t.difference)} | {p} |")
    return lines


def fit_table(results: MiniatureResults) -> list[str]:
    """Training and validation reward accuracy and margin of every trained model, round by round."""
    lines = [
        "| model | round | alpha | train reward accuracy | train margin | validation reward accuracy "
        "| validation margin | validation loss |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for m in results.models:
        for f in m.fit:
            kept = " (evaluated)" if f.round == m.final_round else ""
            numbers = [f.train_accuracy, f.train_margin, *(f.validation.get(k) for k in ("accuracy", "margin", "loss"))]
            cells = [format_number(f.alpha, 2), *(format_number(x, 3) for x in numbers)]
            lines.append(f"| {m.model} | {f.round}{kept} | {' | '.join(cells)} |")
    return lines


def alpha_table(results: MiniatureResults) -> list[str]:
    """Where alpha is chosen per round (chain.py): every candidate's validation accuracy and the choice."""
    rows = [(m, f) for m in results.models for f in m.fit if f.alpha_validation]
    if not rows:
        return []
    alphas = sorted({a for _, f in rows for a in f.alpha_validation}, key=float)
    lines = [
        "## Alpha per round",
        "",
        f"The rule (chain.py): {ALPHA_RULE.format(tolerance=results.settings.alpha_tolerance)}. Validation questions, "
        "exact-match accuracy % of the round's policy (alpha 0) and of each extrapolation:",
        "",
        f"| model | round | {' | '.join(f'alpha {a}' for a in alphas)} | chosen |",
        f"|---|---|{'---|' * len(alphas)}---|",
    ]
    for m, f in rows:
        cells = [format_number(f.alpha_validation.get(a), 1, scale=100) for a in alphas]
        lines.append(f"| {m.model} | {f.round} | {' | '.join(cells)} | {format_number(f.alpha, 2)} |")
    return [*lines, ""]


def _plot(out: Path, results: MiniatureResults) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    zoo = [m for m in results.models if m.variant is None]
    names = [m.model for m in zoo] + [v.model for v in results.variants]
    figure, axis = plt.subplots(figsize=(max(6, 1.1 * len(names)), 3.6))
    series = {
        b: [
            *(
                m.metrics[f"{b}/exact-match"].ratio if f"{b}/exact-match" in m.metrics else Estimate(value=None)
                for m in zoo
            ),
            *(v.pooled[b].ratio if b in v.pooled else Estimate(value=None) for v in results.variants),
        ]
        for b in BENCHMARKS
    }
    if grouped_bars(axis, names, series, scale=100, digits=1):  # a run without results says so: no zero bars
        axis.set_xticks(range(len(names)), names, rotation=25, ha="right", fontsize=8)
        axis.set_ylabel("exact-match accuracy %, 95% CI")
        axis.set_ylim(0, 105)
    axis.set_title("ShapesQA miniature: zoo members and the weakest model trained (seeds pooled)", fontsize=9)
    figure.tight_layout()
    save_figure(figure, out / "results.png")
    return "results.png"


def _header(results: MiniatureResults) -> list[str]:
    s, p = results.settings, results.pairs
    return [
        "# The paper in miniature (ShapesQA)",
        "",
        f"{results.date}, {results.machine}; data and sampling seed {s.seed}, training seeds "
        f"{', '.join(map(str, s.seeds))}; {s.train_videos} train videos ({s.zoo_videos} for the zoo's fine-tuning, "
        f"the last {s.validation_videos} of the build's for validation), {s.held_out} held-out and {s.ood} "
        f"out-of-domain videos, 3 questions each; {s.num_frames} frames. Pairs: {p.get('zoo', 0)} from the zoo "
        f"({p.get('zoo train', 0)} train, {p.get('validation', 0)} validation), {p.get('single', 0)} from the weakest "
        f"model alone ({p.get('single train', 0)} train), {p.get('oracle train', 0)} oracle pairs. {s.rounds} rounds, "
        f"alpha {s.alpha}. Brackets: 95% bootstrap intervals over videos; 'vs base': the change from the base model on "
        "the same questions; video gap: held-out accuracy on the real frames minus on another video's frames "
        "(shuffled) or on blank frames, question by question. A trained variant pools the questions of all its "
        "seeds; 'seeds' is the mean ± standard deviation of its per-seed accuracies.",
        "",
    ]


def base_table(results: MiniatureResults) -> list[str]:
    """How the base was chosen (Markdown lines; none when the zoo's first member was the base)."""
    choice = results.base
    if choice is None:
        return []
    lines = [
        "## The base",
        "",
        f"The rule (base.py): {choice.rule}. Chosen: **{choice.chosen}** (qualified: "
        f"{', '.join(choice.qualified) or 'none'}). Validation questions, real and shuffled frames:",
        "",
        "| model | role | validation accuracy % | video gap (real − shuffled) |",
        "|---|---|---|---|",
    ]
    for role, group in (("candidate", choice.candidates), ("zoo", choice.others)):
        lines += [f"| {c.name} | {role} | {format_number(c.accuracy, 1, scale=100)} | {_diff(c.gap)} |" for c in group]
    return [*lines, ""]


def recipe_table(results: MiniatureResults) -> list[str]:
    """How the recipe was chosen (Markdown lines; none without a grid)."""
    choice = results.recipe
    if choice is None:
        return []
    lines = [
        "## The recipe",
        "",
        f"The rule (recipe.py): {choice.rule}. Chosen: `{choice.chosen}`. Each point: one round of (a) from the "
        "base on the zoo's training pairs; reward accuracy and margin on the validation pairs after it:",
        "",
        "| options | train accuracy | validation accuracy | validation margin |",
        "|---|---|---|---|",
    ]
    for f in choice.fits:
        lines.append(
            f"| `{f.options}` | {format_number(f.train_accuracy)} | {format_number(f.validation.get('accuracy'))} | "
            f"{format_number(f.validation.get('margin'))} |"
        )
    return [*lines, ""]


def write_results(out: Path, results: MiniatureResults) -> Path:
    """Write ``results.md`` and ``results.png`` into ``out``."""
    lines = [
        *_header(results),
        *base_table(results),
        *recipe_table(results),
        *alpha_table(results),
        *results_table(results),
        "",
        "Paired tests: A minus B question by question, seed s of A against seed s of B, every seed's questions "
        "pooled; p: two-sided sign-flip permutation test over videos (docs/miniature.md).",
        "",
        "## Training and validation fit",
        "",
        "Reward accuracy and margin: training, the mean over the round's steps; validation, the zoo's pairs on the "
        "validation videos after the round (never trained on).",
        "",
        *fit_table(results),
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
