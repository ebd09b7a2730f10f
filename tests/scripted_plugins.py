"""Scripted plugins for build tests: a generator whose answers and speed are set by its options, and a
judge that fails to parse some replies. Registered by hand in-process, or through a fake distribution
(for subprocess runs of ``mmaip build``)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from pydantic import Field

from mmaip_core import (
    GenerationRequest,
    GeneratorSpec,
    Judgement,
    ParseStatus,
    PluginOptions,
    Response,
    ScoreRequest,
    ScorerSpec,
    ScoreScale,
    hookimpl,
    stable_hash,
)


class ScriptedOptions(PluginOptions):
    model: str = "scripted"
    answers: list[str] = Field(default_factory=lambda: ["{truth}"], description="Answer i uses answers[i % len].")
    delay: float = 0.0
    log: Path | None = Field(default=None, description="Each request id is appended here when asked.")


class ScriptedGenerator:
    batch_size = 1
    max_output_tokens = 256

    def __init__(self, options: ScriptedOptions) -> None:
        self.options = options
        self.model_id = options.model
        self.fingerprint = stable_hash([options.model, options.answers])[:16]

    def generate(self, requests: Sequence[GenerationRequest], *, model: str) -> list[Response]:
        out = []
        for r in requests:
            if self.options.log:
                with open(self.options.log, "a") as fh:
                    fh.write(r.id + "\n")
            time.sleep(self.options.delay)
            template = self.options.answers[r.sample_index % len(self.options.answers)]
            out.append(
                Response(
                    id=r.id,
                    sample_id=r.sample.id,
                    model=model,
                    model_id=self.model_id,
                    generator="scripted",
                    params={},
                    sample_index=r.sample_index,
                    frames=r.frames.manifest.key,
                    text=template.format(truth=r.sample.answer or ""),
                )
            )
        return out


class ParsingJudge:
    """5 for the ground truth, 1 otherwise; an answer starting with '???' is a reply it cannot parse."""

    uses_frames = False
    model_id = None
    scale = ScoreScale()
    fingerprint = "parsing-judge"

    def __init__(self, options: PluginOptions) -> None:
        self.calls = 0

    def score(self, requests: Sequence[ScoreRequest]) -> list[Judgement]:
        self.calls += len(requests)
        out = []
        for r in requests:
            common = {
                "response_id": r.response.id,
                "sample_id": r.sample.id,
                "scorer": "parsing-judge",
                "fingerprint": self.fingerprint,
            }
            if (r.response.text or "").startswith("???"):
                out.append(Judgement(**common, status=ParseStatus.PARSE_FAILURE, raw_reply="Score: excellent"))
            else:
                score = 5.0 if r.response.text == r.sample.answer else 1.0
                out.append(Judgement(**common, score=score, raw_reply=f"Score: {score:g}"))
        return out


@hookimpl
def mmaip_response_generators() -> list[GeneratorSpec]:
    return [GeneratorSpec(name="scripted", description="test", options=ScriptedOptions, factory=ScriptedGenerator)]


@hookimpl
def mmaip_scorers() -> list[ScorerSpec]:
    return [ScorerSpec(name="parsing-judge", description="test", factory=ParsingJudge)]
