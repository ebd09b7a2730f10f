"""``OUT/curves.png``: the per-round training curves (loss, margin, accuracy) of a training run."""

from __future__ import annotations

from pathlib import Path

from mmaip_core.records import TrainManifest
from mmaip_core.store.files import save_figure

__all__ = ["plot_curves"]

PANELS = (("loss", "DPO loss"), ("margin", "reward margin (chosen - rejected)"), ("accuracy", "reward accuracy"))


def plot_curves(manifest: TrainManifest, out: Path) -> Path:
    """One panel per curve, one line per round, x = optimizer step within the round."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(PANELS), figsize=(4.2 * len(PANELS), 3.4))
    for ax, (name, title) in zip(axes, PANELS, strict=True):
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
    fig.tight_layout()
    save_figure(fig, out)
    return out
