"""Publish an export (a dataset) or a trained model on the Hugging Face Hub, each with its card.

- A dataset is an ``mmaip export`` folder as it is: its ``README.md`` is the dataset card (what built it: zoo,
  scorer, pair strategy, counts, the paper to cite).
- A model is a ``mmaip train`` folder: its final checkpoint is staged in ``OUT/hub`` (files linked, not
  copied) beside a model card written from ``manifest.json`` (base, rounds, reference policy, alpha, the data,
  and evaluation figures when an evaluation folder is given).

Uploads go through huggingface_hub's ``HfApi.create_repo`` and ``upload_folder`` (the endpoint is ``HF_ENDPOINT``,
the token ``HF_TOKEN`` or the one saved by ``hf auth login``; neither is printed). ``dry_run`` stops before the
upload: the folder and card that would go are left for review.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from mmaip_core.errors import UserError
from mmaip_core.records import TrainManifest
from mmaip_core.stages.cards import model_card
from mmaip_core.store import layout
from mmaip_core.store.checkpoints import MARKER, is_complete
from mmaip_core.store.files import read_record, write_text_atomic
from mmaip_core.store.redaction import redact_text
from mmaip_core.store.runfolder import locked

__all__ = ["HUB_FOLDER", "HubUpload", "push", "push_dataset", "push_folder", "push_model", "stage_model"]

HUB_FOLDER = "hub"
"""Folder of a training run where its final model is staged with its card (what ``push_model`` uploads)."""

RepoType = Literal["dataset", "model"]
IGNORED = [".*", "*/.*", MARKER, f"*/{MARKER}"]
"""What stays behind (``upload_folder``'s patterns): hidden files (locks, temporary files) and mmaip's markers."""


class HubUpload(BaseModel):
    """What was (or, with ``dry_run``, would be) uploaded."""

    repo_id: str = Field(description="The Hub repository, user/name.")
    repo_type: RepoType
    folder: Path = Field(description="The local folder uploaded.")
    files: list[str] = Field(description="The files uploaded, relative to the folder.")
    url: str | None = Field(default=None, description="The repository's address (None: a dry run).")


def _uploaded(folder: Path) -> list[str]:
    """The files of ``folder`` that go up: all but those ``IGNORED`` matches."""
    from huggingface_hub.utils import filter_repo_objects  # type: ignore[attr-defined]  # lazily exported

    files = (p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    return sorted(filter_repo_objects(files, ignore_patterns=IGNORED))


def push_folder(
    folder: Path, repo_id: str, repo_type: RepoType, *, private: bool = False, dry_run: bool = False
) -> HubUpload:
    """Upload ``folder`` to the Hub repository ``repo_id`` (created when missing) in one commit."""
    from huggingface_hub import HfApi, get_token
    from huggingface_hub.constants import is_offline_mode
    from huggingface_hub.errors import HfHubHTTPError
    from huggingface_hub.utils import httpx  # type: ignore[attr-defined]  # its HTTP client, as it exports it

    files = _uploaded(folder)
    if "README.md" not in files:
        raise UserError(f"{folder}: no README.md card; publish an `mmaip export` folder or an `mmaip train` one")
    upload = HubUpload(repo_id=repo_id, repo_type=repo_type, folder=folder, files=files)
    if dry_run:
        return upload
    if is_offline_mode():
        raise UserError("HF_HUB_OFFLINE is set: unset it to push to the Hub (or pass --dry-run to review the upload)")
    if get_token() is None:
        raise UserError("no Hugging Face token: set HF_TOKEN to a write token, or run `hf auth login`")
    api = HfApi()
    try:
        url = api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True)
        api.upload_folder(
            repo_id=url.repo_id,
            repo_type=repo_type,
            folder_path=folder,
            ignore_patterns=IGNORED,
            commit_message=f"Upload {repo_type} from mmaip",
        )
    except (HfHubHTTPError, httpx.HTTPError, OSError) as exc:  # the Hub's answer; no connection; a file unread
        raise UserError(f"could not push {folder} to {repo_id}: {redact_text(str(exc))}") from None
    return upload.model_copy(update={"url": str(url)})


def push_dataset(export: str | Path, repo_id: str, *, private: bool = False, dry_run: bool = False) -> HubUpload:
    """Upload an ``mmaip export`` folder (data files, frames, dataset card) as a Hub dataset."""
    return push_folder(Path(export), repo_id, "dataset", private=private, dry_run=dry_run)


def _link_tree(source: Path, target: Path) -> None:
    """``target`` as a tree of hard links to ``source``'s files (copies where links are impossible)."""
    for path in source.rglob("*"):
        if path.is_file() and path.name != MARKER:
            dest = target / path.relative_to(source)
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(path, dest)
            except OSError:  # another file system, or links not allowed
                shutil.copy2(path, dest)


def stage_model(
    train_dir: str | Path, *, repo_id: str, evaluation: Path | None = None, dataset: str | None = None
) -> Path:
    """``TRAIN_DIR/hub``: the final model of a finished training run with its model card."""
    train_dir = Path(train_dir)
    manifest_path = train_dir / layout.TRAIN_MANIFEST
    if not manifest_path.is_file():
        raise UserError(f"{train_dir}: not a training run (no {layout.TRAIN_MANIFEST})")
    manifest = read_record(manifest_path, TrainManifest)
    if manifest.final is None or not is_complete(Path(manifest.final)):
        raise UserError(f"{train_dir}: training has not finished (no complete final model); resume it first")
    card = model_card(manifest, repo_id, evaluation=evaluation, dataset=dataset)
    with locked(train_dir):  # no training resumes into the folder while its model is staged
        staged = train_dir / HUB_FOLDER
        shutil.rmtree(staged, ignore_errors=True)
        _link_tree(Path(manifest.final), staged)
        write_text_atomic(staged / "README.md", card)
    return staged


def push_model(
    train_dir: str | Path,
    repo_id: str,
    *,
    private: bool = False,
    dry_run: bool = False,
    evaluation: Path | None = None,
    dataset: str | None = None,
) -> HubUpload:
    """Stage the final model of ``train_dir`` with its card (:func:`stage_model`) and upload it as a Hub model."""
    staged = stage_model(train_dir, repo_id=repo_id, evaluation=evaluation, dataset=dataset)
    return push_folder(staged, repo_id, "model", private=private, dry_run=dry_run)


def push(
    folder: str | Path,
    repo_id: str,
    *,
    private: bool = False,
    dry_run: bool = False,
    evaluation: Path | None = None,
    dataset: str | None = None,
) -> HubUpload:
    """Publish what ``folder`` holds: a training run's final model (it has ``manifest.json``), else an export."""
    folder = Path(folder)
    if (folder / layout.TRAIN_MANIFEST).is_file():
        return push_model(folder, repo_id, private=private, dry_run=dry_run, evaluation=evaluation, dataset=dataset)
    if evaluation is not None or dataset is not None:
        raise UserError(f"{folder}: not a training run; an evaluation and a dataset go on model cards only")
    return push_dataset(folder, repo_id, private=private, dry_run=dry_run)
