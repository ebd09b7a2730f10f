"""Sample readers: generic tables (``jsonl``, ``csv``), published video-QA layouts (``videochatgpt``,
``sharegptvideo``), multiple-choice benchmarks (``videomme``, ``mvbench``, ``egoschema``, ``nextqa``) and the
synthetic ShapesQA testbed (``shapesqa``)."""

from __future__ import annotations

from mmaip_core import SampleReaderSpec, hookimpl
from mmaip_plugins.readers.benchmarks import (
    EgoSchemaOptions,
    EgoSchemaReader,
    MVBenchOptions,
    MVBenchReader,
    NExTQAOptions,
    NExTQAReader,
    VideoMMEOptions,
    VideoMMEReader,
)
from mmaip_plugins.readers.shapesqa import ShapesQAOptions, ShapesQAReader
from mmaip_plugins.readers.tables import CsvReader, JsonlReader, TableOptions
from mmaip_plugins.readers.videoqa import (
    ShareGPTVideoOptions,
    ShareGPTVideoReader,
    VideoChatGPTOptions,
    VideoChatGPTReader,
)

__all__ = [
    "CsvReader",
    "EgoSchemaReader",
    "JsonlReader",
    "MVBenchReader",
    "NExTQAReader",
    "ShapesQAReader",
    "ShareGPTVideoReader",
    "TableOptions",
    "VideoChatGPTReader",
    "VideoMMEReader",
]


@hookimpl
def mmaip_sample_readers() -> list[SampleReaderSpec]:
    return [*_table_readers(), *_videoqa_readers(), *_multiple_choice_readers(), *_testbed_readers()]


def _table_readers() -> list[SampleReaderSpec]:
    """Generic tables, their columns mapped in the config."""
    return [
        SampleReaderSpec(
            name="jsonl",
            description="JSON Lines (or a JSON list): one sample per row, columns mapped in config",
            options=TableOptions,
            factory=JsonlReader,
        ),
        SampleReaderSpec(
            name="csv",
            description="CSV with a header row, columns mapped in config",
            options=TableOptions,
            factory=CsvReader,
        ),
    ]


def _videoqa_readers() -> list[SampleReaderSpec]:
    """Published open-ended video-QA layouts."""
    return [
        SampleReaderSpec(
            name="videochatgpt",
            description="Video-ChatGPT layout (MSVD-QA, MSRVTT-QA, TGIF-QA, ActivityNet-QA): question/answer files",
            options=VideoChatGPTOptions,
            factory=VideoChatGPTReader,
        ),
        SampleReaderSpec(
            name="sharegptvideo",
            description="ShareGPTVideo / LLaVA-Hound QA rows (flat or conversations) with captions",
            options=ShareGPTVideoOptions,
            factory=ShareGPTVideoReader,
        ),
    ]


def _multiple_choice_readers() -> list[SampleReaderSpec]:
    """Multiple-choice benchmarks."""
    return [
        SampleReaderSpec(
            name="videomme",
            description="Video-MME (parquet or JSON): multiple choice A-D, by duration, domain and task type",
            options=VideoMMEOptions,
            factory=VideoMMEReader,
        ),
        SampleReaderSpec(
            name="mvbench",
            description="MVBench (json/<task>.json, candidates and answer text): multiple choice, by task",
            options=MVBenchOptions,
            factory=MVBenchReader,
        ),
        SampleReaderSpec(
            name="egoschema",
            description="EgoSchema (questions.json, subset_answers.json): multiple choice A-E",
            options=EgoSchemaOptions,
            factory=EgoSchemaReader,
        ),
        SampleReaderSpec(
            name="nextqa",
            description="NExT-QA multiple choice (CSV with a0..a4): by question type",
            options=NExTQAOptions,
            factory=NExTQAReader,
        ),
    ]


def _testbed_readers() -> list[SampleReaderSpec]:
    """The synthetic ShapesQA testbed."""
    return [
        SampleReaderSpec(
            name="shapesqa",
            description="One split of a ShapesQA folder (synthetic shapes, one-word answers; make_shapesqa)",
            options=ShapesQAOptions,
            factory=ShapesQAReader,
        ),
    ]
