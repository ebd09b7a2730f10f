"""One row of a preference dataset as the :class:`~mmaip_core.records.TrainPair` the trainer reads.

Rows may be in any of these formats (the fields are read by name, so the formats mix freely):

- a build's ``pairs.jsonl`` (PreferencePair) or hand-written ``{id, video, prompt, chosen, rejected}`` lines
  (``question`` may stand for ``prompt``);
- TRL's preference formats, standard (``prompt``/``chosen``/``rejected`` strings) or conversational (lists of
  ``{"role", "content"}`` messages, content a string or typed parts), with an explicit or an implicit prompt (the
  prompt inside ``chosen`` and ``rejected``, split off with TRL's ``maybe_extract_prompt``);
- LLaVA-Hound-DPO's pair files (``id``, ``video``, ``prompt``, ``chosen``, ``rejected``; ``video`` a folder of
  frames, found beside the file or in its ``frames/`` folder, where ``mmaip export --format llava-hound`` puts them).

The video comes from ``images`` (the frames, as TRL's vision datasets and ``mmaip export`` carry them: written
once as a folder of frame images, which the frame loader reads as a video), else ``videos`` (one path), else
``video``. The prompt keeps the user turns' text, the answers the assistant turns' text; a missing ``id`` is the
row's place (``file:row``), a missing ``label_source`` is ``human``.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

from mmaip_core.frames.decoders import IMAGE_SUFFIXES
from mmaip_core.records import TrainPair
from mmaip_core.store.files import atomic_file

__all__ = ["frames_folder", "train_pair"]

LLAVA_HOUND_VIDEO_FOLDER = "frames"
"""The folder beside a LLaVA-Hound-DPO pair file that holds its videos (``mmaip export``'s ``FRAMES_FOLDER``)."""


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text") or "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def _text(value: Any, field: str, role: str) -> str:
    """A string, or the text of the ``role`` messages of a message list (all messages when none has a role)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and all(isinstance(m, dict) for m in value):
        turns = [m for m in value if m.get("role") == role] or value
        return "\n".join(t for t in (_content_text(m.get("content")) for m in turns) if t)
    raise ValueError(f"{field}: expected a string or a list of messages, got {type(value).__name__}")


def _with_prompt(row: dict[str, Any]) -> dict[str, Any]:
    """``row`` with ``prompt`` set: from ``question``, or split off ``chosen``/``rejected`` (TRL's implicit prompt)."""
    if "prompt" in row:
        return row
    if "question" in row:
        return {**row, "prompt": row["question"]}
    if "chosen" in row and "rejected" in row:
        from trl.data_utils import maybe_extract_prompt  # imports torch: only for rows that need it

        return {**row, **maybe_extract_prompt({"chosen": row["chosen"], "rejected": row["rejected"]})}
    return row


def _image_bytes(image: Any, base: Path, index: int) -> bytes:
    """The encoded bytes of one ``images`` entry: ``{"bytes", "path"}`` as datasets stores images, bytes, or a path."""
    if isinstance(image, dict):
        image = image.get("bytes") or image.get("path")
    if isinstance(image, bytes):
        return image
    if isinstance(image, str):
        path = Path(image).expanduser()
        return (path if path.is_absolute() else base / path).read_bytes()
    raise ValueError(f"images[{index}]: expected image bytes or a path, got {type(image).__name__}")


def _frame_file(blob: bytes, index: int) -> tuple[str, bytes]:
    """(suffix, bytes) of a frame file: the image as it is when the frame loader reads its format, else as PNG."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(blob)) as image:
            suffix = "." + str(image.format).lower().replace("jpeg", "jpg")
            if suffix in IMAGE_SUFFIXES:
                return suffix, blob
            out = io.BytesIO()
            image.convert("RGB").save(out, format="PNG")
            return ".png", out.getvalue()
    except (OSError, UnidentifiedImageError) as exc:
        raise ValueError(f"images[{index}]: not a readable image ({exc})") from exc


def frames_folder(images: list[Any], base: Path, root: Path) -> Path:
    """The folder under ``root`` holding ``images`` as frame files ``00000.png``, ... in order, named by their
    content: written once (each file atomically), reused by every later read."""
    files = [_frame_file(_image_bytes(image, base, i), i) for i, image in enumerate(images)]
    digest = hashlib.sha256(b"".join(hashlib.sha256(blob).digest() for _, blob in files)).hexdigest()
    folder = root / digest[:32]
    for index, (suffix, blob) in enumerate(files):
        target = folder / f"{index:05d}{suffix}"
        if not target.is_file():
            with atomic_file(target, "wb") as fh:
                fh.write(blob)
    return folder


def _resolve(video: str, base: Path) -> str:
    """A video path: absolute as given; relative, from the file's folder, or from its LLaVA-Hound ``frames/``."""
    path = Path(video).expanduser()
    if path.is_absolute():
        return str(path)
    for candidate in (base / path, base / LLAVA_HOUND_VIDEO_FOLDER / path):
        if candidate.exists():
            return str(candidate)
    return str(base / path)


def _video(row: dict[str, Any], base: Path, images_root: Path) -> str | None:
    if row.get("images"):
        return str(frames_folder(list(row["images"]), base, images_root))
    if (videos := row.get("videos")) is not None:
        videos = [videos] if isinstance(videos, str) else list(videos)
        if len(videos) != 1 or not isinstance(videos[0], str):
            raise ValueError(f"videos: one video path per pair is supported, got {len(videos)}")
        return _resolve(videos[0], base)
    video = row.get("video")
    return _resolve(video, base) if isinstance(video, str) and video else None


def train_pair(row: dict[str, Any], item: str, base: Path, images_root: Path) -> TrainPair:
    """The pair of ``row`` (``item`` names it: ``file:row``); relative paths are taken from ``base``, frames
    carried as images are written under ``images_root``. A row that is not a pair raises ``ValueError`` or
    pydantic's ``ValidationError`` naming the field."""
    row = _with_prompt(row)
    fields: dict[str, Any] = {"id": str(row["id"]) if row.get("id") is not None else item}
    for name, role in (("prompt", "user"), ("chosen", "assistant"), ("rejected", "assistant")):
        if name in row:
            fields[name] = _text(row[name], name, role)
    if (video := _video(row, base, images_root)) is not None:
        fields["video"] = video
    if isinstance(row.get("label_source"), str):
        fields["label_source"] = row["label_source"]
    return TrainPair.model_validate(fields)
