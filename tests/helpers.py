"""Builders of records for tests, and where the tests' support files are."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import Any

from mmaip_core import EvalRecord, Judgement, ParseStatus, PluginManager, Response, Scored, ScoreScale, VideoQA
from mmaip_core.plugins.kinds import RoundRequest

TESTS = Path(__file__).resolve().parent
"""The tests folder: conftest, these helpers, the local API server, the scripted plugins."""
ROOT = TESTS.parent
"""The repository."""
MMAIP = str(Path(sys.executable).parent / "mmaip")
"""The ``mmaip`` command of the environment that runs the tests."""

ONE_FAST_ATTEMPT = {"backoff_s": 0.01, "max_backoff_s": 0.05, "timeout_s": 10, "max_attempts": 1}
"""API options for tests against the stand-in server: one attempt, a timeout a slow machine does not reach."""


def sample(answer: str | None = "red", sample_id: str = "s1") -> VideoQA:
    return VideoQA(id=sample_id, video="/v.mp4", question="What colour is it?", answer=answer, caption="a red box")


def response(text: str | None, rid: str, model: str = "m") -> Response:
    from mmaip_core import ErrorInfo

    error = None if text is not None else ErrorInfo(error_class="Boom", message="failed")
    return Response(
        id=rid,
        sample_id="s1",
        model=model,
        model_id=model,
        generator="hf",
        params={},
        text=text,
        frames="f" * 64,
        error=error,
    )


def scored(score: float, rid: str, text: str = "an answer", model: str = "m") -> Scored:
    r = response(text, rid, model)
    j = Judgement(response_id=rid, sample_id="s1", scorer="x", fingerprint="fp", score=score, scale=ScoreScale())
    return Scored(response=r, judgement=j)


def eval_record(**fields: Any) -> EvalRecord:
    """A verdict of evaluator ``e`` on model ``m``'s prediction ``p`` to question ``q`` (answer ``a``) of sample
    ``s1`` of benchmark ``b``, read as OK; ``fields`` set the rest (verdict, sample, video, ...) or replace these."""
    placeholders = {
        "sample_id": "s1",
        "video": "v.mp4",
        "benchmark": "b",
        "model": "m",
        "evaluator": "e",
        "fingerprint": "f",
        "question": "q",
        "answer": "a",
        "prediction": "p",
        "status": ParseStatus.OK,
    }
    return EvalRecord.model_validate({**placeholders, **fields})


def round_request(
    folder: Path, pairs_file: Path, manager: PluginManager, reference: Path, init: Path | None = None
) -> RoundRequest:
    """Round 1 on the pairs of ``pairs_file`` (4 frames a video), everything it writes under ``folder``."""
    from mmaip_core.frames import FrameLoader, FrameSettings
    from mmaip_core.train import read_train_pairs

    loader = FrameLoader(FrameSettings(num_frames=4, cache_dir=folder / "frames"), manager)  # type: ignore[call-arg]
    pairs, _ = read_train_pairs(pairs_file)
    return RoundRequest(
        round=1,
        reference=reference,
        init=init,
        pairs=pairs,
        out=folder / "policy",
        work=folder / "work",
        cache=folder / "cache",
        frames=lambda v: loader.load(v),
    )


def fake_distribution(site: Path, name: str, entry_points: dict[str, str], modules: dict[str, str]) -> Path:
    """An installed-looking distribution in ``site``: dist-info with ``mmaip`` entry points, plus modules."""
    dist = site / f"{name.replace('-', '_')}-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    lines = "".join(f"{k} = {v}\n" for k, v in entry_points.items())
    (dist / "entry_points.txt").write_text(f"[mmaip]\n{lines}")
    for module, source in modules.items():
        (site / f"{module}.py").write_text(textwrap.dedent(source))
    return site
