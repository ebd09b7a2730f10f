"""Shards of a build: ``mmaip build CONFIG --out DIR --shard I/N`` on N processes (or machines sharing DIR).

Shard I builds the samples whose id hashes to I (:class:`~mmaip_core.stages.stream.Shard`) into
``DIR/shards/I-of-N/``, a run folder of its own (ledger, lock, outputs), so N shards run at once without sharing
a file. When the last shard ends it merges: ``DIR``'s outputs are then those one process would have written
(samples, frames, responses and pairs in reader order; errors by stage; the summary's counts added up).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any

from mmaip_core.config import RunConfig
from mmaip_core.plugins.manager import PluginManager
from mmaip_core.records import AnnotatedResponse, FrameManifest, ItemError, PreferencePair, VideoQA
from mmaip_core.stages.run import BuildSummary, StageRun, by_stage, count_errors, write_run_manifest
from mmaip_core.stages.stream import Shard, quiet, stream_samples
from mmaip_core.store import layout
from mmaip_core.store.files import atomic_text, read_record, write_text_atomic
from mmaip_core.store.jsonl import read_jsonl, write_jsonl_atomic
from mmaip_core.store.runfolder import locked

__all__ = ["SHARDS", "merge_errors", "merge_shards", "shard_folder", "shards_done"]

SHARDS = "shards"


def shard_folder(out: Path, shard: Shard) -> Path:
    """The run folder of ``shard`` inside the build folder ``out``."""
    return out / SHARDS / shard.label


def shards_done(out: Path, count: int) -> bool:
    """Whether every shard of ``count`` has finished (written its summary)."""
    return all((shard_folder(out, Shard(i, count)) / layout.SUMMARY).is_file() for i in range(count))


def merge_shards(config: RunConfig, out: Path, manager: PluginManager, count: int) -> BuildSummary:
    """Write ``out``'s outputs from its ``count`` finished shards, as one process would have (holding ``out``)."""
    assert config.samples is not None
    folders = [shard_folder(out, Shard(i, count)) for i in range(count)]
    with locked(out), StageRun.open(config, out, manager, ledger=":memory:") as run, ExitStack() as stack:
        lines = {
            name: [_lines(stack, folder / name) for folder in folders]
            for name in (layout.SAMPLES, layout.RESPONSES, layout.PAIRS)
        }
        files = {name: stack.enter_context(atomic_text(out / name)) for name in (*lines, layout.FRAMES)}
        for sample in stream_samples(quiet(run), config.samples):
            index = next(i for i in range(count) if Shard(i, count).holds(sample.id))
            for name, shards in lines.items():
                for line in _take(shards[index], sample.id, name):
                    files[name].write(line)
        _merge_frames(folders, files[layout.FRAMES])
        summary = _merge_summaries(folders)
        errors = merge_errors(read_jsonl(f / layout.ERRORS, ItemError) for f in folders)
        summary.errors = count_errors(errors)
        write_jsonl_atomic(out / layout.ERRORS, errors)
    write_run_manifest(out, config, manager)
    write_text_atomic(out / layout.SUMMARY, summary.model_dump_json(indent=2))
    return summary


class _Peekable:
    """The lines of one shard file, with the next one visible."""

    def __init__(self, lines: Iterator[str]) -> None:
        self.lines = lines
        self.next: str | None = next(lines, None)

    def pop(self) -> str:
        assert self.next is not None
        line, self.next = self.next, next(self.lines, None)
        return line


def _lines(stack: ExitStack, path: Path) -> _Peekable:
    handle: IO[str] = stack.enter_context(path.open(encoding="utf-8"))
    return _Peekable(line for line in handle if line.strip())


def _take(lines: _Peekable, sample_id: str, name: str) -> Iterator[str]:
    """The lines of ``sample_id`` at the head of a shard's file (a shard writes its samples in reader order)."""
    while lines.next is not None and _sample_id(lines.next, name) == sample_id:
        yield lines.pop()


def _sample_id(line: str, name: str) -> str:
    if name == layout.SAMPLES:
        return VideoQA.model_validate_json(line).id
    if name == layout.RESPONSES:
        return AnnotatedResponse.model_validate_json(line).response.sample_id
    return PreferencePair.model_validate_json(line).sample_id


def _merge_frames(folders: list[Path], out: IO[str]) -> None:
    """Every shard's frame manifests, each frame key once."""
    seen: set[str] = set()
    for folder in folders:
        with open(folder / layout.FRAMES, encoding="utf-8") as handle:
            for line in handle:
                key = FrameManifest.model_validate_json(line).key if line.strip() else None
                if key is not None and key not in seen:
                    seen.add(key)
                    out.write(line)


def merge_errors(shards: Iterable[Iterable[ItemError]]) -> list[ItemError]:
    """The shards' errors by stage; the rows every shard read are reported once (by shard 0)."""
    return by_stage(error for i, part in enumerate(shards) for error in part if error.stage != "samples" or i == 0)


def _merge_summaries(folders: list[Path]) -> BuildSummary:
    """The shards' summaries added up (bad rows, which every shard reads, once)."""
    parts = [read_record(folder / layout.SUMMARY, BuildSummary) for folder in folders]
    merged = BuildSummary(row_errors=parts[0].row_errors)
    for part in parts:
        merged.samples += part.samples
        merged.video_errors += part.video_errors
        merged.pairs += part.pairs
        merged.cost_usd += part.cost_usd
        merged.refused_by_budget += part.refused_by_budget
        for name, counts in part.responses.items():
            merged.responses[name] = _add(merged.responses.get(name, {}), counts)
        merged.judgements = _add(merged.judgements, part.judgements)
        merged.skipped = _add(merged.skipped, part.skipped)
        merged.cost_by_stage = _add(merged.cost_by_stage, part.cost_by_stage)
    return merged


def _add(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Counts added key by key (a key of either, zeros kept)."""
    return {key: a.get(key, 0) + b.get(key, 0) for key in dict.fromkeys([*a, *b])}
