from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from mmaip_core import ConfigError, PluginConfigError, PluginError, PluginManager, VideoError, VideoInfo
from mmaip_core.config import load_config
from mmaip_core.frames import BACKENDS, MAX_FRAMES, FrameLoader, FrameSettings, decode_stats, resize_max_side
from mmaip_core.frames.decoders import DecodeFailure
from mmaip_plugins.samplers import uniform_indices


def _info(n: int, fps: float = 30.0) -> VideoInfo:
    return VideoInfo(path="x", num_frames=n, fps=fps, width=64, height=64)


@pytest.mark.parametrize(
    ("n", "k", "expected"),
    [
        (32, 8, [0, 4, 9, 13, 18, 22, 27, 31]),
        (10, 4, [0, 3, 6, 9]),
        (8, 3, [0, 4, 7]),  # 3.5 rounds half to even: 4
        (6, 3, [0, 2, 5]),  # 2.5 rounds half to even: 2
        (1, 3, [0, 0, 0]),  # fewer frames than asked: indices repeat, count kept
        (300, 1, [0]),
        (0, 8, []),
    ],
)
def test_uniform_index_rule(n: int, k: int, expected: list[int]) -> None:
    assert uniform_indices(n, k) == expected


def test_fps_sampler_rate_cap_and_floor(manager: PluginManager) -> None:
    sampler = manager.create("frame-sampler", "fps", {"fps": 2, "max_frames": 32})
    assert sampler.select(_info(90), None) == [0, 15, 30, 45, 60, 75]  # type: ignore[arg-type]
    capped = manager.create("frame-sampler", "fps", {"fps": 2, "max_frames": 4})
    assert capped.select(_info(300), None) == [0, 100, 199, 299]  # type: ignore[arg-type]
    floor = manager.create("frame-sampler", "fps", {"fps": 0.1, "min_frames": 3})
    assert floor.select(_info(30), None) == [0, 14, 29]  # type: ignore[arg-type]
    faster_than_video = manager.create("frame-sampler", "fps", {"fps": 60})
    assert faster_than_video.select(_info(5), None) == [0, 1, 2, 3, 4]  # type: ignore[arg-type]
    with pytest.raises(PluginConfigError, match=r"min_frames \(5\) must not exceed max_frames \(4\)"):
        manager.create("frame-sampler", "fps", {"min_frames": 5, "max_frames": 4})


def test_scene_change_finds_the_cuts(manager: PluginManager) -> None:
    class Cuts:
        """60 frames in 4 flat scenes that change at 15, 30 and 45."""

        info = _info(60)

        def read(self, indices: list[int], size: tuple[int, int] | None = None) -> np.ndarray:
            levels = np.array([(i // 15) * 60 for i in indices], dtype=np.uint8)
            return np.broadcast_to(levels[:, None, None, None], (len(indices), 8, 8, 3)).copy()

    sampler = manager.create("frame-sampler", "scene-change", {"num_frames": 4})
    assert sampler.select(Cuts.info, Cuts()) == [0, 15, 30, 45]
    more = manager.create("frame-sampler", "scene-change", {"num_frames": 6})
    picked = more.select(Cuts.info, Cuts())
    assert len(picked) == 6 and {0, 15, 30, 45} <= set(picked) and picked == sorted(picked)


def test_scene_change_fills_a_static_video_with_uniform_frames(manager: PluginManager) -> None:
    class Static:
        info = _info(100)

        def read(self, indices: list[int], size: tuple[int, int] | None = None) -> np.ndarray:
            return np.zeros((len(indices), 4, 4, 3), dtype=np.uint8)

    sampler = manager.create("frame-sampler", "scene-change", {"num_frames": 8})
    assert sampler.select(Static.info, Static()) == uniform_indices(100, 8)


def test_scene_change_scans_at_analysis_size(manager: PluginManager, long_video: Path) -> None:
    frames = FrameLoader(FrameSettings(cache=False), manager).load(long_video, "scene-change", {"num_frames": 4})
    assert len(frames.manifest.indices) == 4 and frames.manifest.indices[0] == 0
    assert frames.array.shape == (4, 120, 128, 3)


def test_a_sampler_returning_bad_indices_is_a_plugin_error(
    manager: PluginManager, demo_video: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mmaip_plugins.samplers import UniformSampler

    loader = FrameLoader(FrameSettings(cache=False), manager)
    too_many = ([0] * 1025, "1025 indices, more than the limit of 1024")
    for bad, problem in (
        ([0, 32], "invalid indices [32]"),
        ([-1], "invalid indices [-1]"),
        ([], "no indices"),
        too_many,
    ):
        monkeypatch.setattr(UniformSampler, "select", lambda self, info, source, bad=bad: bad)
        with pytest.raises(PluginError, match=rf"frame-sampler 'uniform' returned {re.escape(problem)}"):
            loader.load(demo_video)


def test_both_backends_give_the_same_frames(loader: FrameLoader, manager: PluginManager, demo_video: Path) -> None:
    results = {}
    for backend in ("decord", "pyav"):
        settings = FrameSettings(backend=backend, cache=False)  # type: ignore[arg-type]
        results[backend] = FrameLoader(settings, manager).load(demo_video)
    decord, pyav = results["decord"], results["pyav"]
    assert decord.manifest.backend == "decord" and pyav.manifest.backend == "pyav"
    assert decord.manifest.indices == pyav.manifest.indices == [0, 4, 9, 13, 18, 22, 27, 31]
    assert decord.manifest.key == pyav.manifest.key
    assert decord.array.shape == (8, 96, 96, 3)
    assert np.array_equal(decord.array, pyav.array)
    m = decord.manifest
    assert (m.source_num_frames, m.source_fps, m.source_size, m.output_size) == (32, 8.0, (96, 96), (96, 96))
    assert m.timestamps == [i / 8 for i in m.indices]


def test_fallback_is_recorded_and_counted(
    manager: PluginManager, demo_video: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def failing(path: str) -> None:
        raise DecodeFailure("decord", "open", "simulated failure")

    monkeypatch.setitem(BACKENDS, "decord", failing)
    frames = FrameLoader(FrameSettings(cache=False), manager).load(demo_video)
    assert frames.manifest.backend == "pyav"
    assert frames.manifest.fallback_from == "decord"
    assert "simulated failure" in (frames.manifest.fallback_reason or "")
    assert decode_stats.fallbacks == 1
    assert "decoded with pyav instead" in caplog.text


def test_second_request_decodes_nothing(loader: FrameLoader, demo_video: Path, tmp_path: Path) -> None:
    first = loader.load(demo_video, "uniform", {"num_frames": 4})
    assert decode_stats.total_frames == 4
    opens = dict(decode_stats.opens)
    again = FrameLoader(loader.settings, loader.manager).load(demo_video, "uniform", {"num_frames": 4})
    assert decode_stats.total_frames == 4 and decode_stats.opens == opens
    assert again.manifest == first.manifest
    assert np.array_equal(again.array, first.array)
    # same content under another path is the same entry; another setting is a new one
    copy = tmp_path / "copy.mp4"
    copy.write_bytes(demo_video.read_bytes())
    assert loader.load(copy, "uniform", {"num_frames": 4}).manifest.video == str(copy)
    assert decode_stats.total_frames == 4
    loader.load(demo_video, "uniform", {"num_frames": 5})
    assert decode_stats.total_frames == 9


def test_unreadable_cache_entry_is_decoded_again(loader: FrameLoader, demo_video: Path) -> None:
    loader.load(demo_video)
    assert loader.cache is not None
    (entry,) = [p for p in loader.cache.root.glob("*/*") if p.is_dir()]
    (entry / "frames.npy").write_bytes(b"torn write")
    frames = loader.load(demo_video)
    assert frames.array.shape == (8, 96, 96, 3)
    assert decode_stats.total_frames == 16


def test_empty_cache_file_is_decoded_again(loader: FrameLoader, demo_video: Path) -> None:
    loader.load(demo_video)
    assert loader.cache is not None
    (entry,) = [p for p in loader.cache.root.glob("*/*") if p.is_dir()]
    (entry / "frames.npy").write_bytes(b"")
    assert loader.load(demo_video).array.shape == (8, 96, 96, 3)


def test_explicit_backend_decodes_instead_of_reading_the_cache(
    manager: PluginManager, demo_video: Path, tmp_path: Path
) -> None:
    FrameLoader(FrameSettings(cache_dir=tmp_path), manager).load(demo_video)
    frames = FrameLoader(FrameSettings(cache_dir=tmp_path, backend="pyav"), manager).load(demo_video)
    assert frames.manifest.backend == "pyav"


def test_unwritable_cache_only_warns(
    manager: PluginManager, demo_video: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    frames = FrameLoader(FrameSettings(cache_dir=blocker / "frames"), manager).load(demo_video)
    assert frames.array.shape == (8, 96, 96, 3)
    assert "not writable" in caplog.text


def test_resize_keeps_aspect_ratio(manager: PluginManager, long_video: Path) -> None:
    frames = FrameLoader(FrameSettings(max_side=64, cache=False), manager).load(long_video)
    assert frames.manifest.source_size == (128, 120)
    assert frames.manifest.output_size == (64, 60)
    assert frames.array.shape == (8, 60, 64, 3)
    assert resize_max_side(frames.array, 100) is frames.array


@pytest.mark.parametrize(
    ("case", "causes"),
    [
        ("missing", {"missing"}),
        ("empty", {"empty"}),
        ("garbage", {"corrupt"}),
        ("truncated-moov-at-end", {"corrupt", "truncated"}),
        ("truncated-faststart", {"truncated"}),
    ],
)
@pytest.mark.parametrize("backend", ["auto", "decord", "pyav"])
def test_bad_videos_raise_one_clear_error(
    case: str, causes: set[str], backend: str, broken_videos: dict[str, Path], manager: PluginManager
) -> None:
    path = broken_videos[case]
    loader = FrameLoader(FrameSettings(backend=backend, cache=False), manager)  # type: ignore[arg-type]
    with pytest.raises(VideoError) as info:
        loader.load(path)
    assert info.value.path == str(path)
    assert str(path) in str(info.value)
    # decord alone cannot tell a truncated file whose index is at its start from a corrupt one
    allowed = causes | {"corrupt"} if backend == "decord" else causes
    assert info.value.cause in allowed


def test_other_videos_still_load_after_a_bad_one(
    loader: FrameLoader, broken_videos: dict[str, Path], demo_dir: Path
) -> None:
    results = []
    for video in [broken_videos["garbage"], demo_dir / "videos" / "clip001.mp4", broken_videos["missing"]]:
        try:
            results.append(loader.load(video).manifest.source_num_frames)
        except VideoError as exc:
            results.append(exc.cause)
    assert results == ["corrupt", 32, "missing"]


def test_remote_videos_are_reported_as_such(loader: FrameLoader) -> None:
    with pytest.raises(VideoError, match="remote videos are not fetched"):
        loader.load("https://example.org/clip.mp4")


@pytest.mark.parametrize(
    ("sampler", "options", "problem"),
    [
        (
            "uniform",
            {"num_frames": MAX_FRAMES + 1},
            "num_frames: Input should be less than or equal to 1024 (got 1025)",
        ),
        ("fps", {"max_frames": 10**9}, "max_frames: Input should be less than or equal to 1024 (got 1000000000)"),
        ("fps", {"min_frames": 2000}, "min_frames: Input should be less than or equal to 1024 (got 2000)"),
        ("fps", {"fps": 1e-320}, "fps: Input should be greater than or equal to 0.0001"),
        ("scene-change", {"num_frames": 5000}, "num_frames: Input should be less than or equal to 1024 (got 5000)"),
        ("scene-change", {"analysis_frames": 4097}, "analysis_frames: Input should be less than or equal to 4096"),
        ("scene-change", {"analysis_side": 129}, "analysis_side: Input should be less than or equal to 128 (got 129)"),
        ("scene-change", {"min_gap": float("inf")}, "min_gap: Input should be a finite number (got inf)"),
    ],
)
def test_sizes_that_allocate_memory_are_bounded(
    sampler: str, options: dict[str, float], problem: str, manager: PluginManager
) -> None:
    """Each bound is an option error naming the option, the value and the limit, before anything is decoded."""
    with pytest.raises(PluginConfigError) as info:
        manager.options("frame-sampler", sampler, options)
    [line] = info.value.problems
    assert line.startswith(f"frame-sampler '{sampler}': {problem}")


def test_the_frame_limit_itself_is_allowed(manager: PluginManager, demo_video: Path) -> None:
    frames = FrameLoader(FrameSettings(cache=False), manager).load(demo_video, "uniform", {"num_frames": MAX_FRAMES})
    assert frames.array.shape[0] == MAX_FRAMES and max(frames.manifest.indices) == 31


def test_max_side_is_bounded() -> None:
    with pytest.raises(ValidationError, match="less than or equal to 8192"):
        FrameSettings(max_side=8193)
    assert FrameSettings(max_side=8192).max_side == 8192


def test_config_with_too_many_frames_names_the_limit(tmp_path: Path, manager: PluginManager) -> None:
    config = tmp_path / "run.yaml"
    config.write_text(
        "frames: {num_frames: 1000000000}\ntrain: {pairs: p.jsonl, frames: {sampler: fps, max_frames: 4096}}\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config(config, manager)
    assert {
        "frames: frame-sampler 'uniform': num_frames: Input should be less than or equal to 1024 (got 1000000000)",
        "train.frames: frame-sampler 'fps': max_frames: Input should be less than or equal to 1024 (got 4096)",
    } <= set(info.value.problems)
