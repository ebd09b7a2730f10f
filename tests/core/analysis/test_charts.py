"""The reports' charts: "no data" instead of zero bars, every bar labelled with its value, a chart of mean
scores with intervals, and "same pairs" cells that show their counts (1/1 is not 1.00)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pytest

from mmaip_core.analysis.charts import NO_DATA, grouped_bars
from mmaip_core.analysis.compare.report import cell_texts
from mmaip_core.analysis.compare.stats import PairAgreement
from mmaip_core.analysis.metrics import Estimate, MetricSummary
from mmaip_core.analysis.report import write_report
from mmaip_core.stages.evaluate import EvalResults, MetricRow


def _texts(axis: Any) -> list[str]:
    return [t.get_text() for t in axis.texts]


@pytest.fixture
def axis() -> Any:
    figure, axis = plt.subplots()
    yield axis
    plt.close(figure)


def test_a_panel_without_values_says_no_data_and_draws_no_bar(axis: Any) -> None:
    assert not grouped_bars(axis, ["a", "b"], {"m": [Estimate(value=None), Estimate(value=None)]})
    assert _texts(axis) == [NO_DATA] and not axis.patches
    assert list(axis.get_yticks()) == [], "no axis range (such as -0.04 to 0.04) to misread"


def test_zeros_are_bars_labelled_zero_and_a_missing_value_is_no_bar(axis: Any) -> None:
    zero = Estimate(value=0.0, low=0.0, high=0.0)
    assert grouped_bars(axis, ["a", "b"], {"m": [zero, Estimate(value=None)], "n": [zero, zero]}, scale=100, digits=1)
    assert len(axis.patches) == 3, "three values, three bars; the missing one gets none"
    assert _texts(axis).count("n/a") == 1
    assert sorted(t.get_text() for t in axis.texts if t.get_text() != "n/a") == ["0.0"] * 3, "a zero is seen as 0"
    assert [t.get_text() for t in axis.get_legend().get_texts()] == ["m", "n"]


def _row(model: str, benchmark: str, ratio: Estimate, score: Estimate) -> MetricRow:
    metrics = MetricSummary(n=3, videos=3, parse_failures=0, errors=0, ratio=ratio, score=score)
    return MetricRow(model=model, benchmark=benchmark, evaluator="judge", metrics=metrics)


def test_the_report_has_a_mean_score_chart_and_survives_a_run_without_data(tmp_path: Path) -> None:
    score = Estimate(value=3.5, low=3.0, high=4.0)
    rows = [_row("base", "demo", Estimate(value=0.0, low=0.0, high=0.0), score)]
    report = write_report(tmp_path, EvalResults(metrics=rows, paired=[]), []).read_text()
    assert "![score-judge.png](score-judge.png)" in report and "![ratio-judge.png](ratio-judge.png)" in report
    assert all((tmp_path / f"{kind}-judge.png").stat().st_size > 0 for kind in ("ratio", "score", "scores"))
    empty = [_row("base", "demo", Estimate(value=None), Estimate(value=None))]
    write_report(tmp_path / "empty", EvalResults(metrics=empty, paired=[]), [])
    assert (tmp_path / "empty" / "score-judge.png").stat().st_size > 0


def _agreement(same: int, questions: int, share: float | None) -> PairAgreement:
    return PairAgreement(
        a="x",
        b="y",
        questions=questions,
        spearman=None,
        spearman_questions=0,
        kendall=0.5,
        kendall_questions=questions,
        kappa=None,
        decisions=0,
        decision_agreement=None,
        pair_questions=questions,
        same_pairs=same,
        pair_agreement=share,
        changed_a_to_b=0,
        changed_b_to_a=0,
    )


def test_same_pairs_cells_show_their_counts() -> None:
    one = cell_texts([_agreement(1, 1, 1.0)], "pair_agreement", ["x", "y"])
    assert one == {(0, 0): "self", (1, 1): "self", (0, 1): "1/1", (1, 0): "1/1"}
    assert cell_texts([_agreement(1, 1, 1.0)], "kendall", ["x", "y"])[(0, 1)] == "0.50"
    assert cell_texts([_agreement(1, 1, 1.0)], "kappa", ["x", "y", "z"])[(0, 2)] == "–"


def test_the_miniature_plot_of_a_run_without_results_says_no_data(tmp_path: Path, monkeypatch: Any) -> None:
    from mmaip_miniature import QUICK
    from mmaip_miniature.experiment import MiniatureResults, ModelResult
    from mmaip_miniature.report import _plot

    drawn: list[Any] = []
    monkeypatch.setattr("mmaip_miniature.report.save_figure", lambda figure, path: drawn.append(figure))
    empty = ModelResult(model="llava-weak", description="the base", metrics={})
    results = MiniatureResults(
        settings=QUICK, machine="test", date="today", wall_s={}, pairs={}, models=[empty], text_judge=[]
    )
    _plot(tmp_path, results)
    (axis,) = drawn[0].axes
    assert _texts(axis) == [NO_DATA] and not axis.patches
