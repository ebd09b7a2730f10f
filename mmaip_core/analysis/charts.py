"""What every report's charts share: grouped bars with 95% intervals that are labelled with their values, and
panels that say "no data" instead of drawing zeros (a missing figure is never a bar of height 0).

matplotlib is imported by the callers (with the Agg backend) and only when a chart is drawn.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mmaip_core.analysis.metrics import Estimate

__all__ = ["NO_DATA", "grouped_bars", "label_or_no_data", "no_data"]

NO_DATA = "no data"


def no_data(axis: Any, message: str = NO_DATA) -> None:
    """Mark a panel that has nothing to show: the message in its middle, no ticks, no axis range to misread."""
    axis.set_xticks([])
    axis.set_yticks([])
    axis.text(0.5, 0.5, message, ha="center", va="center", transform=axis.transAxes, color="0.4")


def label_or_no_data(axis: Any, xlabel: str, ylabel: str, message: str, legend_size: str = "small") -> None:
    """Name a panel's axes and show its legend when it drew a labelled series; otherwise mark it :func:`no_data`."""
    if axis.get_legend_handles_labels()[0]:
        axis.set_xlabel(xlabel)
        axis.set_ylabel(ylabel)
        axis.legend(fontsize=legend_size)
    else:
        no_data(axis, message)


def grouped_bars(
    axis: Any,
    groups: Sequence[str],
    series: Mapping[str, Sequence[Estimate]],
    scale: float = 1.0,
    digits: int = 2,
) -> bool:
    """Draw ``series`` (label -> one estimate per group) as grouped bars with their intervals, each bar labelled
    with its value (so a value of 0 is seen as 0); an estimate without a value gets "n/a" and no bar. Returns
    False (and marks the panel) when no estimate has a value."""
    if not any(e.value is not None for estimates in series.values() for e in estimates):
        no_data(axis)
        return False
    width = 0.8 / max(len(series), 1)
    for i, (label, estimates) in enumerate(series.items()):
        offset = (i - (len(series) - 1) / 2) * width
        named = False
        for g, e in enumerate(estimates):
            if e.value is None:
                axis.text(g + offset, 0, "n/a", ha="center", va="bottom", fontsize=7, color="0.4")
                continue
            value = scale * e.value
            low = scale * (e.value - e.low) if e.low is not None else 0.0
            high = scale * (e.high - e.value) if e.high is not None else 0.0
            bar = axis.bar(g + offset, value, width, yerr=[[low], [high]], capsize=3, color=f"C{i}")
            if not named:
                bar.set_label(label)
                named = True
            axis.bar_label(bar, labels=[f"{value:.{digits}f}"], fontsize=7, padding=2)
    axis.set_xticks(range(len(groups)), groups)
    handles, labels = axis.get_legend_handles_labels()
    if handles:
        axis.legend(handles, labels, fontsize="small")
    return True
