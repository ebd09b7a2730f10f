"""The pairs a training run reads: a build's ``pairs.jsonl``, a hand-written JSONL of ``{id, video, prompt, chosen,
rejected}`` lines (human preferences), an ``mmaip export`` (trl, parquet, hf, llava-hound), or any dataset in TRL's
preference formats; :mod:`mmaip_core.train.pair_files` finds the rows, :mod:`mmaip_core.train.pair_rows` reads them."""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from mmaip_core.frames import default_cache_dir
from mmaip_core.records import ItemError, TrainPair
from mmaip_core.train.pair_files import iter_rows
from mmaip_core.train.pair_rows import train_pair
from mmaip_core.validation import render_validation_error

__all__ = ["default_images_dir", "hold_out", "read_train_pairs", "round_shard"]


def default_images_dir() -> Path:
    """Where frames carried as images are written as frame folders: ``$MMAIP_CACHE_DIR/pair-images``
    (``~/.cache/mmaip/pair-images`` by default)."""
    return default_cache_dir().parent / "pair-images"


def read_train_pairs(path: str | Path, images_dir: Path | None = None) -> tuple[list[TrainPair], list[ItemError]]:
    """Every valid pair of a pair file or dataset folder, and an error for each bad or repeated row; relative
    video paths are taken from the data's folder; frames carried as images go under ``images_dir``
    (:func:`default_images_dir` by default)."""
    path = Path(path)
    base = path if path.is_dir() else path.parent
    pairs: list[TrainPair] = []
    errors: list[ItemError] = []
    seen: set[str] = set()
    for item, row in iter_rows(path):
        if isinstance(row, ItemError):
            errors.append(row)
            continue
        try:
            pair = train_pair(row, item, base, images_dir or default_images_dir())
        except ValidationError as exc:
            message = "; ".join(render_validation_error(exc, TrainPair))
            errors.append(ItemError(stage="pairs", item=item, error_class="ValidationError", message=message))
            continue
        except (ValueError, OSError) as exc:
            errors.append(ItemError(stage="pairs", item=item, error_class=type(exc).__name__, message=str(exc)))
            continue
        if pair.id in seen:
            errors.append(
                ItemError(stage="pairs", item=item, error_class="DuplicateId", message=f"pair id {pair.id} repeated")
            )
            continue
        seen.add(pair.id)
        pairs.append(pair)
    return pairs, errors


def round_shard(pairs: Sequence[TrainPair], rounds: int, round_index: int, seed: int) -> list[TrainPair]:
    """The ``round_index``-th (1-based) of ``rounds`` disjoint, near-equal shards of ``pairs``, drawn by a
    seeded shuffle; every pair is in exactly one shard."""
    order = sorted(pairs, key=lambda p: p.id)
    random.Random(seed).shuffle(order)
    return order[round_index - 1 :: rounds]


def hold_out(pairs: Sequence[TrainPair], fraction: float, seed: int) -> tuple[list[TrainPair], list[TrainPair]]:
    """(training pairs, held-out pairs): ``fraction`` of ``pairs`` (at least one, never all) drawn by a seeded
    shuffle, the same for the same pairs and seed whatever their order."""
    order = sorted(pairs, key=lambda p: p.id)
    random.Random(f"{seed}-held-out").shuffle(order)
    n = min(max(1, round(fraction * len(order))), len(order) - 1)
    held = {p.id for p in order[:n]}
    return [p for p in pairs if p.id not in held], [p for p in pairs if p.id in held]
