"""Hugging Face models offline: a hub id the Hub cannot serve fails at once with one line (or comes from the
local cache with one warning) instead of minutes of retries; a model folder is taken from the config's folder,
like every path, and a missing one is named by the path looked at."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from mmaip_core import ModelError, PluginManager
from mmaip_core.config import load_config
from mmaip_plugins.zoo import hub


@pytest.fixture
def online(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No HF_HUB_OFFLINE, and a Hub at a closed local port (nothing leaves the machine)."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    hub.local_files_only.cache_clear()
    hub._hub_reachable.cache_clear()
    yield
    hub.local_files_only.cache_clear()
    hub._hub_reachable.cache_clear()


def test_offline_mode_loads_from_the_cache_without_asking() -> None:
    hub.local_files_only.cache_clear()
    assert hub.local_files_only("org/model", None) is True  # HF_HUB_OFFLINE=1 in the tests' environment


def test_an_unreachable_hub_fails_at_once_with_one_line(online: None) -> None:
    start = time.monotonic()
    with pytest.raises(ModelError) as caught:
        hub.local_files_only("org/not-cached", None)
    assert time.monotonic() - start < 10
    message = str(caught.value)
    assert "org/not-cached" in message and "http://127.0.0.1:9" in message and "cannot be reached" in message
    assert "\n" not in message


def test_an_unreachable_hub_uses_the_cached_copy_with_one_warning(
    online: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda *a, **k: "/cache/config.json")
    with caplog.at_level(logging.WARNING):
        assert hub.local_files_only("org/cached", None) is True
        assert hub.local_files_only("org/cached", None) is True
    assert [r.getMessage() for r in caplog.records] == [
        "the Hub (http://127.0.0.1:9) cannot be reached: org/cached is loaded from the local cache"
    ]


def test_a_missing_model_folder_is_named_by_the_path_looked_at(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=f"no model folder at {tmp_path / 'ckpt'}"):
        hub.model_folder(str(tmp_path / "ckpt"))
    (tmp_path / "ckpt").mkdir()
    assert hub.model_folder(str(tmp_path / "ckpt")) == tmp_path / "ckpt"
    assert hub.model_folder("Qwen/Qwen2-VL-2B-Instruct") is None


def test_model_folders_are_taken_from_the_config_s_folder(
    manager: PluginManager, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    here = tmp_path / "configs"
    (here / "runs" / "train" / "final").mkdir(parents=True)
    (here / "ckpt").mkdir()
    monkeypatch.chdir(tmp_path)  # the working directory is not the config's folder
    models = {
        "a": "./ckpt",
        "b": "ckpt",
        "c": "runs/train/final",
        "d": "../elsewhere/model",
        "e": "Qwen/Qwen2-VL-2B-Instruct",
        "f": str(tmp_path / "abs"),
    }
    config = here / "eval.yaml"
    config.write_text(
        yaml.safe_dump({"models": [{"name": n, "generator": "hf", "model": m} for n, m in models.items()]})
    )
    loaded = {entry.name: entry.options["model"] for entry in load_config(config, manager).models}
    assert loaded == {
        "a": str(here / "ckpt"),
        "b": str(here / "ckpt"),
        "c": str(here / "runs/train/final"),
        "d": str(here / "../elsewhere/model"),
        "e": "Qwen/Qwen2-VL-2B-Instruct",
        "f": str(tmp_path / "abs"),
    }
