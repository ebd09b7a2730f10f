"""``OUT/curves.png``: the per-round training curves (loss, margin, accuracy) of a training run, and the held-out
scores of every round when there are held-out pairs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mmaip_core.records import TrainManifest
from mmaip_core.store.files import save_figure

__all__ = ["plot_curves"]

PANELS = (("loss", "DPO loss"), ("margin", "reward margin (chosen - rejected)"), ("accuracy", "reward accuracy"))
HELD_OUT = (("accuracy", "reward accuracy"), ("margin", "reward margin"), ("loss", "DPO loss"))
"""The held-out scores drawn per round (``RoundResult.eval``)."""


def plot_curves(manifest: TrainManifest, out: Path) -> Path:
    """One panel per curve, one line per round, x = optimizer step within the round; with held-out pairs, one
    more panel: their scores after each round (x = round), the kept round marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    held_out = any(record.result.eval for record in manifest.rounds)
    panels = len(PANELS) + held_out
    fig, axes = plt.subplots(1, panels, figsize=(4.2 * panels, 3.4))
    for ax, (name, title) in zip(axes, PANELS, strict=False):
        for record in manifest.rounds:
            curves = record.result.curves
            if curves.get(name):
                ax.plot(
                    curves.get("step", range(1, len(curves[name]) + 1)), curves[name], label=f"round {record.round}"
                )
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0].legend()
    if held_out:
        _plot_held_out(axes[-1], manifest)
    fig.tight_layout()
    save_figure(fig, out)
    return out


def _plot_held_out(ax: Any, manifest: TrainManifest) -> None:
    rounds = [r for r in manifest.rounds if r.result.eval]
    for name, label in HELD_OUT:
        ax.plot([r.round for r in rounds], [r.result.eval[name] for r in rounds], marker="o", label=label)
    if manifest.final_round is not None:
        ax.axvline(manifest.final_round, color="grey", linestyle="--", label=f"kept ({manifest.keep})")
    ax.set_title("held-out pairs after each round")
    ax.set_xlabel("round")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
