"""Builders of records for tests, and where the tests' support files are."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

from mmaip_core import Judgement, Response, Scored, ScoreScale, VideoQA

TESTS = Path(__file__).resolve().parent
"""The tests folder: conftest, these helpers, the local API server, the scripted plugins."""
ROOT = TESTS.parent
"""The repository."""
MMAIP = str(Path(sys.executable).parent / "mmaip")
"""The ``mmaip`` command of the environment that runs the tests."""


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
