"""The run config: one YAML (or TOML) file, validated by pydantic, with one section per plugin choice.

Each plugin section names its plugin with one key (``reader``, ``sampler``, ``generator``, ``name``,
``strategy``); every other key of the section is an option of that plugin and is validated by the
plugin's own options model. :func:`load_config` reports every problem of a file at once. Relative
paths in plugin options are taken relative to the config file's folder.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from mmaip_core.calls.pricing import Price
from mmaip_core.errors import ConfigError, UserError
from mmaip_core.frames.loader import FrameSettings
from mmaip_core.plugins.kinds import HubOrFolder, PluginOptions, PluginSection
from mmaip_core.plugins.manager import PluginManager
from mmaip_core.validation import render_validation_error

__all__ = [
    "MAX_ANSWERS",
    "MAX_ROUNDS",
    "BenchmarkConfig",
    "EvaluatorConfig",
    "GenerationSettings",
    "PairsConfig",
    "PluginChoice",
    "ReferenceChoice",
    "RunConfig",
    "SamplesConfig",
    "ScorerConfig",
    "SftConfig",
    "TrainConfig",
    "TrainerChoice",
    "ZooEntry",
    "load_config",
    "read_config_file",
    "resolve_again",
]

MAX_ANSWERS = 256
"""Most answers per question and zoo entry: every answer is a request object held for the whole stage."""
MAX_ROUNDS = 100
"""Most training rounds: each round keeps its checkpoints on disk."""


class PluginChoice(BaseModel):
    """A config section that picks one plugin by name; its other keys are that plugin's options."""

    model_config = ConfigDict(extra="allow")
    kind: ClassVar[str]
    selector: ClassVar[str]

    @property
    def plugin(self) -> str:
        return str(getattr(self, self.selector))

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class SamplesConfig(PluginChoice):
    """``samples``: where the video questions come from."""

    kind: ClassVar[str] = "sample-reader"
    selector: ClassVar[str] = "reader"
    reader: str = Field(default="jsonl", description="Sample reader plugin.")


class ZooEntry(PluginChoice):
    """One member of the zoo: a generator plugin, its model and options, and how many answers."""

    kind: ClassVar[str] = "generator"
    selector: ClassVar[str] = "generator"
    name: str = Field(description="Unique name of this zoo member, recorded on every response.")
    generator: str = Field(description="Generator plugin (hf, openai, anthropic, smoke, ...).")
    n: int = Field(default=1, ge=1, le=MAX_ANSWERS, description=f"Answers per question (at most {MAX_ANSWERS}).")


class ScorerConfig(PluginChoice):
    """``scorer``: the external scoring function."""

    kind: ClassVar[str] = "scorer"
    selector: ClassVar[str] = "name"
    name: str = Field(description="Scorer plugin.")


class PairsConfig(PluginChoice):
    """``pairs``: how scored answers become preference pairs."""

    kind: ClassVar[str] = "pair-strategy"
    selector: ClassVar[str] = "strategy"
    strategy: str = Field(default="best-worst", description="Pair strategy plugin.")


class GenerationSettings(BaseModel):
    """``generation`` of a benchmark: how every model answers it, over each model's own ``params`` (the option
    of the generators that holds their sampling parameters, under these names)."""

    model_config = ConfigDict(extra="forbid")

    max_new_tokens: int | None = Field(default=None, ge=1, description="Most tokens of an answer.")
    temperature: float | None = Field(default=None, ge=0, description="Sampling temperature; 0 is greedy.")
    top_p: float | None = Field(default=None, gt=0, le=1, description="Nucleus sampling's probability mass.")


class BenchmarkConfig(PluginChoice):
    """One entry of ``benchmarks`` (evaluation): a named dataset read by a sample reader, with optional settings
    of its own for the models' answers (``generation``) and the frames (``frames``)."""

    kind: ClassVar[str] = "sample-reader"
    selector: ClassVar[str] = "reader"
    name: str = Field(description="Benchmark name, recorded on every verdict.")
    reader: str = Field(default="jsonl", description="Sample reader plugin.")
    generation: GenerationSettings | None = Field(
        default=None, description="Generation settings of every model on this benchmark, over the model's params."
    )
    frames: dict[str, Any] | None = Field(
        default=None,
        description="Frame settings of this benchmark over the run's frames section (num_frames, sampler, max_side, "
        "...); a different sampler starts from its own defaults.",
    )

    def model_entry(self, entry: ZooEntry) -> ZooEntry:
        """``entry`` as it answers this benchmark: ``generation`` over its ``params``."""
        settings = self.generation.model_dump(exclude_none=True) if self.generation else {}
        if not settings:
            return entry
        return entry.model_copy(update={"params": {**(entry.options.get("params") or {}), **settings}})

    def frame_settings(self, run_frames: FrameSettings) -> FrameSettings:
        """The frames of this benchmark: ``frames`` over the run's section ``run_frames`` (whose sampler options
        are dropped when ``frames`` names another sampler)."""
        if not self.frames:
            return run_frames
        values = run_frames.model_dump(exclude_none=True)
        if self.frames.get("sampler", run_frames.sampler) != run_frames.sampler:
            values = {k: v for k, v in values.items() if k in FrameSettings.model_fields}
        return FrameSettings.model_validate({**values, **self.frames})


class EvaluatorConfig(PluginChoice):
    """One entry of ``evaluators`` (evaluation): ``{name: vision-judge, ...}``, or an instance with its own name,
    ``{name: gpt4o-vision, evaluator: vision-judge, ...}``, so that two of one plugin sit side by side."""

    kind: ClassVar[str] = "evaluator"
    selector: ClassVar[str] = "name"
    name: str = Field(
        description="The evaluator's name in verdicts, results, report and drift; also its plugin (vision-judge, "
        "text-judge, reference, exact-match, ...) when 'evaluator' is not given."
    )
    evaluator: str | None = Field(default=None, description="Evaluator plugin, when 'name' names an instance of it.")

    @property
    def plugin(self) -> str:
        return self.evaluator or self.name


class TrainerChoice(PluginChoice):
    """``train.trainer``: the trainer plugin and its options."""

    kind: ClassVar[str] = "trainer"
    selector: ClassVar[str] = "name"
    name: str = Field(default="video-dpo", description="Trainer plugin.")


class ReferenceChoice(PluginChoice):
    """``train.reference``: the reference-update policy and its options."""

    kind: ClassVar[str] = "reference-policy"
    selector: ClassVar[str] = "policy"
    policy: str = Field(default="extrapolated", description="fixed, previous, extrapolated (the paper) or ema.")


class TrainConfig(BaseModel):
    """``train`` (``mmaip train``): Iter-W2S-RLAIF rounds of preference optimisation."""

    model_config = ConfigDict(extra="forbid")

    pairs: Path = Field(
        description="Pair file or folder: a build's pairs.jsonl, any mmaip export, {id, video, prompt, chosen, "
        "rejected} JSON Lines, TRL preference data (parquet, a Hub-style or save_to_disk dataset folder) or "
        "LLaVA-Hound-DPO files; relative to the config."
    )
    rounds: int = Field(default=2, ge=1, le=MAX_ROUNDS, description=f"Number of rounds T (at most {MAX_ROUNDS}).")
    alpha: float = Field(
        default=0.3,
        ge=0,
        allow_inf_nan=False,
        description="ExPO alpha: strong = policy + alpha * (policy - anchor); 0 turns it off.",
    )
    anchor: Literal["reference", "base"] = Field(
        default="reference", description="Extrapolate away from this round's reference or from the base model."
    )
    extrapolate_vision: bool = Field(default=False, description="Extrapolate the vision tower and projector too.")
    reference: ReferenceChoice = Field(default_factory=ReferenceChoice)
    schedule: Literal["all", "shards"] = Field(
        default="all", description="all: every pair every round; shards: T disjoint shards, one per round."
    )
    seed: int = Field(default=0, description="Seed of the shard split and of the held-out split.")
    eval_pairs: Path | None = Field(
        default=None,
        description="Held-out pair file or folder (any format `pairs` reads), scored after every round (eval "
        "loss, reward accuracy).",
    )
    eval_fraction: float = Field(
        default=0.0, ge=0, lt=1, description="Share of the pairs held out (seeded by `seed`) instead of eval_pairs."
    )
    keep: Literal["last", "best"] = Field(
        default="last", description="Final model: the last round's, or the round's with the best eval accuracy."
    )
    frames: FrameSettings | None = Field(
        default=None, description="Training frames (default: the run's frames section)."
    )
    trainer: TrainerChoice = Field(default_factory=TrainerChoice)

    @model_validator(mode="after")
    def _held_out(self) -> TrainConfig:
        if self.eval_pairs is not None and self.eval_fraction > 0:
            raise ValueError("give eval_pairs or eval_fraction, not both")
        if self.keep == "best" and self.eval_pairs is None and self.eval_fraction == 0:
            raise ValueError("keep: best needs held-out pairs (eval_pairs or eval_fraction)")
        return self


class SftConfig(BaseModel):
    """``sft`` (``mmaip sft``): the model to fine-tune; every other key is an option of supervised fine-tuning,
    validated by the command (``SftOptions`` of the bundled trainers)."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(description="Hub id or folder of the model to fine-tune.")

    @property
    def options(self) -> dict[str, Any]:
        """The SFT options: every key but ``model``."""
        return dict(self.model_extra or {})


_LISTS: dict[str, type[PluginChoice]] = {
    "zoo": ZooEntry,
    "models": ZooEntry,
    "benchmarks": BenchmarkConfig,
    "evaluators": EvaluatorConfig,
}


def _repeated_names(entries: list[Any]) -> list[str]:
    names = [entry.name for entry in entries]
    return sorted({n for n in names if names.count(n) > 1})


class RunConfig(BaseModel):
    """A whole run config."""

    model_config = ConfigDict(extra="forbid")

    samples: SamplesConfig | None = None
    frames: FrameSettings = Field(default_factory=FrameSettings)
    zoo: list[ZooEntry] = Field(default_factory=list)
    scorer: ScorerConfig | None = None
    pairs: PairsConfig = Field(default_factory=PairsConfig)
    prices: dict[str, Price] = Field(
        default_factory=dict, description="USD per million tokens by model id, over the built-in table."
    )
    benchmarks: list[BenchmarkConfig] = Field(default_factory=list, description="Evaluation: the datasets.")
    models: list[ZooEntry] = Field(default_factory=list, description="Evaluation: the models under evaluation.")
    evaluators: list[EvaluatorConfig] = Field(default_factory=list, description="Evaluation: the evaluators.")
    train: TrainConfig | None = Field(default=None, description="Training (mmaip train).")
    sft: SftConfig | None = Field(default=None, description="Supervised fine-tuning (mmaip sft).")

    @model_validator(mode="after")
    def _unique_names(self) -> RunConfig:
        for section in _LISTS:
            if duplicated := _repeated_names(getattr(self, section)):
                raise ValueError(f"{section} names must be unique; repeated: {', '.join(duplicated)}")
        return self

    def choices(self) -> Iterator[tuple[str, PluginChoice]]:
        """Every plugin choice with its location in the file (``zoo.1``, ``scorer``, ...)."""
        if self.samples is not None:
            yield "samples", self.samples
        for i, entry in enumerate(self.zoo):
            yield f"zoo.{i}", entry
        if self.scorer is not None:
            yield "scorer", self.scorer
        yield "pairs", self.pairs
        for section in ("benchmarks", "models", "evaluators"):
            for i, choice in enumerate(getattr(self, section)):
                yield f"{section}.{i}", choice
        if self.train is not None:
            yield "train.trainer", self.train.trainer
            yield "train.reference", self.train.reference

    def resolved(self, manager: PluginManager) -> dict[str, Any]:
        """The config with every plugin's defaults filled in, as plain JSON-able data."""
        data = self.model_dump(mode="json", exclude_none=True)
        for location, choice in self.choices():
            options = manager.options(choice.kind, choice.plugin, choice.options)
            section: dict[str, Any] = choice.model_dump(mode="json", exclude=set(choice.options), exclude_none=True)
            section.update(options.model_dump(mode="json"))
            _set(data, location, section)
        for frames, where in self.frame_sections():
            sampler = manager.options("frame-sampler", frames.sampler, frames.sampler_options)
            (data["train"]["frames"] if where == "train.frames" else data["frames"]).update(
                sampler.model_dump(mode="json")
            )
        return data

    def frame_sections(self) -> Iterator[tuple[FrameSettings, str]]:
        """Every frames section with its location: ``frames`` and, when given, ``train.frames``."""
        yield self.frames, "frames"
        if self.train is not None and self.train.frames is not None:
            yield self.train.frames, "train.frames"


def resolve_again(sections: Mapping[str, Any], manager: PluginManager) -> dict[str, Any]:
    """Resolved config sections, as a run folder remembers them, resolved once more with today's plugins and
    config models: an option added since they were remembered takes its default, the value the run that
    remembered them effectively used. A section that is not a config section (``previous``), or that no longer
    resolves (a plugin or option since removed), stays as it was, so that its difference is still shown."""
    again = dict(sections)
    for name, value in sections.items():
        if name not in RunConfig.model_fields:
            continue
        try:
            again[name] = RunConfig.model_validate({name: value}).resolved(manager)[name]
        except (ValidationError, UserError):
            continue
    return again


_SECTIONS: dict[str, type[BaseModel]] = {
    "samples": SamplesConfig,
    "frames": FrameSettings,
    "scorer": ScorerConfig,
    "pairs": PairsConfig,
    "train": TrainConfig,
    "sft": SftConfig,
}


def _set(data: dict[str, Any], location: str, value: Any) -> None:
    head, _, rest = location.partition(".")
    if not rest:
        data[head] = value
    elif isinstance(data[head], list):
        data[head][int(rest)] = value
    else:
        _set(data[head], rest, value)


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Parse a YAML (``.yaml``/``.yml``) or TOML (``.toml``) file into a mapping."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
    except UnicodeDecodeError as exc:
        raise ConfigError([f"not UTF-8 text: {exc}"], source=str(path)) from None
    except (yaml.YAMLError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError([f"cannot parse: {exc}"], source=str(path)) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(["the file must hold a mapping of sections"], source=str(path))
    return data


def _path_fields(model: type[BaseModel]) -> list[str]:
    return [
        name
        for name, field in model.model_fields.items()
        if field.annotation is Path or Path in get_args(field.annotation)
    ]


def _folder_fields(model: type[BaseModel]) -> list[str]:
    return [
        name for name, field in model.model_fields.items() if any(isinstance(m, HubOrFolder) for m in field.metadata)
    ]


def _hub_or_folder(value: str, base: Path) -> str:
    """A model's hub id as it is, its folder taken from the config's folder ``base`` (see :class:`HubOrFolder`)."""
    path = Path(value).expanduser()
    if path.is_absolute():
        return str(path)
    if (base / path).exists() or value.startswith(".") or value.count("/") > 1:
        return str(base / path)
    return value


def _with_paths(
    values: Mapping[str, Any], options: PluginOptions, manager: PluginManager, base: Path
) -> dict[str, Any]:
    """A plugin's options as given in the file (``values``, validated as ``options``) with their paths taken from
    the config's folder ``base``: ``~`` expanded, relative ones from ``base``; so are model folders (options
    marked :class:`HubOrFolder`), also in the plugin sections they hold (options marked :class:`PluginSection`)."""
    given = dict(values)
    for name in _path_fields(type(options)):
        value = getattr(options, name)
        if isinstance(value, Path) and name in values:
            value = value.expanduser()
            given[name] = str(value if value.is_absolute() else base / value)
    for name in _folder_fields(type(options)):
        value = getattr(options, name)
        if isinstance(value, str) and name in values:
            given[name] = _hub_or_folder(value, base)
    for name, field in type(options).model_fields.items():
        marker = next((m for m in field.metadata if isinstance(m, PluginSection)), None)
        if marker is not None and name in values:
            given[name] = _nested_paths(values[name], marker, manager, base)
    return given


def _nested_paths(value: Any, marker: PluginSection, manager: PluginManager, base: Path) -> Any:
    """A nested plugin section (or a list of them) with its paths taken from ``base`` (see :func:`_with_paths`);
    one that does not validate stays as it is (the config check reports it)."""
    if isinstance(value, list):
        return [_nested_paths(item, marker, manager, base) for item in value]
    if not isinstance(value, Mapping) or marker.selector not in value:
        return value
    values = {k: v for k, v in value.items() if k != marker.selector}
    try:
        options = manager.options(marker.kind, str(value[marker.selector]), values)
    except UserError:
        return value
    return {marker.selector: value[marker.selector], **_with_paths(values, options, manager, base)}


def _resolve_paths(choice: PluginChoice, options: PluginOptions, manager: PluginManager, base: Path) -> None:
    """The paths of a plugin section given in the file, taken from the config's folder (see :func:`_with_paths`)."""
    for name, value in _with_paths(choice.options, options, manager, base).items():
        setattr(choice, name, value)


def _has_required(model: type[BaseModel], entry: Any) -> bool:
    return isinstance(entry, dict) and all(k in entry for k, f in model.model_fields.items() if f.is_required())


def _validate_sections(data: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Validate each section (and each zoo entry) on its own, so one bad section hides no other error."""
    fields = RunConfig.model_fields
    valid: dict[str, Any] = {}
    problems = [
        f"{key}: unknown key '{key}'; allowed keys: {', '.join(sorted(fields))}" for key in data if key not in fields
    ]
    for name, value in data.items():
        if name not in fields:
            continue
        if name in _LISTS:
            if not isinstance(value, list):
                problems.append(f"{name}: must be a list of entries")
                continue
            entries = []
            for i, entry in enumerate(value):
                try:
                    entries.append(_LISTS[name].model_validate(entry))
                except ValidationError as exc:
                    problems.extend(render_validation_error(exc, _LISTS[name], prefix=f"{name}.{i}"))
                    if _has_required(_LISTS[name], entry):  # kept unvalidated, so later entries keep their index
                        entries.append(_LISTS[name].model_construct(**entry))
            valid[name] = entries
            continue
        if value is None:  # an empty section: as if absent
            continue
        if name == "prices":
            try:
                valid[name] = TypeAdapter(dict[str, Price]).validate_python(value)
            except ValidationError as exc:
                problems.extend(render_validation_error(exc, prefix=name))
            continue
        model = _SECTIONS[name]
        try:
            valid[name] = model.model_validate(value)
        except ValidationError as exc:
            problems.extend(render_validation_error(exc, model, prefix=name))
    return valid, problems


def load_config(path: str | Path, manager: PluginManager) -> RunConfig:
    """Read and validate a run config; raise one ConfigError listing every problem found."""
    path = Path(path)
    valid, problems = _validate_sections(read_config_file(path))
    config = RunConfig.model_construct(**valid)  # absent or invalid sections take their defaults
    for section in _LISTS:
        if duplicated := _repeated_names(getattr(config, section)):
            problems.append(f"{section}: {section} names must be unique; repeated: {', '.join(duplicated)}")
    base = path.resolve().parent
    checks = [(loc, c.kind, c.plugin, c.options, c) for loc, c in config.choices()]
    frames_checks = [(loc, "frame-sampler", f.sampler, f.sampler_options, None) for f, loc in config.frame_sections()]
    for location, kind, name, values, choice in [*checks, *frames_checks]:
        try:
            options = manager.options(kind, name, values)
        except ConfigError as exc:
            problems.extend(f"{location}: {p}" for p in exc.problems)
            continue
        except UserError as exc:
            problems.append(f"{location}: {exc}")
            continue
        problems.extend(manager.nested_problems(options, location))
        if choice is not None:
            _resolve_paths(choice, options, manager, base)
    for frames, _ in config.frame_sections():
        if frames.cache_dir is not None:
            cache_dir = frames.cache_dir.expanduser()
            frames.cache_dir = cache_dir if cache_dir.is_absolute() else base / cache_dir
    if config.train is not None:
        pairs = config.train.pairs.expanduser()
        config.train.pairs = pairs if pairs.is_absolute() else base / pairs
        if config.train.eval_pairs is not None:
            held_out = config.train.eval_pairs.expanduser()
            config.train.eval_pairs = held_out if held_out.is_absolute() else base / held_out
    problems.extend(_benchmark_problems(config, manager))
    if problems:
        raise ConfigError(problems, source=str(path))
    return config


def _benchmark_problems(config: RunConfig, manager: PluginManager) -> list[str]:
    """What is wrong with each benchmark's ``frames`` and ``generation`` as they apply to the run's frames section
    and to every model, each problem named by its benchmark."""
    problems: list[str] = []
    for i, benchmark in enumerate(config.benchmarks):
        where = f"benchmarks.{i} ({benchmark.name})"
        if isinstance(benchmark.frames, dict) and benchmark.frames:
            try:
                frames = benchmark.frame_settings(config.frames)
                manager.options("frame-sampler", frames.sampler, frames.sampler_options)
            except ValidationError as exc:
                problems.extend(render_validation_error(exc, FrameSettings, prefix=f"{where}.frames"))
            except ConfigError as exc:
                problems.extend(f"{where}.frames: {p}" for p in exc.problems)
            except UserError as exc:
                problems.append(f"{where}.frames: {exc}")
        if not isinstance(benchmark.generation, GenerationSettings):
            continue
        for j, entry in enumerate(config.models):
            model = benchmark.model_entry(entry)
            try:
                manager.options("generator", model.plugin, model.options)
            except ConfigError as exc:
                problems.extend(f"{where}.generation: models.{j} ({entry.name}): {p}" for p in exc.problems)
            except UserError:
                continue  # an unknown generator: reported with the model
    return problems
