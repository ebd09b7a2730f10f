"""The run manifest: what produced a run (versions, plugins, resolved config, command)."""

from __future__ import annotations

import importlib.metadata as md
import platform
import sys
from collections.abc import Sequence
from typing import Any

from mmaip_core.plugins.manager import PluginManager
from mmaip_core.records import RunManifest
from mmaip_core.store.redaction import redact

__all__ = ["KEY_PACKAGES", "library_versions", "run_manifest"]

KEY_PACKAGES = (
    "torch",
    "torchvision",
    "transformers",
    "tokenizers",
    "trl",
    "peft",
    "accelerate",
    "datasets",
    "safetensors",
    "decord",
    "av",
    "pillow",
    "numpy",
    "openai",
    "anthropic",
    "pydantic",
    "typer",
    "pluggy",
    "rich",
)


def library_versions(names: Sequence[str] = KEY_PACKAGES) -> dict[str, str | None]:
    """Installed version of each distribution (None when it is not installed)."""
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            versions[name] = None
    return versions


def run_manifest(config: dict[str, Any], manager: PluginManager, command: Sequence[str] = ()) -> RunManifest:
    """The manifest of a run with the resolved ``config``, started by ``command`` (credentials redacted in both)."""
    return RunManifest(
        mmaip_version=library_versions(["mmaip"])["mmaip"] or "unknown",
        python=sys.version.split()[0],
        platform=platform.platform(),
        packages=library_versions(),
        plugins=manager.list(),
        config=redact(config),
        command=redact(list(command)),
    )
