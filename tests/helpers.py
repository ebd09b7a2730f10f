"""Builders of records for tests."""

from __future__ import annotations

from mmaip_core import Judgement, Response, Scored, ScoreScale, VideoQA


def sample(answer: str | None = "red", sample_id: str = "s1") -> VideoQA:
    return VideoQA(id=sample_id, video="/v.mp4", question="What colour is it?", answer=answer, caption="a red box")


def response(text: str | None, rid: str, model: str = "m") -> Response:
    from mmaip_core import ErrorInfo

    error = None if text is not None else ErrorInfo(error_class="Boom", message="failed")
    return Response(
        id=rid, sample_id="s1", model=model, model_id=model, generator="hf", params={}, text=text,
        frames="f" * 64, error=error,
    )


def scored(score: float, rid: str, text: str = "an answer", model: str = "m") -> Scored:
    r = response(text, rid, model)
    j = Judgement(response_id=rid, sample_id="s1", scorer="x", fingerprint="fp", score=score, scale=ScoreScale())
    return Scored(response=r, judgement=j)
