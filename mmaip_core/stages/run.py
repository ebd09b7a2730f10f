"""What the stages share: the run's state and summary, generation keys, loading the frames of a list of samples,
and what a run folder remembers (the resolved config, the run manifest)."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from mmaip_core.calls.budget import Budget
from mmaip_core.calls.pricing import PriceTable
from mmaip_core.config import RunConfig
from mmaip_core.errors import VideoError
from mmaip_core.frames import FrameLoader
from mmaip_core.plugins.kinds import Frames
from mmaip_core.plugins.manager import PluginManager
from mmaip_core.records import ItemError, VideoQA
from mmaip_core.store import layout
from mmaip_core.store.files import write_text_atomic
from mmaip_core.store.hashing import stable_hash
from mmaip_core.store.ledger import Ledger
from mmaip_core.store.manifest import run_manifest
from mmaip_core.store.redaction import redact

__all__ = [
    "KEY_VERSION",
    "BuildSummary",
    "ErrorCount",
    "ItemError",
    "Progress",
    "StageRun",
    "by_stage",
    "count_errors",
    "first_error",
    "generation_key",
    "load_frames",
    "stage_sections",
    "write_run_manifest",
]

KEY_VERSION = 2

Progress = Callable[[str, int, int, float], None]
"""Called as ``progress(stage, done, total, spent_usd)`` while a stage runs (``spent_usd``: the folder's
API spending so far)."""


class ErrorCount(BaseModel):
    """How many items of one stage failed with one error class, for one model (None: no model concerned)."""

    stage: str
    model: str | None
    error_class: str
    count: int


def count_errors(errors: Iterable[ItemError]) -> list[ErrorCount]:
    """``errors`` counted by stage (in pipeline order), model and error class."""
    counts = Counter((e.stage, e.model, e.error_class) for e in errors)
    order = sorted(counts, key=lambda k: (STAGE_ORDER.get(k[0], len(STAGE_ORDER)), k[0], k[1] or "", k[2]))
    return [ErrorCount(stage=s, model=m, error_class=c, count=counts[(s, m, c)]) for s, m, c in order]


class BuildSummary(BaseModel):
    """Counts of a build (``summary.json``)."""

    samples: int = 0
    row_errors: int = 0
    video_errors: int = 0
    responses: dict[str, dict[str, int]] = Field(
        default_factory=dict, description="Per zoo entry: done, failed, reused (from the ledger), new."
    )
    judgements: dict[str, int] = Field(default_factory=dict, description="By status; plus reused and new.")
    pairs: int = 0
    skipped: dict[str, int] = Field(default_factory=dict, description="Questions without a pair, by reason.")
    cost_usd: float = 0.0
    cost_by_stage: dict[str, float] = Field(
        default_factory=dict,
        description="USD by zoo entry ('generation <name>') and 'judgement', earlier runs included.",
    )
    refused_by_budget: int = Field(default=0, description="API calls not made because of --max-cost.")
    errors: list[ErrorCount] = Field(
        default_factory=list, description="Failed items (errors.jsonl) by stage, model and error class."
    )


def generation_key(
    sample: VideoQA, frames: Frames | None, entry: str, generator: str, fingerprint: str, sample_index: int
) -> str:
    """Key of one generation call: frames (video content, sampler, indices, size), the sample and its question,
    the zoo entry, its generator plugin and fingerprint (model, revision, parameters), and the answer's index.

    The sample id and entry name are part of it so that two rows asking the same question of the same video,
    or two entries with the same model, each get their own answers.
    """
    return stable_hash(
        {
            "v": KEY_VERSION,
            "kind": "generation",
            "frames": frames.manifest.key if frames is not None else None,
            "sample": sample.id,
            "question": sample.question,
            "entry": entry,
            "generator": generator,
            "fingerprint": fingerprint,
            "sample_index": sample_index,
        }
    )


@dataclass
class StageRun:
    config: RunConfig
    out: Path
    manager: PluginManager
    ledger: Ledger
    progress: Progress
    prices: PriceTable
    budget: Budget
    summary: BuildSummary = field(default_factory=BuildSummary)
    """What the shared steps count (rows, videos, answers, cost) and, in a build, its judgements and pairs."""
    verdicts: Counter[str] = field(default_factory=Counter)
    """An evaluation's verdicts: reused from the ledger and new."""
    errors: list[ItemError] = field(default_factory=list)

    def fail(
        self,
        stage: str,
        item: str,
        error_class: str,
        message: str,
        model: str | None = None,
        sample_id: str | None = None,
    ) -> None:
        """Record one failed item (``model``: the model label it concerns; ``sample_id``: its sample)."""
        error = ItemError(
            stage=stage, model=model, sample_id=sample_id, item=item, error_class=error_class, message=message
        )
        self.errors.append(error)

    @classmethod
    @contextmanager
    def open(
        cls,
        config: RunConfig,
        out: Path,
        manager: PluginManager,
        progress: Progress | None = None,
        max_cost: float | None = None,
        ledger: str | Path | None = None,
    ) -> Iterator[StageRun]:
        """A stage's run in ``out`` with its ledger (``out/ledger.sqlite`` unless ``ledger`` names another, e.g.
        ``":memory:"`` for a plan that must write nothing), the config's prices and a budget of ``max_cost`` USD
        that counts what the ledger already spent."""
        with Ledger(ledger or out / layout.LEDGER) as opened:
            budget = Budget(max_cost, spent=opened.total_cost())
            yield cls(config, out, manager, opened, progress or _silent, PriceTable(config.prices), budget)


def _silent(stage: str, done: int, total: int, spent: float) -> None:
    """Progress that reports nothing."""


STAGE_ORDER = {"samples": 0, "frames": 1, "generation": 2, "judgement": 3}
"""The order of the stages in ``errors.jsonl`` (other stages come after)."""


def by_stage(errors: Iterable[ItemError]) -> list[ItemError]:
    """``errors`` sorted by stage, in the order they happened within one."""
    return sorted(errors, key=lambda e: STAGE_ORDER.get(e.stage, len(STAGE_ORDER)))


def first_error(run: StageRun, stage: str) -> str:
    """``"; first: CLASS: message"`` for the first item error of ``stage``, or an empty string."""
    first = next((e for e in run.errors if e.stage == stage), None)
    return f"; first: {first.error_class}: {first.message}" if first else ""


def stage_sections(config: RunConfig, manager: PluginManager, names: Sequence[str]) -> dict[str, Any]:
    """The resolved sections ``names`` of ``config`` (plugin defaults filled in), credentials redacted: what a
    run folder remembers of its config."""
    resolved = config.resolved(manager)
    sections: dict[str, Any] = redact({name: resolved[name] for name in names if name in resolved})
    return sections


def write_run_manifest(out: Path, config: RunConfig, manager: PluginManager) -> None:
    """``out/run-manifest.json``: versions, plugins, the resolved config and the command."""
    manifest = run_manifest(config.resolved(manager), manager, sys.argv)
    write_text_atomic(out / layout.RUN_MANIFEST, manifest.model_dump_json(indent=2))


def load_frames(run: StageRun, samples: Sequence[VideoQA]) -> dict[str, Frames]:
    """Frames of every sample by sample id; each video is loaded once however many questions it has."""
    loader = FrameLoader(run.config.frames, run.manager)
    frames: dict[str, Frames] = {}
    by_video: dict[str, Frames | VideoError] = {}
    for done, sample in enumerate(samples, start=1):
        if sample.video is None:  # a text-only question
            continue
        if sample.video not in by_video:
            try:
                by_video[sample.video] = loader.load(sample.video)
            except VideoError as exc:
                by_video[sample.video] = exc
        loaded = by_video[sample.video]
        if isinstance(loaded, VideoError):
            run.fail("frames", sample.id, type(loaded).__name__, str(loaded), sample_id=sample.id)
            run.summary.video_errors += 1
        else:
            frames[sample.id] = loaded
        run.progress("frames", done, len(samples), run.budget.spent)
    return frames
