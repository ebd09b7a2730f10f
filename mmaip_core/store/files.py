"""Output files that are complete or absent, and reading them back with errors that name the file.

Every file a run writes goes through :func:`atomic_file`: a uniquely named temporary file in the same folder,
flushed and fsynced, then ``os.replace``-d onto the final name. A crash or a full disk leaves the previous
file (or none), never a half-written one; a failed write is an ``OSError`` that names the final file.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import IO, Any, Literal, TypeVar

from pydantic import BaseModel, ValidationError

from mmaip_core.errors import ConfigError

__all__ = ["atomic_file", "atomic_text", "read_json", "read_record", "write_text_atomic"]

RecordT = TypeVar("RecordT", bound=BaseModel)


@contextmanager
def atomic_file(path: str | Path, mode: Literal["w", "wb"] = "w") -> Iterator[IO[Any]]:
    """A file handle (text or binary) whose content replaces ``path`` atomically when the block ends without error."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else "utf-8") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:  # e.g. a full disk: name the file we were writing, not the temporary one
        Path(tmp).unlink(missing_ok=True)
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_text(path: str | Path) -> AbstractContextManager[IO[str]]:
    """A text file handle whose content replaces ``path`` atomically (see :func:`atomic_file`)."""
    return atomic_file(path, "w")


def write_text_atomic(path: str | Path, text: str) -> None:
    """Replace ``path`` with ``text`` atomically (see :func:`atomic_file`)."""
    with atomic_file(path) as fh:
        fh.write(text)


def read_json(path: str | Path) -> Any:
    """The JSON value in ``path``; a missing, unreadable or invalid file is a ConfigError naming it."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(["not found"], source=str(path))
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        cause = "empty file" if path.stat().st_size == 0 else f"not valid JSON ({exc})"
        raise ConfigError([cause], source=str(path)) from None


def read_record(path: str | Path, model: type[RecordT]) -> RecordT:
    """The ``model`` record stored as JSON in ``path``; errors name the file and what is wrong."""
    data = read_json(path)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(
            [f"not a valid {model.__name__}: {where + ': ' if where else ''}{first['msg']}"], source=str(path)
        ) from None


def save_figure(figure: Any, path: str | Path, dpi: int = 110) -> None:
    """Write a matplotlib ``figure`` as a PNG to ``path`` atomically, then close it."""
    import matplotlib.pyplot as plt

    with atomic_file(path, "wb") as fh:
        figure.savefig(fh, format="png", dpi=dpi)
    plt.close(figure)
