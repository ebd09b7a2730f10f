"""Every error mmaip raises on purpose.

The tree::

    MmaipError                      root of everything below
    ├── UserError                   a mistake the user can fix; the CLI prints one line, no traceback
    │   ├── ConfigError             a run config (or a plugin's options) does not validate
    │   │   └── PluginConfigError   one plugin's options: names the plugin, the key and the allowed values
    │   ├── UnknownNameError        a name that is not known; lists the known names, suggests one
    │   │   ├── UnknownPluginError  no plugin of that kind has this name
    │   │   └── UnknownRecordError  ``mmaip schema NAME`` with a name that is no record
    │   ├── DuplicatePluginError    two providers registered the same name; names both
    │   ├── EmptyRunError           a run read no input, or nothing in it succeeded
    │   └── SamplesFileError        a samples file (or folder) a reader was given cannot be read as a table
    ├── InputError                  an item lacks what a plugin needs (no ground truth, no answer text)
    ├── PluginError                 a plugin broke its contract (e.g. a sampler returned invalid indices)
    ├── ProviderError               an API provider kept failing where the run cannot go on (e.g. batch polling)
    ├── PluginLoadError             a plugin that was explicitly asked for could not be loaded
    ├── ModelError                  a model could not be loaded (not found offline, bad folder, ...)
    ├── StorageError                a run folder's file cannot be read or written (damaged ledger, full disk)
    └── VideoError                  a video that cannot be read: missing, empty, corrupt, truncated

Errors carry structured fields (``kind``, ``name``, ``valid_names``, ``path``, ``cause``) so callers
can report them per item and go on with the rest of a run.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from pathlib import Path

__all__ = [
    "ConfigError",
    "DuplicatePluginError",
    "EmptyRunError",
    "InputError",
    "MmaipError",
    "ModelError",
    "PluginConfigError",
    "PluginError",
    "PluginLoadError",
    "ProviderError",
    "SamplesFileError",
    "StorageError",
    "TrainingError",
    "UnknownNameError",
    "UnknownPluginError",
    "UnknownRecordError",
    "UserError",
    "VideoError",
    "did_you_mean",
]


class MmaipError(Exception):
    """Root of every error mmaip raises on purpose."""


class UserError(MmaipError):
    """A mistake the user can fix (configuration, names, arguments)."""


class ConfigError(UserError):
    """A run config does not validate; ``problems`` holds every ``location: message`` found (one problem is
    one line, several a count and a list)."""

    def __init__(self, problems: Sequence[str], source: str | None = None) -> None:
        self.problems = list(problems)
        self.source = source
        where = f"{source}: " if source else ""
        if len(self.problems) == 1:  # one line, as the CLI prints every user error
            super().__init__(f"{where}{self.problems[0]}")
            return
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{where}{len(self.problems)} configuration error(s):\n{lines}")


class PluginConfigError(ConfigError):
    """The options given to one plugin do not validate."""

    def __init__(self, kind: str, name: str, problems: Sequence[str]) -> None:
        self.kind = kind
        self.name = name
        super().__init__([f"{kind} '{name}': {p}" for p in problems])


def did_you_mean(name: str, valid: Iterable[str]) -> str:
    """Return ``" Did you mean 'x'?"`` for the closest valid name, or an empty string."""
    close = difflib.get_close_matches(name, list(valid), n=1, cutoff=0.5)
    return f" Did you mean '{close[0]}'?" if close else ""


class UnknownNameError(UserError):
    """``name`` is not one of ``valid_names`` (of ``kind``)."""

    def __init__(self, kind: str, name: str, valid_names: Sequence[str], plural: str | None = None) -> None:
        self.kind = kind
        self.name = name
        self.valid_names = sorted(valid_names)
        known = ", ".join(self.valid_names) or "(none)"
        super().__init__(
            f"unknown {kind} '{name}'. Known {plural or _plural(kind)}: {known}.{did_you_mean(name, self.valid_names)}"
        )


def _plural(noun: str) -> str:
    """The English plural of a kind's name: pair-strategy -> pair-strategies, scorer -> scorers."""
    if noun.endswith("y") and noun[-2:-1] not in ("a", "e", "i", "o", "u"):
        return noun[:-1] + "ies"
    return noun + "s"


class UnknownPluginError(UnknownNameError):
    """No plugin of ``kind`` is registered under ``name``."""


class DuplicatePluginError(UserError):
    """Two providers registered the same ``kind``/``name``."""

    def __init__(self, kind: str, name: str, providers: Sequence[str]) -> None:
        self.kind = kind
        self.name = name
        self.providers = list(providers)
        super().__init__(
            f"{kind} '{name}' is registered twice: by {' and by '.join(self.providers)}. "
            f"Uninstall one, or disable one with MMAIP_DISABLE_PLUGINS={kind}:{name}@PACKAGE."
        )


class EmptyRunError(UserError):
    """A run read no input, or none of its calls succeeded: there is nothing to show for it."""


class SamplesFileError(UserError):
    """A file a reader was pointed at cannot be read as a table at all (missing, empty, no rows, ...): the
    run stops, since every sample would be missing. A bad row in a readable file is a RowError instead."""

    def __init__(self, path: str | Path, cause: str) -> None:
        self.path = str(path)
        self.cause = cause
        super().__init__(f"{path}: {cause}")


class UnknownRecordError(UnknownNameError):
    """``mmaip schema`` was asked for a record that does not exist."""

    def __init__(self, name: str, valid_names: Sequence[str]) -> None:
        super().__init__("record", name, valid_names)


class InputError(MmaipError):
    """An item lacks something a plugin needs, e.g. a ground-truth answer; the item fails, the run goes on."""


class PluginError(MmaipError):
    """Plugin ``kind``/``name`` returned something it must not."""

    def __init__(self, kind: str, name: str, problem: str) -> None:
        self.kind = kind
        self.name = name
        super().__init__(f"{kind} '{name}' {problem}")


class PluginLoadError(MmaipError):
    """A plugin that was explicitly requested could not be imported or validated."""

    def __init__(self, plugin: str, cause: str) -> None:
        self.plugin = plugin
        self.cause = cause
        super().__init__(f"plugin '{plugin}' could not be loaded: {cause}")


class ModelError(MmaipError):
    """A model could not be loaded; ``model`` is the id or folder asked for."""

    def __init__(self, model: str, cause: str) -> None:
        self.model = model
        self.cause = cause
        super().__init__(f"model {model} could not be loaded: {cause}")


class TrainingError(MmaipError):
    """Training cannot go on (e.g. several non-finite steps in a row); complete checkpoints stay on disk."""


class ProviderError(MmaipError):
    """An API provider kept failing where the run cannot go on; what was stored stays stored."""


class StorageError(MmaipError):
    """A file of a run folder cannot be read or written; ``path`` names it, ``cause`` says why."""

    def __init__(self, path: str | Path, cause: str) -> None:
        self.path = str(path)
        self.cause = cause
        super().__init__(f"{self.path}: {cause}")


class VideoError(MmaipError):
    """A video cannot be read. ``cause`` is one of missing, empty, corrupt, truncated, unreadable."""

    def __init__(self, path: str | Path, cause: str, detail: str = "") -> None:
        self.path = str(path)
        self.cause = cause
        self.detail = detail
        extra = f": {detail}" if detail else ""
        super().__init__(f"video {self.path}: {cause}{extra}")
