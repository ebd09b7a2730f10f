"""Readers of published video-QA layouts.

``videochatgpt``: the Video-ChatGPT quantitative-evaluation layout used by MSVD-QA, MSRVTT-QA, TGIF-QA and
ActivityNet-QA: a question file (list of ``{video_name, question, question_id}``), an answer file (list of
``{question_id, answer}``) and a folder of videos named after ``video_name`` (ActivityNet-QA adds ``v_``).
MSRVTT-QA's own files (``{video_id, id, question, answer}``) read the same way: ``video_id`` for the video,
``id`` for the question id. So do the files of Video-ChatGPT's generative benchmark (VCGBench: ``generic_qa.json``,
``temporal_qa.json``, ``{video_name, Q, A}``; ``consistency_qa.json``, ``{video_name, Q1, Q2, A}``, whose ``Q2``, the
second phrasing, becomes the sample's ``alt_question``). Other fields of both files are kept as metadata, the
``categories`` ones (ActivityNet-QA's answer ``type``) as categories.

``sharegptvideo``: ShareGPTVideo / LLaVA-Hound QA rows, flat (``id, video, question, answer, caption``) or
as conversations (``{"from": "human", "value": "<video>\\n..."}`` then ``{"from": "gpt", ...}``); ``video``
is a video file or a folder of frames. Captions (the text proxy of the video) may come from a separate file.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from pydantic import Field

from mmaip_core import PluginOptions, RowError, VideoQA
from mmaip_plugins.readers.common import json_rows, require_folder, resolve_video, sample_or_error

__all__ = ["ShareGPTVideoOptions", "ShareGPTVideoReader", "VideoChatGPTOptions", "VideoChatGPTReader"]


class VideoChatGPTOptions(PluginOptions):
    question_file: Path = Field(
        description="JSON list of {video_name, question, question_id} (VCGBench: {video_name, Q, A} or "
        "{video_name, Q1, Q2, A})."
    )
    answer_file: Path | None = Field(default=None, description="JSON list of {question_id, answer}.")
    video_dir: Path = Field(description="Folder of the videos.")
    video_prefix: str = Field(default="", description="Prefix of video file names (ActivityNet-QA: 'v_').")
    extensions: list[str] = Field(
        default_factory=lambda: [".mp4", ".avi", ".mkv", ".webm", ".mov", ".gif"],
        description="File extensions tried, in order, when video_name has none.",
    )
    source: str | None = Field(default=None, description="Dataset name, e.g. msvd-qa.")
    categories: list[str] = Field(
        default_factory=lambda: ["type"],
        description="Fields of the question or answer rows that results are broken down by (ActivityNet-QA's "
        "answer 'type'; MSRVTT-QA's 'category_id').",
    )
    check_videos: bool = True


class VideoChatGPTReader:
    def __init__(self, options: VideoChatGPTOptions) -> None:
        self.options = options

    def _video(self, name: str) -> tuple[str, str | None]:
        o = self.options
        stem = f"{o.video_prefix}{name}"
        candidates = [o.video_dir / stem] if Path(stem).suffix else [o.video_dir / f"{stem}{e}" for e in o.extensions]
        found = next((c for c in candidates if c.exists()), None)
        if found is None and o.check_videos:
            tried = ", ".join(c.name for c in candidates)
            return str(candidates[0]), f"no video for '{name}' in {o.video_dir} (tried {tried})"
        return resolve_video(str(found or candidates[0]), o.video_dir, check=False)

    def _answers(self, answers: dict[str, Mapping[str, Any]]) -> Iterator[RowError]:
        """Fill ``answers`` (answer row by question id) from the answer file; the rows it cannot use."""
        file = self.options.answer_file
        if file is None:
            return
        for number, row in json_rows(file):
            if isinstance(row, RowError):
                yield row
            elif _present(row, "question_id") is not None:
                answers[str(row["question_id"])] = row
            else:
                yield RowError(str(file), number, "missing question_id")

    def read(self) -> Iterator[VideoQA | RowError]:
        o = self.options
        if o.check_videos:
            require_folder(o.video_dir)
        answers: dict[str, Mapping[str, Any]] = {}
        yield from self._answers(answers)
        for number, row in json_rows(o.question_file):
            yield row if isinstance(row, RowError) else self._sample(number, row, answers)

    def _sample(self, number: str, row: Mapping[str, Any], answers: dict[str, Mapping[str, Any]]) -> VideoQA | RowError:
        source = str(self.options.question_file)
        # a video id of 0 (MSRVTT-QA's first video) is an id, not a missing value
        name = _first(row, ("video_name", "video_id", "video"))
        question = _first(row, ("question", "Q", "Q1"))
        if name is None or question is None:
            return RowError(source, number, "missing video_name or question")
        video, problem = self._video(str(name))
        if problem:
            return RowError(source, number, problem)
        own_id = _first(row, ("question_id", "id"))
        qid = str(own_id) if own_id is not None else f"{name}-{number}"
        answer_row = answers.get(qid, {})
        answer = answer_row.get("answer", _first(row, ("answer", "A")))
        second = _present(row, "Q2")
        extra = {k: v for k, v in {**row, **answer_row}.items() if k not in _VIDEOCHATGPT_FIELDS}
        return sample_or_error(
            source,
            number,
            id=qid,
            video=video,
            question=str(question),
            alt_question=None if second is None else str(second),
            answer=None if answer is None else str(answer),
            source=self.options.source,
            metadata=extra,
            categories={k: str(extra[k]) for k in self.options.categories if _present(extra, k) is not None},
        )


_VIDEOCHATGPT_FIELDS = {"video_name", "video_id", "video", "question", "answer", "Q", "Q1", "Q2", "A"}


def _present(row: Mapping[str, Any], key: str) -> Any:
    """``row[key]``, or None when it is absent, null or an empty string (0 and False are values)."""
    value = row.get(key)
    return None if value is None or value == "" else value


def _first(row: Mapping[str, Any], keys: tuple[str, ...]) -> Any:
    """The first of ``keys`` present in ``row`` (see :func:`_present`), else None."""
    return next((v for k in keys if (v := _present(row, k)) is not None), None)


class ShareGPTVideoOptions(PluginOptions):
    path: Path = Field(description="JSONL (or JSON list) of QA rows.")
    video_dir: Path | None = Field(
        default=None, description="Folder that video paths start from (default: the file's)."
    )
    caption_file: Path | None = Field(
        default=None, description="Rows with a caption and the id (or video) they describe."
    )
    source: str | None = Field(default="sharegptvideo", description="Dataset name recorded on every sample.")
    check_videos: bool = True


_VIDEO_TOKEN = re.compile(r"<video>\s*|<image>\s*")


def _question_answer(row: Mapping[str, Any]) -> tuple[Any, Any]:
    conversation = row.get("conversations")
    if isinstance(conversation, list) and conversation:
        turns = [t for t in conversation if isinstance(t, dict)]
        human = next((t.get("value") for t in turns if t.get("from") in ("human", "user")), None)
        gpt = next((t.get("value") for t in turns if t.get("from") in ("gpt", "assistant")), None)
        return (_VIDEO_TOKEN.sub("", human).strip() if isinstance(human, str) else None), gpt
    return row.get("question"), row.get("answer")


class ShareGPTVideoReader:
    def __init__(self, options: ShareGPTVideoOptions) -> None:
        self.options = options

    def _captions(self) -> tuple[dict[str, str], list[RowError]]:
        captions: dict[str, str] = {}
        errors = []
        if self.options.caption_file is not None:
            for _, row in json_rows(self.options.caption_file):
                if isinstance(row, RowError):
                    errors.append(row)
                    continue
                caption = row.get("caption") or _question_answer(row)[1]
                for key in (row.get("video"), row.get("id")):
                    if key is not None and caption:
                        captions.setdefault(str(key), str(caption))
        return captions, errors

    def read(self) -> Iterator[VideoQA | RowError]:
        o = self.options
        if o.video_dir is not None and o.check_videos:
            require_folder(o.video_dir)
        captions, errors = self._captions()
        yield from errors
        source = str(o.path)
        for number, row in json_rows(o.path):
            if isinstance(row, RowError):
                yield row
                continue
            question, answer = _question_answer(row)
            sample_id = row.get("id", row.get("idx"))
            if not row.get("video") or not question:
                yield RowError(source, number, "missing video or question")
                continue
            video, problem = resolve_video(str(row["video"]), o.video_dir or o.path.parent, o.check_videos)
            if problem:
                yield RowError(source, number, problem)
                continue
            # by video first: caption files number their ids independently of QA files
            caption = row.get("caption") or captions.get(str(row["video"])) or captions.get(str(sample_id))
            yield sample_or_error(
                source,
                number,
                id=str(sample_id if sample_id is not None else f"{o.path.stem}-{number}"),
                video=video,
                question=str(question),
                answer=None if answer is None else str(answer),
                caption=None if caption is None else str(caption),
                source=o.source,
            )
