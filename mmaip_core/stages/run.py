"""What the stages share: the run's state, reading samples, loading frames, and asking the zoo through the
ledger (generation keys, batches for local models, concurrent calls within the budget for API models)."""

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
from mmaip_core.calls.runner import run_generation_calls
from mmaip_core.config import PluginChoice, RunConfig, ZooEntry
from mmaip_core.errors import VideoError
from mmaip_core.frames import FrameLoader
from mmaip_core.plugins.kinds import AsyncResponseGenerator, Frames, GenerationRequest, ResponseGenerator, RowError
from mmaip_core.plugins.manager import PluginManager
from mmaip_core.records import ItemError, Response, VideoQA
from mmaip_core.stages.cached import Admission, CachedCalls
from mmaip_core.store import layout
from mmaip_core.store.files import write_text_atomic
from mmaip_core.store.hashing import stable_hash
from mmaip_core.store.ledger import Ledger
from mmaip_core.store.manifest import run_manifest
from mmaip_core.store.redaction import redact

__all__ = [
    "KEY_VERSION",
    "BuildSummary",
    "ItemError",
    "Progress",
    "StageRun",
    "chunks",
    "first_error",
    "generate_answers",
    "generate_entry",
    "generation_key",
    "generation_requests",
    "load_frames",
    "read_samples",
    "stage_sections",
    "write_run_manifest",
]

KEY_VERSION = 2

Progress = Callable[[str, int, int, float], None]
"""Called as ``progress(stage, done, total, spent_usd)`` while a stage runs (``spent_usd``: the folder's
API spending so far)."""


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


def generation_key(
    sample: VideoQA, frames: Frames, entry: str, generator: str, fingerprint: str, sample_index: int
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
            "frames": frames.manifest.key,
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

    def fail(self, stage: str, item: str, error_class: str, message: str) -> None:
        self.errors.append(ItemError(stage=stage, item=item, error_class=error_class, message=message))

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


def read_samples(run: StageRun, choice: PluginChoice | None = None) -> list[VideoQA]:
    """The samples of ``choice`` (default: the config's ``samples``); bad rows and repeated ids are recorded
    as item errors and skipped."""
    choice = choice or run.config.samples
    assert choice is not None
    reader = run.manager.create("sample-reader", choice.plugin, choice.options)
    samples: list[VideoQA] = []
    seen: set[str] = set()
    for item in reader.read():
        if isinstance(item, RowError):
            run.fail("samples", f"{item.source}:{item.row}", "RowError", item.cause)
        elif item.id in seen:
            run.fail("samples", item.id, "DuplicateId", "a sample with this id was read before; skipped")
        else:
            seen.add(item.id)
            samples.append(item)
    run.summary.row_errors = sum(e.stage == "samples" for e in run.errors)
    return samples


def load_frames(run: StageRun, samples: Sequence[VideoQA]) -> dict[str, Frames]:
    """Frames of every sample by sample id; each video is loaded once however many questions it has."""
    loader = FrameLoader(run.config.frames, run.manager)
    frames: dict[str, Frames] = {}
    by_video: dict[str, Frames | VideoError] = {}
    for done, sample in enumerate(samples, start=1):
        if sample.video not in by_video:
            try:
                by_video[sample.video] = loader.load(sample.video)
            except VideoError as exc:
                by_video[sample.video] = exc
        loaded = by_video[sample.video]
        if isinstance(loaded, VideoError):
            run.fail("frames", sample.id, type(loaded).__name__, str(loaded))
            run.summary.video_errors += 1
        else:
            frames[sample.id] = loaded
        run.progress("frames", done, len(samples), run.budget.spent)
    return frames


def chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), max(size, 1)):
        yield items[start : start + size]


def run_generator(
    run: StageRun,
    name: str,
    generator: ResponseGenerator,
    todo: list[GenerationRequest],
    store: Callable[[Response], None],
) -> None:
    """Make the calls of ``todo``: concurrently for API generators (within the budget), batch by batch for
    local models."""
    if isinstance(generator, AsyncResponseGenerator):
        admission: Admission[GenerationRequest] = Admission(
            run.budget, lambda r: run.prices.cost(generator.model_id, generator.estimate(r)), lambda r: r.id
        )

        def settle(response: Response) -> None:
            store(response)
            admission.settle(response.id, run.prices.cost(response.model_id, response.usage))

        run_generation_calls(generator, todo, name, settle, admission.wait)
        return
    for chunk in chunks(todo, generator.batch_size):
        for response in generator.generate(chunk, model=name):
            store(response)


def generation_requests(
    entry: ZooEntry, generator: ResponseGenerator, samples: Sequence[VideoQA], frames: dict[str, Frames]
) -> list[GenerationRequest]:
    """The calls of one zoo entry: ``n`` answers to every sample whose frames could be read."""
    return [
        GenerationRequest(
            id=generation_key(sample, frames[sample.id], entry.name, entry.plugin, generator.fingerprint, i),
            sample=sample,
            frames=frames[sample.id],
            sample_index=i,
        )
        for sample in samples
        if sample.id in frames
        for i in range(entry.n)
    ]


def generate_entry(
    run: StageRun, entry: ZooEntry, samples: Sequence[VideoQA], frames: dict[str, Frames]
) -> list[Response]:
    """One zoo entry's answers to every sample, from the ledger where possible."""
    generator: ResponseGenerator = run.manager.create("generator", entry.plugin, entry.options)
    requests = generation_requests(entry, generator, samples, frames)
    label = f"generation {entry.name}"
    calls = CachedCalls(run, "generation", label, (r.id for r in requests), Response)
    todo = [request for _, request in calls.todo((r.id, r) for r in requests)]
    priced = isinstance(generator, AsyncResponseGenerator)  # API models; local ones cost nothing

    def store(response: Response) -> None:
        cost = run.prices.cost(response.model_id, response.usage) if priced else 0.0
        calls.store(response.id, response, failed=response.error is not None, cost=cost)

    run_generator(run, entry.name, generator, todo, store)
    counts = Counter(reused=calls.reused, new=len(todo))
    answers = []
    for request in requests:
        answer = calls.results.get(request.id)
        if answer is None:  # the generator returned no record for this request
            continue
        answers.append(answer)
        counts["failed" if answer.error else "done"] += 1
        if answer.error:
            run.fail("generation", request.id, answer.error.error_class, answer.error.message)
    run.summary.responses[entry.name] = dict(counts)
    run.summary.cost_by_stage[label] = calls.cost()
    return answers


def generate_answers(run: StageRun, samples: Sequence[VideoQA], frames: dict[str, Frames]) -> dict[str, list[Response]]:
    """Every zoo entry's answers to every sample."""
    answers: dict[str, list[Response]] = {s.id: [] for s in samples}
    for entry in run.config.zoo:
        for response in generate_entry(run, entry, samples, frames):
            answers[response.sample_id].append(response)
    return answers
