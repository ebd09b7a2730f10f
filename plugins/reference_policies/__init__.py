"""Reference-update policies of iterative DPO.

After round t the next reference is:

============== ==========================================================================
policy         next reference
============== ==========================================================================
fixed          the base model (plain DPO repeated against the SFT model)
previous       this round's DPO policy
extrapolated   this round's extrapolated (ExPO) model — the paper's Iter-W2S-RLAIF
ema            ``(1 - weight) * reference + weight * policy``
============== ==========================================================================
"""

from __future__ import annotations

from pydantic import Field

from mmaip_core import PluginOptions, ReferencePolicySpec, ReferenceUpdate, hookimpl

__all__ = ["Ema", "EmaOptions", "Select"]


class Select:
    """The next reference is one of this round's checkpoints, unchanged."""

    def __init__(self, checkpoint: str) -> None:
        self.update = ReferenceUpdate(weights={checkpoint: 1.0})

    def next_reference(self, round_index: int) -> ReferenceUpdate:
        return self.update


class EmaOptions(PluginOptions):
    weight: float = Field(default=0.5, gt=0, lt=1, description="Weight of this round's policy.")


class Ema:
    """The next reference mixes the current reference and this round's policy."""

    def __init__(self, options: EmaOptions) -> None:
        self.update = ReferenceUpdate(weights={"reference": 1 - options.weight, "policy": options.weight})

    def next_reference(self, round_index: int) -> ReferenceUpdate:
        return self.update


@hookimpl
def mmaip_reference_policies() -> list[ReferencePolicySpec]:
    return [
        ReferencePolicySpec(
            name="fixed", description="reference stays the base model (plain DPO)", factory=lambda _: Select("base")
        ),
        ReferencePolicySpec(
            name="previous",
            description="reference = last round's DPO policy",
            factory=lambda _: Select("policy"),
        ),
        ReferencePolicySpec(
            name="extrapolated",
            description="reference = last round's extrapolated model (the paper's Iter-W2S-RLAIF)",
            factory=lambda _: Select("strong"),
        ),
        ReferencePolicySpec(
            name="ema",
            description="reference = (1 - weight) * reference + weight * policy",
            options=EmaOptions,
            factory=Ema,
        ),
    ]
