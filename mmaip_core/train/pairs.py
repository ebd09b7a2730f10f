"""The pairs a training run reads: a build's ``pairs.jsonl`` (PreferencePair lines) or a hand-written JSONL of
``{id, video, prompt, chosen, rejected}`` lines (human preferences; ``question`` may stand for ``prompt``)."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from mmaip_core.errors import UserError
from mmaip_core.records import ItemError, PreferencePair, TrainPair
from mmaip_core.validation import render_validation_error

__all__ = ["read_train_pairs", "round_shard"]


def _pair(row: dict[str, object]) -> TrainPair:
    if "chosen_score" in row:  # a PreferencePair written by `mmaip build`
        pair = PreferencePair.model_validate(row)
        return TrainPair(
            id=pair.id,
            video=pair.video,
            prompt=pair.prompt,
            chosen=pair.chosen,
            rejected=pair.rejected,
            label_source=pair.label_source,
        )
    if "prompt" not in row and "question" in row:
        row = {**row, "prompt": row["question"]}
        row.pop("question")
    return TrainPair.model_validate(row)


def read_train_pairs(path: str | Path) -> tuple[list[TrainPair], list[ItemError]]:
    """Every valid pair of a JSONL file, and an error for each bad or repeated line; relative video paths
    are taken from the file's folder."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"pairs file not found: {path}")
    pairs: list[TrainPair] = []
    errors: list[ItemError] = []
    seen: set[str] = set()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        item = f"{path.name}:{number}"
        try:
            row = json.loads(line)
            if not isinstance(row, dict):
                raise ValueError("a line must be a JSON object")
            pair = _pair(row)
        except json.JSONDecodeError as exc:
            errors.append(ItemError(stage="pairs", item=item, error_class="JSONDecodeError", message=str(exc)))
            continue
        except ValidationError as exc:
            message = "; ".join(render_validation_error(exc, TrainPair))
            errors.append(ItemError(stage="pairs", item=item, error_class="ValidationError", message=message))
            continue
        except ValueError as exc:
            errors.append(ItemError(stage="pairs", item=item, error_class="ValueError", message=str(exc)))
            continue
        if pair.id in seen:
            errors.append(
                ItemError(stage="pairs", item=item, error_class="DuplicateId", message=f"pair id {pair.id} repeated")
            )
            continue
        seen.add(pair.id)
        video = Path(pair.video).expanduser()
        pairs.append(pair.model_copy(update={"video": str(video if video.is_absolute() else path.parent / video)}))
    return pairs, errors


def round_shard(pairs: Sequence[TrainPair], rounds: int, round_index: int, seed: int) -> list[TrainPair]:
    """The ``round_index``-th (1-based) of ``rounds`` disjoint, near-equal shards of ``pairs``, drawn by a
    seeded shuffle; every pair is in exactly one shard."""
    order = sorted(pairs, key=lambda p: p.id)
    random.Random(seed).shuffle(order)
    return order[round_index - 1 :: rounds]
