"""The run manifest: what produced a run (versions, plugins, resolved config, command)."""

from __future__ import annotations

import importlib.metadata as md
import platform
import re
import sys
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from mmaip_core.plugins import PluginManager
from mmaip_core.records import RunManifest

__all__ = ["KEY_PACKAGES", "library_versions", "redact", "run_manifest"]

_SECRET_PARAMS = re.compile(r"(?i)^(.*key|.*token|.*secret|password|sig|signature)$")

KEY_PACKAGES = (
    "torch", "torchvision", "transformers", "tokenizers", "trl", "peft", "accelerate", "datasets", "safetensors",
    "decord", "av", "pillow", "numpy", "openai", "anthropic", "pydantic", "typer", "pluggy", "rich",
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


def _redact_url(text: str) -> str:
    url = urlsplit(text)
    if not url.scheme or not url.netloc:
        return text
    netloc = f"***@{url.hostname or ''}" + (f":{url.port}" if url.port else "") if "@" in url.netloc else url.netloc
    query = urlencode([(k, "***" if _SECRET_PARAMS.match(k) else v) for k, v in parse_qsl(url.query, keep_blank_values=True)], safe="*")
    return urlunsplit((url.scheme, netloc, url.path, query, url.fragment))


def redact(value: Any) -> Any:
    """``value`` with credentials removed from every URL in it (user:password@, ?key=..., ?token=...)."""
    if isinstance(value, dict):
        return {k: redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    if isinstance(value, str) and "://" in value:
        return _redact_url(value)
    return value


def run_manifest(config: dict[str, Any], manager: PluginManager, command: Sequence[str] = ()) -> RunManifest:
    """The manifest of a run with the resolved ``config`` (credentials in URLs redacted), started by ``command``."""
    return RunManifest(
        mmaip_version=library_versions(["mmaip"])["mmaip"] or "unknown",
        python=sys.version.split()[0],
        platform=platform.platform(),
        packages=library_versions(),
        plugins=manager.list(),
        config=redact(config),
        command=list(command),
    )
