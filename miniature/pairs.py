"""The miniature's pair files: a validation split carved from the build's questions, and oracle pairs.

- **Validation.** The last ``validation_videos`` videos of the build's questions (in file order) are the
  validation videos: the pairs on them never train; the zoo's pairs on them are every variant's ``eval_pairs``
  (the trainer's held-out reward accuracy, margin and loss after each round). Held-out and ood stay untouched:
  choices of base, recipe and alpha are made on validation.
- **Oracle pairs** (a control): for each build question, chosen = the truth, rejected = the base's likeliest
  wrong answer, the wrong answer it gave most often among its ``single_model_answers`` samples (first one on a
  tie) in ``build-single``. A question on which the base was never wrong has no oracle pair.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path

from mmaip_core import AnnotatedResponse, PreferencePair, TrainPair, VideoQA
from mmaip_core.store import layout
from mmaip_core.store.jsonl import read_jsonl, write_jsonl_atomic

__all__ = ["oracle_pairs", "split_pairs", "validation_videos"]


def validation_videos(build_rows: Path, count: int) -> set[str]:
    """The last ``count`` videos of a questions file (``build-train.jsonl``), as its rows name them."""
    rows = [json.loads(line) for line in build_rows.read_text().splitlines() if line.strip()]
    videos = list(dict.fromkeys(str(row["video"]) for row in rows))
    return set(videos[len(videos) - count :]) if count > 0 else set()


def _video_name(video: str | None) -> str:
    """A video as the build's rows name it (``videos/<split>/<file>``, relative to the data folder)."""
    return "/".join(Path(video).parts[-3:]) if video else ""


def split_pairs(build: Path, validation: set[str], out: Path) -> tuple[Path, Path, int, int]:
    """``out/<build>-train.jsonl`` and ``out/<build>-validation.jsonl``: the build's pairs off and on the
    validation videos, and how many pairs each holds."""
    pairs = list(read_jsonl(build / layout.PAIRS, PreferencePair))
    held = [p for p in pairs if _video_name(p.video) in validation]
    kept = [p for p in pairs if _video_name(p.video) not in validation]
    train, valid = out / f"{build.name}-train.jsonl", out / f"{build.name}-validation.jsonl"
    write_jsonl_atomic(train, kept)
    write_jsonl_atomic(valid, held)
    return train, valid, len(kept), len(held)


def _is_wrong(line: AnnotatedResponse) -> bool:
    """Scored, and below the top of its scale by every scorer (exact match: not the truth)."""
    scored = [(j.score, j.scale.max) for j in line.judgements if j.score is not None]
    return line.response.text is not None and bool(scored) and all(score < top for score, top in scored)


def _likeliest_wrong(lines: list[AnnotatedResponse]) -> str | None:
    """The wrong answer given most often (the first of them on a tie)."""
    wrong = [line.response.text for line in lines if _is_wrong(line)]
    return Counter(wrong).most_common(1)[0][0] if wrong else None


def oracle_pairs(single: Path, validation: set[str], out: Path) -> tuple[Path, int]:
    """``out/oracle-train.jsonl``: chosen = the truth, rejected = the base's likeliest wrong answer in the
    single-model build ``single``, for the build's questions off the validation videos; and the count."""
    by_sample: dict[str, list[AnnotatedResponse]] = defaultdict(list)
    for line in read_jsonl(single / layout.RESPONSES, AnnotatedResponse):
        by_sample[line.response.sample_id].append(line)
    pairs = []
    for sample in read_jsonl(single / layout.SAMPLES, VideoQA):
        rejected = _likeliest_wrong(by_sample.get(sample.id, []))
        if sample.answer is None or rejected is None or sample.video is None:
            continue
        if _video_name(sample.video) in validation or rejected.strip() == sample.answer.strip():
            continue
        pairs.append(
            TrainPair(
                id=f"oracle-{sample.id}",
                video=sample.video,
                prompt=sample.question,
                chosen=sample.answer,
                rejected=rejected,
                label_source="truth",
            )
        )
    path = out / "oracle-train.jsonl"
    write_jsonl_atomic(path, pairs)
    return path, len(pairs)
