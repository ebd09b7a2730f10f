"""Where a Hugging Face model is loaded from: a local folder, the Hub, or the local cache when the Hub cannot be
reached. huggingface_hub retries an unreachable Hub with backoff for every file a model has (minutes, with a
warning per retry), so before the first download mmaip asks the Hub once, within ``HF_HUB_ETAG_TIMEOUT``
seconds, and loads from the cache (one warning) or fails with one line when it cannot be reached."""

from __future__ import annotations

import logging
from functools import cache
from pathlib import Path

from mmaip_core import ModelError

__all__ = ["local_files_only", "model_folder"]

log = logging.getLogger(__name__)


def model_folder(model: str) -> Path | None:
    """The local folder ``model`` names, None for a hub id. A value written as a path (absolute, or starting with
    ``.`` or ``~``) that is no folder is an error naming the folder looked at."""
    folder = Path(model).expanduser()
    if folder.is_dir():
        return folder
    if folder.is_absolute() or model.startswith((".", "~")):
        raise ModelError(
            model, f"no model folder at {folder.resolve()} (a relative folder is taken from the config file's folder)"
        )
    return None


@cache
def _hub_reachable() -> bool:
    from huggingface_hub import constants, get_session

    try:
        get_session().head(constants.ENDPOINT, timeout=constants.HF_HUB_ETAG_TIMEOUT)
    except Exception:  # the session's transport errors share no base class with OSError
        return False
    return True


@cache
def local_files_only(model: str, revision: str | None) -> bool:
    """Whether hub model ``model`` must come from the local cache: with ``HF_HUB_OFFLINE``, or when the Hub
    cannot be reached and the cache holds it (warned once). Unreachable and not cached: a ModelError."""
    from huggingface_hub import constants, try_to_load_from_cache

    if constants.HF_HUB_OFFLINE:
        return True
    if _hub_reachable():
        return False
    if isinstance(try_to_load_from_cache(model, "config.json", revision=revision), str):
        log.warning("the Hub (%s) cannot be reached: %s is loaded from the local cache", constants.ENDPOINT, model)
        return True
    raise ModelError(
        model,
        f"the Hub ({constants.ENDPOINT}) cannot be reached and the local cache ({constants.HF_HUB_CACHE}) does not "
        "hold it; download it where there is a network, or give a local folder (HF_HUB_OFFLINE=1 skips the Hub)",
    )
