"""The plugin manager: entry-point discovery, typed registries and lookups.

Plugins are found through one entry-point group, ``mmaip``; the bundled plugins are registered through
it exactly like third-party ones. Only this module calls ``pm.hook``; the rest of mmaip uses the typed
methods of :class:`PluginManager`.

Environment:

``MMAIP_LOAD_PLUGINS``
    Comma-separated allow-list of entry-point names to load; set but empty loads none.
``MMAIP_DISABLE_PLUGINS``
    Comma-separated names to skip: an entry-point name blocks that whole plugin module,
    ``kind:name`` (e.g. ``scorer:exact-match``) one registered plugin, and ``kind:name@package`` only
    the one that ``package`` provides (to settle a name registered twice).
``MMAIP_TRACE_PLUGINS``
    ``1`` prints every hook call to stderr.
"""

from __future__ import annotations

import importlib.metadata as md
import logging
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from types import ModuleType
from typing import Any, Literal, overload

import pluggy
from pydantic import ValidationError

from mmaip_core.calls.pricing import PriceTable
from mmaip_core.errors import DuplicatePluginError, PluginConfigError, PluginError, UnknownPluginError, UserError
from mmaip_core.plugins import hookspecs
from mmaip_core.plugins.kinds import (
    PLUGIN_KINDS,
    Evaluator,
    FrameSampler,
    PairStrategy,
    PluginContext,
    PluginOptions,
    PluginSection,
    PluginSpec,
    PolicyTrainer,
    ReferencePolicy,
    ResponseGenerator,
    SampleReader,
    Scorer,
)
from mmaip_core.records import PluginInfo, TrainPair
from mmaip_core.validation import render_validation_error

__all__ = [
    "DISABLE_ENV",
    "ENTRY_POINT_GROUP",
    "LOAD_ENV",
    "TRACE_ENV",
    "PluginManager",
    "Registered",
    "get_plugin_manager",
]

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "mmaip"
LOAD_ENV = "MMAIP_LOAD_PLUGINS"
DISABLE_ENV = "MMAIP_DISABLE_PLUGINS"
TRACE_ENV = "MMAIP_TRACE_PLUGINS"

_HOOKS: dict[str, str] = {
    "generator": "mmaip_response_generators",
    "scorer": "mmaip_scorers",
    "pair-strategy": "mmaip_pair_strategies",
    "reference-policy": "mmaip_reference_policies",
    "evaluator": "mmaip_evaluators",
    "frame-sampler": "mmaip_frame_samplers",
    "sample-reader": "mmaip_sample_readers",
    "trainer": "mmaip_trainers",
}
assert set(_HOOKS) == set(PLUGIN_KINDS)


@dataclass(frozen=True)
class Registered:
    """A spec together with who provided it."""

    spec: PluginSpec[Any]
    plugin: str
    module: str
    package: str
    version: str | None

    @property
    def provider(self) -> str:
        return f"{self.package} ({self.module})"

    def info(self) -> PluginInfo:
        return PluginInfo(
            kind=self.spec.kind,
            name=self.spec.name,
            package=self.package,
            version=self.version,
            module=self.module,
            description=self.spec.description,
        )


def _names(value: str | None) -> list[str]:
    return [n.strip() for n in (value or "").split(",") if n.strip()]


def _normalise(name: str) -> str:
    return name.strip().lower().replace("_", "-")


class PluginManager:
    """Loads plugins and answers "which plugin is called X" for every kind.

    ``entry_points=False`` loads nothing automatically (tests register plugins by hand).
    ``env`` replaces ``os.environ`` for the variables above.
    """

    def __init__(self, *, entry_points: bool = True, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        self._pm = pluggy.PluginManager(hookspecs.PROJECT)
        self._pm.add_hookspecs(hookspecs)
        self._sources: dict[str, tuple[str, str | None]] = {}
        self._registry: dict[str, dict[str, list[Registered]]] | None = None
        self._allow = _names(env[LOAD_ENV]) if LOAD_ENV in env else None
        self.warnings: list[str] = []
        self._disabled_specs: set[tuple[str, str, str | None]] = set()
        for entry in _names(env.get(DISABLE_ENV)):
            if ":" not in entry:
                self._pm.set_blocked(entry)
                continue
            kind, _, rest = entry.partition(":")
            name, _, package = rest.partition("@")
            if _normalise(kind) not in _HOOKS:
                self._warn(f"{DISABLE_ENV}: '{entry}' names no plugin kind; kinds: {', '.join(_HOOKS)}")
            self._disabled_specs.add((_normalise(kind), _normalise(name), package.strip() or None))
        self._trace = env.get(TRACE_ENV) == "1"
        if entry_points:
            self.load_entry_points()

    # --- loading ----------------------------------------------------------------------------------

    def _warn(self, message: str) -> None:
        self.warnings.append(message)
        log.warning(message)

    def register(
        self, plugin: ModuleType | object, name: str, *, package: str = "(local)", version: str | None = None
    ) -> bool:
        """Register one plugin module or object; a plugin with invalid hooks is skipped with a warning."""
        if self._pm.is_blocked(name):
            return False
        try:
            self._pm.register(plugin, name=name)
            self._pm.check_pending()
        except (pluggy.PluginValidationError, ValueError) as exc:
            if self._pm.get_plugin(name) is not None:
                self._pm.unregister(name=name)
            self._warn(f"plugin '{name}' from {package} is invalid and was skipped: {exc}")
            return False
        self._sources[name] = (package, version)
        self._registry = None
        return True

    @contextmanager
    def registered(self, plugin: ModuleType | object, name: str) -> Iterator[None]:
        """``plugin`` registered for the ``with`` block only (e.g. a ``mmaip_round_pairs`` implementation for one
        training run), then unregistered; a plugin that cannot be registered is an error."""
        if not self.register(plugin, name):
            raise PluginError("plugin", name, "could not be registered (see the warnings)")
        try:
            yield
        finally:
            self._pm.unregister(name=name)
            self._sources.pop(name, None)
            self._registry = None

    def load_entry_points(self) -> None:
        """Register every plugin of the ``mmaip`` entry-point group; broken ones warn and are skipped."""
        for ep in md.entry_points(group=ENTRY_POINT_GROUP):
            if self._allow is not None and ep.name not in self._allow:
                continue
            package = ep.dist.name if ep.dist else "(unknown)"
            version = ep.dist.version if ep.dist else None
            name = ep.name
            if name in self._sources:  # another distribution uses the same entry-point name: keep both
                if self._sources[name][0] == package:
                    continue
                name = f"{ep.name}@{package}"
            if self._pm.is_blocked(ep.name) or self._pm.is_blocked(name) or self._pm.get_plugin(name) is not None:
                continue
            try:
                module = ep.load()
            except Exception as exc:  # a broken third-party plugin must not break mmaip
                self._warn(
                    f"plugin '{ep.name}' from {package} failed to load and was skipped: {type(exc).__name__}: {exc}"
                )
                continue
            self.register(module, name, package=package, version=version)

    def _call(self, hook_name: str, impl: pluggy.HookImpl, **kwargs: Any) -> Any:
        """Call one plugin's implementation of a hook (so results stay attributed to their plugin)."""
        if self._trace:
            print(f"mmaip: {hook_name}({', '.join(kwargs)}) -> plugin '{impl.plugin_name}'", file=sys.stderr)
        return impl.function(**kwargs)

    def _collect(self) -> dict[str, dict[str, list[Registered]]]:
        if self._registry is not None:
            return self._registry
        registry: dict[str, dict[str, list[Registered]]] = {kind: {} for kind in _HOOKS}
        for kind, hook_name in _HOOKS.items():
            spec_cls = PLUGIN_KINDS[kind]
            for impl in getattr(self._pm.hook, hook_name).get_hookimpls():
                package, version = self._sources.get(impl.plugin_name, ("(local)", None))
                try:
                    specs = list(self._call(hook_name, impl) or [])
                    for spec in specs:
                        if not isinstance(spec, spec_cls):
                            raise TypeError(f"{hook_name} returned {type(spec).__name__}, not {spec_cls.__name__}")
                except Exception as exc:  # one broken plugin must not hide the others
                    self._warn(
                        f"plugin '{impl.plugin_name}' from {package} failed in {hook_name} and was skipped: "
                        f"{type(exc).__name__}: {exc}"
                    )
                    continue
                module = getattr(impl.plugin, "__name__", type(impl.plugin).__name__)
                for spec in specs:
                    if {(kind, spec.name, None), (kind, spec.name, package)} & self._disabled_specs:
                        continue
                    entry = Registered(spec, impl.plugin_name, module, package, version)
                    registry[kind].setdefault(spec.name, []).append(entry)
        self._registry = registry
        return registry

    # --- lookups ----------------------------------------------------------------------------------

    def names(self, kind: str) -> list[str]:
        """Sorted names registered for ``kind``."""
        return sorted(self._registry_for(kind))

    def _registry_for(self, kind: str) -> dict[str, list[Registered]]:
        registry = self._collect()
        if kind not in registry:
            raise UnknownPluginError("plugin kind", kind, list(registry))
        return registry[kind]

    def get(self, kind: str, name: str) -> Registered:
        """The plugin of ``kind`` called ``name``; unknown or duplicated names raise a UserError."""
        entries = self._registry_for(kind)
        key = _normalise(name)
        found = entries.get(key)
        if not found:
            raise UnknownPluginError(kind, name, list(entries))
        if len(found) > 1:
            raise DuplicatePluginError(kind, key, [e.provider for e in found])
        return found[0]

    def duplicates(self) -> list[DuplicatePluginError]:
        """Every name registered more than once, as the error its lookup would raise."""
        return [
            DuplicatePluginError(kind, name, [e.provider for e in entries])
            for kind, by_name in self._collect().items()
            for name, entries in sorted(by_name.items())
            if len(entries) > 1
        ]

    def options(self, kind: str, name: str, values: Mapping[str, Any] | None = None) -> PluginOptions:
        """Validate ``values`` against the options model of plugin ``kind``/``name``."""
        spec = self.get(kind, name).spec
        try:
            return spec.options.model_validate(dict(values or {}))
        except ValidationError as exc:
            raise PluginConfigError(kind, spec.name, render_validation_error(exc, spec.options)) from None

    def nested_problems(self, options: PluginOptions, path: str) -> list[str]:
        """Every problem of the plugin sections inside ``options`` (options marked :class:`PluginSection`), each
        named by its path under ``path`` (``evaluators.1.judge.max_frames: ...``), deeper sections included."""
        problems: list[str] = []
        for name, field in type(options).model_fields.items():
            marker = next((m for m in field.metadata if isinstance(m, PluginSection)), None)
            value = getattr(options, name)
            if marker is None or value is None:
                continue
            sections = list(enumerate(value)) if isinstance(value, list) else [(None, value)]
            for index, section in sections:
                where = ".".join(str(part) for part in (path, name, index) if part not in ("", None))
                problems.extend(self._section_problems(marker, section, where))
        return problems

    def _section_problems(self, marker: PluginSection, section: Any, path: str) -> list[str]:
        """The problems of one nested plugin section: its plugin's name, its options, its own nested sections."""
        if not isinstance(section, Mapping) or marker.selector not in section:
            return [f"{path}: must be a mapping of '{marker.selector}' (the {marker.kind} plugin) and its options"]
        try:
            spec = self.get(marker.kind, str(section[marker.selector])).spec
        except UserError as exc:
            return [f"{path}.{marker.selector}: {exc}"]
        try:
            options = spec.options.model_validate({k: v for k, v in section.items() if k != marker.selector})
        except ValidationError as exc:
            return render_validation_error(exc, spec.options, prefix=path)
        return self.nested_problems(options, path)

    @overload
    def create(
        self,
        kind: Literal["generator"],
        name: str,
        values: Mapping[str, Any] | None = ...,
        prices: PriceTable | None = ...,
    ) -> ResponseGenerator: ...
    @overload
    def create(
        self,
        kind: Literal["scorer"],
        name: str,
        values: Mapping[str, Any] | None = ...,
        prices: PriceTable | None = ...,
    ) -> Scorer: ...
    @overload
    def create(
        self,
        kind: Literal["pair-strategy"],
        name: str,
        values: Mapping[str, Any] | None = ...,
        prices: PriceTable | None = ...,
    ) -> PairStrategy: ...
    @overload
    def create(
        self,
        kind: Literal["reference-policy"],
        name: str,
        values: Mapping[str, Any] | None = ...,
        prices: PriceTable | None = ...,
    ) -> ReferencePolicy: ...
    @overload
    def create(
        self,
        kind: Literal["evaluator"],
        name: str,
        values: Mapping[str, Any] | None = ...,
        prices: PriceTable | None = ...,
    ) -> Evaluator: ...
    @overload
    def create(
        self,
        kind: Literal["frame-sampler"],
        name: str,
        values: Mapping[str, Any] | None = ...,
        prices: PriceTable | None = ...,
    ) -> FrameSampler: ...
    @overload
    def create(
        self,
        kind: Literal["sample-reader"],
        name: str,
        values: Mapping[str, Any] | None = ...,
        prices: PriceTable | None = ...,
    ) -> SampleReader: ...
    @overload
    def create(
        self,
        kind: Literal["trainer"],
        name: str,
        values: Mapping[str, Any] | None = ...,
        prices: PriceTable | None = ...,
    ) -> PolicyTrainer: ...
    def create(
        self, kind: str, name: str, values: Mapping[str, Any] | None = None, prices: PriceTable | None = None
    ) -> Any:
        """Validate options (nested plugin sections included) and build the plugin object (a Scorer, a
        FrameSampler, ...). A plugin whose spec asks for a :class:`PluginContext` gets this manager and ``prices``
        (default: the built-in list)."""
        options = self.options(kind, name, values)
        spec = self.get(kind, name).spec
        if problems := self.nested_problems(options, ""):
            raise PluginConfigError(kind, spec.name, problems)
        if spec.context:
            return spec.factory(options, PluginContext(self, prices or PriceTable()))
        return spec.factory(options)

    def list(self, kind: str | None = None) -> list[PluginInfo]:
        """Every registered plugin (of ``kind``), sorted by kind then name; duplicates appear twice."""
        kinds = [kind] if kind else list(_HOOKS)
        return [
            entry.info() for k in kinds for _, entries in sorted(self._registry_for(k).items()) for entry in entries
        ]

    def call_register_commands(self, app: Any) -> None:
        """Let every plugin add CLI commands to ``app``; a failing plugin warns and is skipped."""
        for impl in self._pm.hook.mmaip_register_commands.get_hookimpls():
            try:
                self._call("mmaip_register_commands", impl, app=app)
            except Exception as exc:
                self._warn(f"plugin '{impl.plugin_name}' failed to add commands: {type(exc).__name__}: {exc}")

    def call_round_pairs(
        self, round: int, model: str, reference: str, pairs: Sequence[TrainPair]
    ) -> Sequence[TrainPair]:
        """Extra pairs every ``mmaip_round_pairs`` implementation adds to a round (``model``: the model the round
        starts from, ``reference``: its reference); a failure stops the run. Each implementation gets the
        arguments it names, as pluggy would give them."""
        extra: tuple[TrainPair, ...] = ()
        given = {"round": round, "model": model, "reference": reference}
        for impl in self._pm.hook.mmaip_round_pairs.get_hookimpls():
            offered = {**given, "pairs": list(pairs)}  # a list of its own for each implementation
            arguments = {name: value for name, value in offered.items() if name in impl.argnames}
            try:
                added = self._call("mmaip_round_pairs", impl, **arguments)
            except Exception as exc:
                raise PluginError("round-pairs hook", impl.plugin_name, f"failed: {type(exc).__name__}: {exc}") from exc
            extra += tuple(TrainPair.model_validate(p) for p in added or [])
        return extra


@cache
def get_plugin_manager() -> PluginManager:
    """The process-wide manager with every entry-point plugin loaded (created on first use)."""
    return PluginManager()
