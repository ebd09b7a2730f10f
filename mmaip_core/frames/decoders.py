"""Video decoding backends: decord (default), PyAV (fallback), and folders of frame images.

Both expose the same small interface, :class:`OpenVideo`. :func:`decode` tries the backends in order;
when the first fails and a later one succeeds, the fallback is logged, counted in
:data:`decode_stats` and written into the frame manifest, never silent. When every backend fails the
caller gets one :class:`~mmaip_core.errors.VideoError` naming the file and the cause (missing, empty,
corrupt or truncated).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from mmaip_core.errors import VideoError
from mmaip_core.plugins.kinds import VideoInfo

__all__ = [
    "BACKENDS",
    "FOLDER_FPS",
    "DecodeFailure",
    "DecodeResult",
    "DecodeStats",
    "FolderVideo",
    "OpenVideo",
    "decode",
    "decode_stats",
]

log = logging.getLogger(__name__)


class DecodeFailure(Exception):
    """A backend could not decode a video. ``stage`` is 'open' or 'read'."""

    def __init__(self, backend: str, stage: str, detail: str) -> None:
        self.backend = backend
        self.stage = stage
        super().__init__(f"{backend}: {detail}")


class OpenVideo(Protocol):
    """An opened video: its info, and frames by index."""

    backend: str
    info: VideoInfo

    def read(self, indices: Sequence[int], size: tuple[int, int] | None = None) -> NDArray[np.uint8]: ...


@dataclass
class DecodeStats:
    """Counters of decoding work in this process (what the frame cache saves shows up here)."""

    opens: dict[str, int] = field(default_factory=dict)
    frames: dict[str, int] = field(default_factory=dict)
    fallbacks: int = 0

    def count(self, counter: dict[str, int], backend: str, n: int = 1) -> None:
        counter[backend] = counter.get(backend, 0) + n

    @property
    def total_frames(self) -> int:
        return sum(self.frames.values())

    def reset(self) -> None:
        self.opens.clear()
        self.frames.clear()
        self.fallbacks = 0


decode_stats = DecodeStats()


class DecordVideo:
    backend = "decord"

    def __init__(self, path: str) -> None:
        import decord

        try:
            self._reader = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=1)
            num_frames = len(self._reader)
            fps = float(self._reader.get_avg_fps())
            height, width = self._reader[0].shape[:2] if num_frames else (0, 0)
        except (RuntimeError, decord.DECORDError) as exc:
            raise DecodeFailure(self.backend, "open", str(exc).strip().splitlines()[0]) from exc
        decode_stats.count(decode_stats.opens, self.backend)
        self.info = VideoInfo(path=path, num_frames=num_frames, fps=fps, width=width, height=height)

    def read(self, indices: Sequence[int], size: tuple[int, int] | None = None) -> NDArray[np.uint8]:
        import decord

        # Shrinking happens per chunk of _CHUNK frames, so a full-video scan never holds the video at full size.
        step = _CHUNK if size else max(len(indices), 1)
        parts = []
        try:
            for start in range(0, len(indices), step):
                chunk = self._reader.get_batch(list(indices[start : start + step])).asnumpy()
                parts.append(_shrink(chunk, size) if size else chunk)
        except (RuntimeError, decord.DECORDError, IndexError) as exc:
            raise DecodeFailure(self.backend, "read", str(exc).strip().splitlines()[0]) from exc
        decode_stats.count(decode_stats.frames, self.backend, len(indices))
        return np.ascontiguousarray(np.concatenate(parts), dtype=np.uint8)


class PyAVVideo:
    backend = "pyav"

    def __init__(self, path: str) -> None:
        import av

        self._path = path
        try:
            with av.open(path) as container:
                if not container.streams.video:
                    raise DecodeFailure(self.backend, "open", "no video stream")
                stream = container.streams.video[0]
                rate = stream.average_rate or stream.guessed_rate
                fps = float(rate) if rate else 0.0
                width, height = stream.codec_context.width, stream.codec_context.height
                num_frames = stream.frames or sum(1 for _ in container.decode(video=0))
        except av.FFmpegError as exc:
            raise DecodeFailure(self.backend, "open", str(exc)) from exc
        decode_stats.count(decode_stats.opens, self.backend)
        self.info = VideoInfo(path=path, num_frames=num_frames, fps=fps, width=width, height=height)

    def read(self, indices: Sequence[int], size: tuple[int, int] | None = None) -> NDArray[np.uint8]:
        import av

        wanted = set(indices)
        last = max(wanted) if wanted else -1
        shrink: dict[str, Any] = {"width": size[0], "height": size[1]} if size else {}
        got: dict[int, NDArray[np.uint8]] = {}
        try:
            with av.open(self._path) as container:
                for i, frame in enumerate(container.decode(video=0)):
                    if i in wanted:
                        got[i] = np.asarray(frame.to_ndarray(format="rgb24", **shrink), dtype=np.uint8)
                    if i >= last:
                        break
        except av.FFmpegError as exc:
            raise DecodeFailure(self.backend, "read", f"decoding stopped after {len(got)} frames: {exc}") from exc
        if len(got) < len(wanted):
            missing = sorted(wanted - set(got))
            raise DecodeFailure(self.backend, "read", f"frames {missing[:5]} could not be decoded")
        decode_stats.count(decode_stats.frames, self.backend, len(indices))
        return np.stack([got[i] for i in indices]).astype(np.uint8, copy=False)


_CHUNK = 32


def _shrink(frames: NDArray[np.uint8], size: tuple[int, int]) -> NDArray[np.uint8]:
    from PIL import Image

    return np.stack([np.asarray(Image.fromarray(f).resize(size, Image.Resampling.BILINEAR)) for f in frames])


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
FOLDER_FPS = 1.0


def _natural(path: Path) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


class FolderVideo:
    """A video given as a folder of frame images (as ShareGPTVideo ships them), in natural name order.

    A folder has no frame rate: timestamps assume FOLDER_FPS (1 frame per second).
    """

    backend = "frames"

    def __init__(self, path: str) -> None:
        from PIL import Image, UnidentifiedImageError

        self._files = sorted((p for p in Path(path).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=_natural)
        if not self._files:
            raise DecodeFailure(self.backend, "open", f"no image files ({', '.join(IMAGE_SUFFIXES)}) in the folder")
        try:
            with Image.open(self._files[0]) as first:
                width, height = first.size
        except (OSError, UnidentifiedImageError) as exc:
            raise DecodeFailure(self.backend, "open", f"{self._files[0].name}: {exc}") from exc
        decode_stats.count(decode_stats.opens, self.backend)
        self.info = VideoInfo(path=path, num_frames=len(self._files), fps=FOLDER_FPS, width=width, height=height)

    def read(self, indices: Sequence[int], size: tuple[int, int] | None = None) -> NDArray[np.uint8]:
        from PIL import Image, UnidentifiedImageError

        target = size or (self.info.width, self.info.height)
        frames = []
        for i in indices:
            try:
                with Image.open(self._files[i]) as image:
                    rgb = image.convert("RGB")
            except (OSError, UnidentifiedImageError) as exc:
                raise DecodeFailure(self.backend, "read", f"{self._files[i].name}: {exc}") from exc
            if rgb.size != target:
                rgb = rgb.resize(target, Image.Resampling.BILINEAR)
            frames.append(np.asarray(rgb))
        decode_stats.count(decode_stats.frames, self.backend, len(indices))
        return np.stack(frames).astype(np.uint8, copy=False)


BACKENDS: dict[str, Callable[[str], OpenVideo]] = {"decord": DecordVideo, "pyav": PyAVVideo, "frames": FolderVideo}


@dataclass(frozen=True)
class DecodeResult:
    """Frames decoded from a video, the info of the video, and which backend produced them."""

    info: VideoInfo
    indices: list[int]
    array: NDArray[np.uint8]
    backend: str
    fallback_from: str | None = None
    fallback_reason: str | None = None


def _check_file(path: Path) -> None:
    if not path.exists():
        remote = re.match(r"^[a-z][a-z0-9+.-]*:/", str(path), re.IGNORECASE)
        raise VideoError(
            path, "missing", "remote videos are not fetched: download it first" if remote else "no such file"
        )
    if not path.is_file() and not path.is_dir():
        raise VideoError(path, "missing", "not a regular file")
    if path.is_file() and path.stat().st_size == 0:
        raise VideoError(path, "empty", "the file has 0 bytes")


def decode(
    path: str | Path,
    select: Callable[[VideoInfo, OpenVideo], list[int]],
    backend: str = "auto",
) -> DecodeResult:
    """Open ``path``, choose indices with ``select`` and decode them.

    ``backend`` is 'decord', 'pyav' or 'auto' (decord, then PyAV when decord fails). A folder is read as
    frame images whatever the backend.
    """
    path = Path(path)
    _check_file(path)
    order = ["frames"] if path.is_dir() else (["decord", "pyav"] if backend == "auto" else [backend])
    failures: list[DecodeFailure] = []
    for name in order:
        try:
            video = BACKENDS[name](str(path))
            if video.info.num_frames <= 0:
                raise VideoError(path, "empty", "the video has no frames")
            indices = select(video.info, video)
            array = video.read(indices)
        except DecodeFailure as exc:
            failures.append(exc)
            continue
        first = failures[0] if failures else None
        if first is not None:
            decode_stats.fallbacks += 1
            log.warning("video %s: %s failed (%s); decoded with %s instead", path, first.backend, first, name)
        return DecodeResult(
            info=video.info,
            indices=indices,
            array=array,
            backend=name,
            fallback_from=first.backend if first else None,
            fallback_reason=str(first) if first else None,
        )
    cause = "truncated" if any(f.stage == "read" for f in failures) else "corrupt"
    raise VideoError(path, cause, "; ".join(str(f) for f in failures))
