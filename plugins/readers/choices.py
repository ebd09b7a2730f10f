"""What the multiple-choice readers share: the prompt (lmms-eval's ``pre_prompt`` + question + lettered options +
``post_prompt``), the ground truth as a letter, and circular evaluation (every rotation of the options).

A multiple-choice sample keeps its option texts in ``metadata["options"]`` (in the order shown, letter A first) and
its correct letter as ``answer``; the ``multiple-choice`` evaluator reads both.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from mmaip_core import PluginOptions, RowError, VideoQA
from mmaip_plugins.readers.common import resolve_video, sample_or_error

__all__ = ["LETTERS", "ChoiceOptions", "Question", "choice_samples", "strip_letter"]

LETTERS = "ABCDEFGHIJ"
_LETTERED = re.compile(r"^\s*\(?([A-J])[.):]\s*")


class ChoiceOptions(PluginOptions):
    """Options every multiple-choice reader has."""

    video_dir: Path = Field(description="Folder of the videos.")
    pre_prompt: str = Field(default="", description="Text before the question (lmms-eval's pre_prompt).")
    post_prompt: str = Field(
        default="\nAnswer with the option's letter from the given choices directly.",
        description="Text after the options (lmms-eval's post_prompt).",
    )
    option_style: str = Field(default="{letter}. {option}", description="How an option is shown: {letter}, {option}.")
    circular: bool = Field(
        default=False,
        description="Circular evaluation (MMBench's CircularEval): each question is asked once per rotation of its "
        "options, and counts as correct only if every rotation is answered correctly.",
    )
    source: str | None = Field(default=None, description="Dataset name recorded on every sample.")
    check_videos: bool = Field(default=True, description="Report rows whose video file does not exist.")

    @field_validator("option_style")
    @classmethod
    def _style(cls, style: str) -> str:
        try:
            style.format(letter="A", option="text")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"only {{letter}} and {{option}} may be used: {exc!r}") from None
        return style


@dataclass(frozen=True)
class Question:
    """One multiple-choice question as a benchmark file gives it: ``correct`` is the index of the right option
    (None when the file gives no answer)."""

    qid: str
    video: str
    question: str
    options: list[str]
    correct: int | None
    categories: Mapping[str, Any] = field(default_factory=dict)
    metadata: Mapping[str, Any] = field(default_factory=dict)


def strip_letter(option: str) -> str:
    """An option without the letter some files put before it (``"A. text"``, ``"(B) text"``)."""
    return _LETTERED.sub("", option, count=1).strip()


def _prompt(o: ChoiceOptions, question: str, options: Sequence[str]) -> str:
    shown = "\n".join(o.option_style.format(letter=LETTERS[i], option=t) for i, t in enumerate(options))
    return f"{o.pre_prompt}{question}\n{shown}{o.post_prompt}"


def choice_samples(o: ChoiceOptions, file: str, row: str, q: Question) -> Iterator[VideoQA | RowError]:
    """The sample(s) of ``q``: one, or with ``circular`` one per rotation of the options (ids ``<qid>@r<k>``, one
    group); a RowError when the question cannot be asked."""
    if not 2 <= len(q.options) <= len(LETTERS):
        yield RowError(file, row, f"question {q.qid}: {len(q.options)} options (2 to {len(LETTERS)} are read)")
        return
    if q.correct is not None and not 0 <= q.correct < len(q.options):
        yield RowError(file, row, f"question {q.qid}: the answer is not one of its {len(q.options)} options")
        return
    video, problem = resolve_video(q.video, o.video_dir, o.check_videos)
    if problem:
        yield RowError(file, row, f"question {q.qid}: {problem}")
        return
    n = len(q.options)
    for shift in range(n if o.circular else 1):
        options = q.options[shift:] + q.options[:shift]
        yield sample_or_error(
            file,
            row,
            id=f"{q.qid}@r{shift}" if o.circular else q.qid,
            video=video,
            question=_prompt(o, q.question, options),
            answer=None if q.correct is None else LETTERS[(q.correct - shift) % n],
            source=o.source,
            metadata={**q.metadata, "question_id": q.qid, "options": options, "rotation": shift},
            categories={k: str(v) for k, v in q.categories.items() if v is not None and v != ""},
            group=q.qid if o.circular else None,
        )
