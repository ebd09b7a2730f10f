"""Readers of multiple-choice video benchmarks, in their released file formats:

- ``videomme``: Video-MME's ``test-00000-of-00001.parquet`` (or the same rows as JSON): ``video_id, duration,
  domain, sub_category, url, videoID, question_id, task_type, question, options ["A. ...", ...], answer "A"``;
  videos ``<videoID>.mp4``;
- ``mvbench``: MVBench's ``json/<task>.json`` files: ``{video, question, candidates, answer}`` (the answer is the
  text of a candidate; some tasks add ``start``, ``end``); each task's videos in its own folder;
- ``egoschema``: EgoSchema's ``questions.json`` (``q_uid, question, "option 0" .. "option 4"``) with the answers of
  its public subset, ``subset_answers.json`` (``{q_uid: index}``); videos ``<q_uid>.mp4``;
- ``nextqa``: NExT-QA's multiple-choice CSV (``video, frame_count, width, height, question, answer, qid, type,
  a0 .. a4``), videos through ``map_vid_vidorID.json`` (``{video: "<folder>/<video>"}``).

Prompts follow lmms-eval's tasks (``pre_prompt`` + question + lettered options + ``post_prompt``); categories are
what the benchmarks report per (Video-MME: duration, domain, sub_category, task_type; MVBench: task; NExT-QA:
type and its family, causal/temporal/descriptive).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator, Mapping
from functools import partial
from pathlib import Path
from typing import Any

from pydantic import Field

from mmaip_core import RowError, SamplesFileError, VideoQA
from mmaip_plugins.readers.choices import LETTERS, ChoiceOptions, Question, choice_samples, strip_letter
from mmaip_plugins.readers.common import json_rows, require_file, require_folder, some_rows

__all__ = [
    "EgoSchemaOptions",
    "EgoSchemaReader",
    "MVBenchOptions",
    "MVBenchReader",
    "NExTQAOptions",
    "NExTQAReader",
    "VideoMMEOptions",
    "VideoMMEReader",
]

Rows = Iterator[tuple[str, Mapping[str, Any] | RowError]]


def _json_object(path: Path) -> dict[str, Any]:
    """A JSON file holding one object (EgoSchema's answers, NExT-QA's video map)."""
    require_file(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SamplesFileError(path, f"not a JSON file: {exc}") from exc
    if not isinstance(data, dict):
        raise SamplesFileError(path, "holds no JSON object")
    return data


def _read(
    options: ChoiceOptions, file: Path, rows: Rows, question: Callable[[str, Mapping[str, Any]], Question]
) -> Iterator[VideoQA | RowError]:
    """Samples of ``rows``; ``question(row number, row)`` raises KeyError, TypeError or ValueError for a row that
    is not a question."""
    if options.check_videos:
        require_folder(options.video_dir)
    for number, row in rows:
        if isinstance(row, RowError):
            yield row
            continue
        try:
            q = question(number, row)
        except (KeyError, TypeError, ValueError) as exc:
            yield RowError(str(file), number, f"unreadable row: {type(exc).__name__}: {exc}")
            continue
        yield from choice_samples(options, str(file), number, q)


class VideoMMEOptions(ChoiceOptions):
    path: Path = Field(description="Video-MME's parquet file (or its rows as JSON / JSON Lines).")
    source: str | None = "video-mme"


class VideoMMEReader:
    def __init__(self, options: VideoMMEOptions) -> None:
        self.options = options

    def _rows(self) -> Rows:
        path = self.options.path
        if path.suffix != ".parquet":
            return json_rows(path)
        require_file(path)
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except Exception as exc:  # pyarrow raises its own errors for a file that is not parquet
            raise SamplesFileError(path, f"not a parquet file: {exc}") from exc
        return some_rows(path, ((str(i), row) for i, row in enumerate(table.to_pylist(), start=1)))

    @staticmethod
    def _question(number: str, row: Mapping[str, Any]) -> Question:
        options = [strip_letter(str(o)) for o in row["options"]]
        return Question(
            qid=str(row["question_id"]),
            video=f"{row['videoID']}.mp4",
            question=str(row["question"]),
            options=options,
            correct=LETTERS.index(str(row["answer"]).strip().upper()),
            categories={k: row.get(k) for k in ("duration", "domain", "sub_category", "task_type")},
            metadata={"video_id": row.get("video_id"), "url": row.get("url")},
        )

    def read(self) -> Iterator[VideoQA | RowError]:
        yield from _read(self.options, self.options.path, self._rows(), self._question)


class MVBenchOptions(ChoiceOptions):
    path: Path = Field(description="MVBench's json folder (one <task>.json per task) or one task's file.")
    tasks: list[str] | None = Field(default=None, description="Only these tasks (file stems, e.g. action_sequence).")
    task_videos: dict[str, str] = Field(
        default_factory=dict,
        description="Folder of each task's videos under video_dir (MVBench's data_list, e.g. action_sequence: "
        "star/Charades_v1_480); a task not listed: video_dir itself.",
    )
    post_prompt: str = "\nOnly give the best option."
    option_style: str = "({letter}) {option}"
    source: str | None = "mvbench"


class MVBenchReader:
    def __init__(self, options: MVBenchOptions) -> None:
        self.options = options

    def _files(self) -> list[Path]:
        o = self.options
        if o.path.is_file():
            return [o.path]
        require_folder(o.path)
        files = sorted(o.path.glob("*.json"))
        files = [f for f in files if o.tasks is None or f.stem in o.tasks]
        if not files:
            raise SamplesFileError(
                o.path, "no <task>.json file" + (f" for tasks {', '.join(o.tasks)}" if o.tasks else "")
            )
        return files

    def _question(self, task: str, number: str, row: Mapping[str, Any]) -> Question:
        """MVBench has no question ids: a question is ``<task>-<row>``."""
        candidates = [str(c) for c in row["candidates"]]
        answer = str(row["answer"])
        if answer not in candidates:
            raise ValueError(f"the answer {answer!r} is not one of the candidates")
        folder = self.options.task_videos.get(task, "")
        return Question(
            qid=f"{task}-{number}",
            video=str(Path(folder) / str(row["video"])),
            question=str(row["question"]),
            options=candidates,
            correct=candidates.index(answer),
            categories={"task": task},
            metadata={k: row[k] for k in ("start", "end") if k in row},
        )

    def read(self) -> Iterator[VideoQA | RowError]:
        for file in self._files():
            yield from _read(self.options, file, json_rows(file), partial(self._question, file.stem))


class EgoSchemaOptions(ChoiceOptions):
    questions: Path = Field(description="EgoSchema's questions.json.")
    answers: Path | None = Field(
        default=None,
        description="subset_answers.json ({q_uid: index}); with it, only the questions it answers are read.",
    )
    source: str | None = "egoschema"


class EgoSchemaReader:
    def __init__(self, options: EgoSchemaOptions) -> None:
        self.options = options

    def read(self) -> Iterator[VideoQA | RowError]:
        o = self.options
        answers = None if o.answers is None else _json_object(o.answers)
        rows = (
            (n, r)
            for n, r in json_rows(o.questions)
            if answers is None or isinstance(r, RowError) or str(r.get("q_uid")) in answers
        )

        def question(number: str, row: Mapping[str, Any]) -> Question:
            uid = str(row["q_uid"])
            return Question(
                qid=uid,
                video=f"{uid}.mp4",
                question=str(row["question"]),
                options=[str(row[f"option {i}"]) for i in range(5)],
                correct=None if answers is None else int(answers[uid]),
                metadata={"google_drive_id": row.get("google_drive_id")},
            )

        yield from _read(o, o.questions, rows, question)


class NExTQAOptions(ChoiceOptions):
    path: Path = Field(description="NExT-QA's multiple-choice CSV (val.csv, test.csv).")
    video_map: Path | None = Field(
        default=None, description="map_vid_vidorID.json; without it, videos are <video>.mp4 in video_dir."
    )
    post_prompt: str = ""
    source: str | None = "nextqa"


_NEXTQA_FAMILY = {"C": "causal", "T": "temporal", "D": "descriptive"}


class NExTQAReader:
    def __init__(self, options: NExTQAOptions) -> None:
        self.options = options

    def _rows(self) -> Rows:
        path = self.options.path
        require_file(path)
        with open(path, encoding="utf-8-sig", newline="") as fh:
            try:
                yield from some_rows(path, ((str(n), row) for n, row in enumerate(csv.DictReader(fh), start=2)))
            except UnicodeDecodeError as exc:
                raise SamplesFileError(path, f"not UTF-8 text: {exc.reason}") from exc

    def read(self) -> Iterator[VideoQA | RowError]:
        o = self.options
        videos = {} if o.video_map is None else _json_object(o.video_map)

        def question(number: str, row: Mapping[str, Any]) -> Question:
            video, kind = str(row["video"]), str(row["type"])
            return Question(
                qid=f"{video}_{row['qid']}",  # qid numbers the questions of one video
                video=f"{videos.get(video, video)}.mp4",
                question=str(row["question"]).strip(),
                options=[str(row[f"a{i}"]).strip() for i in range(5)],
                correct=int(row["answer"]),
                categories={"type": kind, "family": _NEXTQA_FAMILY.get(kind[:1], kind)},
                metadata={"video": video, "qid": row["qid"]},
            )

        yield from _read(o, o.path, self._rows(), question)
