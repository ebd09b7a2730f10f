"""Shared fixtures: demo videos, broken videos, tiny models and fresh plugin managers.

Tests never reach a model hub (HF_HUB_OFFLINE=1) and use their own cache folder.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_VERBOSITY"] = "error"
os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"

from api_mock import MockServer

from mmaip_core import PluginManager
from mmaip_core.frames import FrameLoader, FrameSettings, decode_stats
from mmaip_core.testbeds.synthetic import ShapeClip, make_demo_dataset, render_clip, write_video


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test gets its own frame cache and a clean decode counter."""
    monkeypatch.setenv("MMAIP_CACHE_DIR", str(tmp_path / "cache"))
    decode_stats.reset()


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo dataset: 3 clips of 32 frames, 96x96, with qa.jsonl."""
    root = tmp_path_factory.mktemp("demo")
    make_demo_dataset(root, num_videos=3, seed=0)
    return root


@pytest.fixture(scope="session")
def demo_video(demo_dir: Path) -> Path:
    return demo_dir / "videos" / "clip000.mp4"


@pytest.fixture(scope="session")
def long_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """300 frames at 30 fps, 160x120: long enough for fps caps and scene changes."""
    root = tmp_path_factory.mktemp("long")
    frames = render_clip(ShapeClip("square", "blue", "right", num_frames=300, size=128))[:, :120, :, :]
    return write_video(root / "long.mp4", frames, fps=30)


@pytest.fixture(scope="session")
def broken_videos(tmp_path_factory: pytest.TempPathFactory, demo_video: Path) -> dict[str, Path]:
    """Files that are not usable videos, by the cause mmaip must report."""
    import av

    root = tmp_path_factory.mktemp("broken")
    empty = root / "empty.mp4"
    empty.write_bytes(b"")
    garbage = root / "garbage.mp4"
    garbage.write_bytes(random.Random(0).randbytes(4096))
    data = demo_video.read_bytes()
    truncated_end = root / "truncated-moov-at-end.mp4"
    truncated_end.write_bytes(data[: len(data) // 2])
    faststart = root / "faststart.mp4"
    frames = render_clip(ShapeClip("circle", "red", "left", num_frames=64, size=96))
    with av.open(str(faststart), mode="w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("mpeg4", rate=8)
        stream.width = stream.height = 96
        stream.pix_fmt = "yuv420p"
        for array in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")))
        container.mux(stream.encode())
    fast = faststart.read_bytes()
    truncated_fast = root / "truncated-faststart.mp4"
    truncated_fast.write_bytes(fast[: len(fast) // 2])
    return {
        "missing": root / "does-not-exist.mp4",
        "empty": empty,
        "garbage": garbage,
        "truncated-moov-at-end": truncated_end,
        "truncated-faststart": truncated_fast,
    }


@pytest.fixture
def manager() -> PluginManager:
    """A fresh manager with the installed entry-point plugins (the bundled ones)."""
    return PluginManager(env={})


@pytest.fixture
def bare_manager() -> PluginManager:
    """A fresh manager that loaded nothing."""
    return PluginManager(entry_points=False, env={})


@pytest.fixture
def loader(manager: PluginManager, tmp_path: Path) -> FrameLoader:
    return FrameLoader(FrameSettings(cache_dir=tmp_path / "frames"), manager)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Folder where tiny random models are built, once per test session."""
    yield tmp_path_factory.mktemp("tiny-models")


@pytest.fixture(scope="session")
def example_plugin_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """pip-install the third-party example (examples/mmaip-shorter) into its own folder; return the
    environment that sees it, for subprocess runs of ``mmaip``."""
    import shutil
    import subprocess
    import sys

    tmp = tmp_path_factory.mktemp("example")
    source = tmp / "src"
    shutil.copytree(Path(__file__).resolve().parent.parent / "examples" / "mmaip-shorter", source)
    site = tmp / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(site),
            str(source),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return {**os.environ, "PYTHONPATH": str(site)}


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[MockServer]:
    """The local OpenAI-compatible (and Anthropic) server, with the environment that points the SDKs at it."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    with MockServer() as mock:
        monkeypatch.setenv("OPENAI_BASE_URL", mock.url)
        yield mock
