"""The ``mmaip`` command line (a typer app). It parses arguments, calls the core and prints.

Installed as ``mmaip_cli.cli``; the console script ``mmaip`` runs :func:`main`.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import traceback
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
import yaml
from pydantic import ValidationError
from rich.console import Console
from rich.markdown import Markdown
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

import mmaip_core
from mmaip_core import MmaipError, PluginManager, UserError, get_plugin_manager
from mmaip_core.analysis.report import format_estimate, format_number, format_percent
from mmaip_core.config import RunConfig, load_config
from mmaip_core.errors import ConfigError, EmptyRunError, PluginConfigError, did_you_mean
from mmaip_core.frames import MAX_SIDE, FrameLoader, FrameSettings
from mmaip_core.plugins.kinds import PLUGIN_KINDS
from mmaip_core.plugins.options_table import option_rows
from mmaip_core.records import RECORDS, PluginInfo, record_schema
from mmaip_core.store.redaction import redact, redact_text
from mmaip_core.validation import render_validation_error

if TYPE_CHECKING:
    from mmaip_core.analysis.compare import Comparison
    from mmaip_core.plugins.kinds import Frames
    from mmaip_core.records import FrameManifest, TrainManifest
    from mmaip_core.stages.build import BuildPlan, BuildSummary
    from mmaip_core.stages.drift import DriftReport
    from mmaip_core.stages.evaluate import EvalResults
    from mmaip_core.stages.publish import HubUpload
    from mmaip_core.stages.run import ErrorCount
    from mmaip_core.stages.stream import Shard

app = typer.Typer(
    name="mmaip",
    help="Align video LLMs with preference data from multi-AI feedback.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,  # click's plain help: flags as --dry-run / --no-dry-run, not `--dry-run <bool>`
)
config_app = typer.Typer(help="Work with run configs.", no_args_is_help=True, rich_markup_mode=None)
app.add_typer(config_app, name="config")

LOG_WIDTH = 200
"""Columns of what is printed to a file or a pipe (a log), where rich would assume 80 and cut names short."""


def _console(stderr: bool = False) -> Console:
    """A console as wide as the terminal, or LOG_WIDTH wide when writing to a log (COLUMNS, if set, wins)."""
    stream = sys.stderr if stderr else sys.stdout
    wide = not stream.isatty() and "COLUMNS" not in os.environ
    return Console(stderr=stderr, soft_wrap=True, width=LOG_WIDTH if wide else None)


console = _console()
T = TypeVar("T")
err_console = _console(stderr=True)
_state = {"debug": False}


def _manager() -> PluginManager:
    return get_plugin_manager()


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False, default=str) + "\n")


def _version(value: bool) -> None:
    if value:
        console.print(f"mmaip {mmaip_core.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
    debug: Annotated[bool, typer.Option("--debug/--no-debug", help="Show tracebacks and debug logs.")] = False,
) -> None:
    _state["debug"] = debug


class _LowerLevelFormatter(logging.Formatter):
    """'level: message' lines (with --debug: 'LEVEL logger: message' and tracebacks), every credential in
    them redacted (the HTTP libraries' debug logs print request URLs as they are)."""

    def __init__(self, debug: bool) -> None:
        super().__init__("%(levelname)s %(name)s: %(message)s")
        self.debug = debug

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record) if self.debug else f"{record.levelname.lower()}: {record.getMessage()}"
        return redact_text(text)


def _setup_logging(debug: bool) -> None:
    """Warnings (and with --debug, debug logs) go to stderr as 'level: message' lines, without credentials."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_LowerLevelFormatter(debug))
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, handlers=[handler], force=True)


def _check_kind(kind: str | None) -> str | None:
    if kind is not None and kind not in PLUGIN_KINDS:
        raise typer.BadParameter(
            f"'{kind}' is no plugin kind; choose one of: {', '.join(PLUGIN_KINDS)}.{did_you_mean(kind, PLUGIN_KINDS)}"
        )
    return kind


def _named_plugins(manager: PluginManager, name: str | None, kind: str | None) -> list[PluginInfo]:
    """The plugins of ``kind`` (every kind when None) called ``name`` (every name when None)."""
    infos = manager.list(kind)
    if name is None:
        return infos
    found = [info for info in infos if info.name == name.strip().lower().replace("_", "-")]
    if not found:
        names = sorted({info.name for info in infos})
        raise UserError(f"no {kind or 'plugin'} is called '{name}'.{did_you_mean(name, names)} See: mmaip plugins")
    return found


def _print_plugin_options(manager: PluginManager, infos: list[PluginInfo], as_json: bool) -> None:
    described = [(info, option_rows(manager.get(info.kind, info.name).spec.options)) for info in infos]
    if as_json:
        _print_json(
            [{**info.model_dump(mode="json"), "options": [r.model_dump() for r in rows]} for info, rows in described]
        )
        return
    for info, rows in described:
        console.print(f"[bold]{info.kind} {info.name}[/] ({info.package}): {escape(info.description)}")
        table = _table("option", "type", "default", "description")
        for row in rows:
            table.add_row(
                row.name,
                escape(row.type),
                "(required)" if row.required else escape(row.default),
                escape(row.description),
            )
        console.print(table)


@app.command()
def plugins(
    name: Annotated[str | None, typer.Argument(help="One plugin: print its options too.")] = None,
    kind: Annotated[
        str | None, typer.Option("--kind", callback=_check_kind, help=f"Only this kind: {', '.join(PLUGIN_KINDS)}.")
    ] = None,
    options: Annotated[
        bool, typer.Option("--options/--no-options", help="Print each plugin's options: type, default, doc.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json/--no-json", help="Print a JSON list.")] = False,
) -> None:
    """List every plugin: kind, name, providing package and description; with NAME or --options, its options."""
    manager = _manager()
    infos = _named_plugins(manager, name, kind)
    if name is not None or options:
        _print_plugin_options(manager, infos, as_json)
        return
    if as_json:
        _print_json([info.model_dump(mode="json") for info in infos])
        return
    table = _table("kind", "name", "package", "description")
    for info in infos:
        table.add_row(info.kind, info.name, f"{info.package} {info.version or ''}".strip(), info.description)
    console.print(table)
    for dup in manager.duplicates():
        err_console.print(f"[yellow]warning:[/] {dup}")


@app.command()
def schema(
    record: Annotated[str | None, typer.Argument(help=f"One of: {', '.join(RECORDS)}.")] = None,
) -> None:
    """Print the JSON Schema of a record (or of every record, keyed by name)."""
    if record is None:
        _print_json({name: cls.model_json_schema() for name, cls in RECORDS.items()})
    else:
        _print_json(record_schema(record))


class Backend(StrEnum):
    auto = "auto"
    decord = "decord"
    pyav = "pyav"


def _parse_option(text: str) -> tuple[str, Any]:
    """``--set KEY=VALUE``: the key and the value read as YAML (``8`` a number, ``[a, b]`` a list)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise UserError(f"--set '{text}' is not KEY=VALUE")
    try:
        return key.strip(), yaml.safe_load(value)
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or exc
        raise UserError(f"--set '{text}': the value is not valid YAML ({problem})") from exc


def _set_option(what: str) -> Any:
    """``--set/-s KEY=VALUE`` (repeatable): a plugin's option, as in every command (``-o`` is always --out)."""
    return typer.Option(
        "--set", "-s", metavar="KEY=VALUE", help=f"{what} (repeatable; the value is read as YAML: 8, [a, b])."
    )


@app.command()
def frames(
    video: Annotated[Path, typer.Argument(help="The video file.")],
    sampler: Annotated[str, typer.Option(help="Frame sampler plugin.")] = "uniform",
    num_frames: Annotated[int | None, typer.Option("--num-frames", "-k", help="Frames to take.")] = None,
    option: Annotated[list[str] | None, _set_option("Other sampler option")] = None,
    backend: Annotated[Backend, typer.Option(help="Decoder.")] = Backend.auto,
    max_side: Annotated[
        int | None, typer.Option(help=f"Resize so the longer side is at most this (8 to {MAX_SIDE}).")
    ] = None,
    cache_dir: Annotated[Path | None, typer.Option(help="Frame cache folder.")] = None,
    cache: Annotated[bool, typer.Option("--cache/--no-cache", help="Read and write the frame cache.")] = True,
    save: Annotated[Path | None, typer.Option(help="Also write the frames as PNG files into this folder.")] = None,
    as_json: Annotated[bool, typer.Option("--json/--no-json", help="Print the FrameManifest as JSON.")] = False,
) -> None:
    """Sample frames from a video and print their manifest."""
    options = dict(_parse_option(o) for o in option or [])
    if num_frames is not None:
        options["num_frames"] = num_frames
    settings = FrameSettings.model_validate(
        {"sampler": sampler, "backend": backend.value, "max_side": max_side, "cache_dir": cache_dir, "cache": cache}
    )
    try:
        result = FrameLoader(settings, _manager()).load(video, sampler, options)
    except PluginConfigError as exc:  # the options of -k and --set, on one line
        raise UserError("; ".join(exc.problems)) from exc
    if save is not None:
        _save_frames(result, save)
    _print_manifest(result.manifest, as_json)


def _save_frames(result: Frames, folder: Path) -> None:
    """The frames as ``frame_INDEX.png`` files in ``folder`` (``mmaip frames --save``)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for index, array in zip(result.manifest.indices, result.array, strict=True):
        Image.fromarray(array).save(folder / f"frame_{index:06d}.png")


def _print_manifest(manifest: FrameManifest, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(manifest.model_dump_json(indent=2) + "\n")
        return
    table = Table(show_header=False)
    for name, value in manifest.model_dump(mode="json").items():
        table.add_row(name, str(value))
    table.add_row("key", manifest.key)
    console.print(table)


class InitKind(StrEnum):
    build = "build"
    evaluate = "evaluate"
    train = "train"


@app.command()
def init(
    kind: Annotated[InitKind, typer.Argument(help="Which config: build, evaluate or train.")],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="The config file to write (default: KIND.yaml).")
    ] = None,
    demo_data: Annotated[
        bool, typer.Option("--demo-data/--no-demo-data", help="Also write a small synthetic dataset into data/.")
    ] = False,
    force: Annotated[bool, typer.Option("--force/--no-force", help="Overwrite an existing config file.")] = False,
) -> None:
    """Write a commented config template that validates and runs offline on the demo data."""
    from mmaip_core.testbeds.templates import write_template

    for path in write_template(kind.value, out or Path(f"{kind.value}.yaml"), force=force, demo_data=demo_data):
        console.print(f"[green]wrote[/] {path}")


@config_app.command("validate")
def config_validate(file: Annotated[Path, typer.Argument(help="A YAML or TOML run config.")]) -> None:
    """Validate a run config and report every error at once (the `sft` section's options included)."""
    from mmaip_core.config import read_config_file
    from mmaip_plugins.trainers.sft_run import sft_problems

    manager = _manager()
    sft = sft_problems(read_config_file(file))
    try:
        config = load_config(file, manager)
    except ConfigError as exc:
        raise ConfigError([*exc.problems, *sft], exc.source) from None
    if sft:
        raise ConfigError(sft, str(file))
    counts = {section: len(getattr(config, section)) for section in ("zoo", "benchmarks", "models", "evaluators")}
    parts = [f"{section} {n}" for section, n in counts.items() if n]
    parts += [section for section in ("train", "sft") if getattr(config, section) is not None]
    console.print(f"[green]ok[/] {file}" + (f": {', '.join(parts)}" if parts else ""))
    if _state["debug"]:
        _print_json(redact(config.resolved(manager)))


def _progress_bar() -> tuple[Progress, Callable[[str, int, int, float], None]]:
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TextColumn("${task.fields[spent]:.4f}"),
        TimeElapsedColumn(),
        console=err_console,
        transient=False,
    )
    tasks: dict[str, TaskID] = {}

    def update(stage: str, done: int, total: int, spent: float) -> None:
        if stage not in tasks:
            tasks[stage] = bar.add_task(stage, total=total, rate="", spent=spent)
        speed = bar.tasks[tasks[stage]].speed
        rate = f"{speed:.1f}/s" if speed else ""
        bar.update(tasks[stage], completed=done, total=total, rate=rate, spent=spent)

    return bar, update


EXIT_EMPTY = 4
"""Exit code of a run with nothing to show (no input read, no call succeeded, no pair made, no usable verdict):
its outputs are written, unlike a mistake to fix (2)."""
EXIT_BUDGET = 3
"""Exit code of a build stopped by --max-cost: calls were left unmade; a rerun with a larger limit goes on."""


def _table(*headers: str, title: str | None = None) -> Table:
    """A table whose cells wrap rather than end in '…', so that two long names keep what tells them apart."""
    table = Table(title=title)
    for header in headers:
        table.add_column(header, overflow="fold")
    return table


def _reasons(counts: dict[str, int]) -> str:
    """``{"all scores tie": 9}`` in words: ``all scores tie (9)``; ``none`` when empty."""
    return ", ".join(f"{why} ({n})" for why, n in counts.items()) or "none"


def _print_errors(errors: list[ErrorCount], out: Path) -> None:
    """The failed items by stage, model and error class (the details are in OUT/errors.jsonl)."""
    if not errors:
        return
    table = _table("stage", "model", "error", "items", title="Failed items")
    for row in errors:
        table.add_row(row.stage, row.model or "–", row.error_class, str(row.count))
    console.print(table)
    console.print(f"Each failed item (model, sample, cause): {out / 'errors.jsonl'}")


def _check_budget(refused: int, max_cost: float | None) -> None:
    """Exit with EXIT_BUDGET when --max-cost left ``refused`` calls unmade."""
    if refused:
        err_console.print(
            f"[yellow]stopped by --max-cost ${max_cost}:[/] {refused} API call(s) not made "
            f"(nor paid); rerun with a larger --max-cost to go on (exit code {EXIT_BUDGET}).",
            highlight=False,
        )
        raise typer.Exit(EXIT_BUDGET)


def _check_build(summary: BuildSummary, out: Path, max_cost: float | None) -> None:
    """Exit with EXIT_BUDGET when --max-cost left calls unmade, or with EXIT_EMPTY when the build made no pair."""
    _check_budget(summary.refused_by_budget, max_cost)
    if summary.pairs == 0:
        err_console.print(
            f"[red]error:[/] no preference pair was made (questions without a pair: {_reasons(summary.skipped)}); "
            f"the answers and their scores are in {out}: `mmaip pairs {out} --strategy ...` re-pairs them.",
            highlight=False,
        )
        raise typer.Exit(EXIT_EMPTY)


def _print_summary(summary: BuildSummary, out: Path) -> None:
    table = _table("zoo model", "answers", "failed", "from ledger", "new calls", "USD", title="Build summary")
    for name, counts in summary.responses.items():
        cost = summary.cost_by_stage.get(f"generation {name}", 0.0)
        table.add_row(
            name,
            str(counts.get("done", 0)),
            str(counts.get("failed", 0)),
            str(counts.get("reused", 0)),
            str(counts.get("new", 0)),
            f"{cost:.4f}",
        )
    console.print(table)
    j = summary.judgements
    console.print(
        f"{summary.samples} questions ({summary.row_errors} bad rows, {summary.video_errors} unusable videos); "
        f"judgements: {j.get('ok', 0)} ok, {j.get('parse_failure', 0) + j.get('out_of_range', 0)} unparsed, "
        f"{j.get('error', 0)} failed ({j.get('reused', 0)} from the ledger, {j.get('new', 0)} new); "
        f"{summary.pairs} pairs; questions without a pair: {_reasons(summary.skipped)}; cost "
        f"${summary.cost_usd:.4f} (judging ${summary.cost_by_stage.get('judgement', 0.0):.4f})"
    )
    _print_errors(summary.errors, out)
    console.print(f"Output: {out}/pairs.jsonl, responses.jsonl, errors.jsonl, summary.json, run-manifest.json")


def _build_on_ray(
    config: RunConfig, out: Path, shards: int | None, address: str | None, max_cost: float | None, limit: int | None
) -> None:
    from mmaip_core.engines.ray import run_build_on_ray

    bar, update = _progress_bar()
    with bar:
        summary = run_build_on_ray(
            config, out, shards, address=address, progress=update, max_cost=max_cost, limit=limit
        )
    _print_summary(summary, out)
    _check_build(summary, out, max_cost)


def _evaluate_shard(
    config: RunConfig, out: Path, manager: PluginManager, shard: str, allow_config_change: bool, limit: int | None
) -> None:
    from mmaip_core.stages.evaluate_shards import evaluate_shard
    from mmaip_core.stages.shards import shard_folder
    from mmaip_core.stages.stream import Shard

    part = Shard.parse(shard)
    bar, update = _progress_bar()
    with bar:
        results = evaluate_shard(config, out, manager, part, update, allow_config_change, limit)
    if results is None:
        console.print(
            f"Shard {part.label} is done ({shard_folder(out, part)}); the last of the {part.count} shards to end "
            f"merges them into {out}."
        )
        return
    _print_results(results, out)


AllowChangeOption = Annotated[
    bool,
    typer.Option(
        "--allow-config-change/--no-allow-config-change",
        help="Continue in a run folder started with another config (finished calls "
        "are reused; the outputs then follow the new config).",
    ),
]
LimitOption = Annotated[
    int | None, typer.Option("--limit", min=1, help="Only the first N questions (a quick try of a config).")
]
ShardOption = Annotated[
    str | None,
    typer.Option(
        "--shard",
        help="I/N: build shard I (0-based) of N in OUT/shards/I-of-N, e.g. one per machine sharing OUT; "
        "the last shard to end merges them into OUT.",
    ),
]
EngineOption = Annotated[
    str,
    typer.Option(
        "--engine",
        help="local (this process) or ray: the build's shards as Ray tasks on the cluster at --ray-address "
        "(or RAY_ADDRESS), else on a Ray started here; needs pip install 'mmaip[ray]'.",
    ),
]
FramesOption = Annotated[
    list[str] | None,
    typer.Option(
        "--frames",
        help="Frame ablation: one setting per option (8, uniform:16, scene-change:8, "
        "fps:fps=1,max_frames=32); each runs into OUT/frames-LABEL, reported side by side.",
    ),
]


@app.command()
def build(
    config: Annotated[Path, typer.Argument(help="The run config (YAML or TOML).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder; a rerun resumes from its ledger.")],
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run/--no-dry-run", help="Print the calls and an upper-bound cost estimate; call nothing."),
    ] = False,
    max_cost: Annotated[
        float | None,
        typer.Option("--max-cost", min=0, help="USD limit for the folder (earlier runs included); stop before it."),
    ] = None,
    frames: FramesOption = None,
    allow_config_change: AllowChangeOption = False,
    limit: LimitOption = None,
    shard: ShardOption = None,
    engine: EngineOption = "local",
    shards: Annotated[
        int | None, typer.Option("--shards", min=1, help="With --engine ray: shards (default: one per CPU).")
    ] = None,
    ray_address: Annotated[
        str | None, typer.Option("--ray-address", help="With --engine ray: the cluster (default: RAY_ADDRESS).")
    ] = None,
) -> None:
    """Build preference pairs: zoo answers, scores, pairs (MMAIP-V). Resumable."""
    from mmaip_core.stages.build import plan_build
    from mmaip_core.stages.stream import WHOLE, Shard

    manager = _manager()
    run_config = load_config(config, manager)
    part = Shard.parse(shard) if shard else WHOLE
    if frames:
        if dry_run:
            raise typer.BadParameter("--dry-run plans one frame setting; leave out --frames")
        _ablate_build(run_config, frames, out, manager, max_cost, allow_config_change)
    elif dry_run:
        _print_plan(plan_build(run_config, out, manager, limit=limit, shard=part), out)
    elif engine == "ray":
        if shard:
            raise typer.BadParameter("--engine ray runs every shard; leave out --shard (use --shards N)")
        _build_on_ray(run_config, out, shards, ray_address, max_cost, limit)
    elif engine == "local":
        _build_here(run_config, out, manager, part, max_cost, allow_config_change, limit)
    else:
        raise typer.BadParameter(f"--engine {engine}: expected local or ray")


def _ablate_build(
    config: RunConfig, frames: list[str], out: Path, manager: PluginManager, max_cost: float | None, allow: bool
) -> None:
    from mmaip_core.stages.ablation import ablate_build

    bar, update = _progress_bar()
    with bar:
        ablation = ablate_build(
            config, frames, out, manager, progress=update, max_cost=max_cost, allow_config_change=allow
        )
    _print_ablation(out)
    _check_budget(ablation.refused_by_budget, max_cost)


def _print_ablation(out: Path) -> None:
    """The frame ablation's side-by-side report (build or evaluation)."""
    console.print(Markdown((out / "ablation.md").read_text()))
    console.print(f"Side by side: {out}/ablation.md and ablation.json; each setting's run in {out}/frames-*")


def _print_plan(plan: BuildPlan, out: Path) -> None:
    table = _table("stage", "model", "calls", "in ledger", "new", "estimated USD", title="Build plan (dry run)")
    for row in plan.rows:
        cells = (row.stage, row.model_id or "", str(row.calls), str(row.stored), str(row.new))
        table.add_row(*cells, f"{row.estimated_usd:.4f}")
    console.print(table)
    console.print(
        f"{plan.samples} questions on {plan.videos} videos ({plan.row_errors} bad rows, {plan.video_errors} "
        f"unusable videos); estimated cost of new calls at most ${plan.estimated_usd:.4f} "
        f"(already spent in {out}: ${plan.spent_usd:.4f}). Nothing was called."
    )
    console.print(
        f"Shard {plan.shard}; at most {plan.window} questions hold frames at once: at most {plan.frames_mb:.0f} MB "
        "(the build's memory beyond the models, whatever the number of questions)."
    )


def _build_here(
    config: RunConfig,
    out: Path,
    manager: PluginManager,
    part: Shard,
    max_cost: float | None,
    allow_config_change: bool,
    limit: int | None,
) -> None:
    """The build (or one shard of it) in this process."""
    from mmaip_core.stages.build import run_build
    from mmaip_core.stages.shards import shard_folder, shards_done

    bar, update = _progress_bar()
    with bar:
        summary = run_build(
            config, out, manager, update, max_cost, allow_config_change=allow_config_change, limit=limit, shard=part
        )
    if part.count > 1 and not shards_done(out, part.count):
        _print_summary(summary, shard_folder(out, part))
        console.print(f"Shard {part.label} is done; the last of the {part.count} shards to end merges them into {out}.")
        return
    _print_summary(summary, out)
    _check_build(summary, out, max_cost)


@app.command()
def pairs(
    run_dir: Annotated[Path, typer.Argument(help="A finished build's folder.")],
    strategy: Annotated[str, typer.Option(help="Pair strategy plugin.")] = "best-worst",
    option: Annotated[list[str] | None, _set_option("Strategy option")] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="The pairs file to write (default: RUN_DIR/pairs-STRATEGY.jsonl); pairs.jsonl stays."
        ),
    ] = None,
    replace: Annotated[
        bool,
        typer.Option(
            "--replace/--no-replace",
            help="Replace the build's pairs.jsonl and its summary's pair counts (what export and train read).",
        ),
    ] = False,
) -> None:
    """Re-pair a finished build with another strategy, without any new model call."""
    from mmaip_core.stages.build import re_pair

    if replace and out is not None:
        raise typer.BadParameter("--replace rewrites RUN_DIR/pairs.jsonl; leave out --out")
    target = None if replace else out or run_dir / f"pairs-{strategy}.jsonl"
    options = dict(_parse_option(o) for o in option or [])
    summary = re_pair(run_dir, _manager(), strategy, options, target=target)
    written = target or run_dir / "pairs.jsonl"
    console.print(f"{summary.pairs} pairs written to {written}; questions without a pair: {_reasons(summary.skipped)}")
    if summary.pairs == 0:
        err_console.print("[red]error:[/] no preference pair was made", highlight=False)
        raise typer.Exit(EXIT_EMPTY)


def _print_results(results: EvalResults, out: Path) -> None:
    table = _table(
        "evaluator", "benchmark", "model", "n", "ratio % [95% CI]", "score [95% CI]", "unreadable", title="Evaluation"
    )
    for row in sorted(results.metrics, key=lambda r: (r.evaluator, r.benchmark, r.model)):
        m = row.metrics
        ratio, score = format_estimate(m.ratio, percent=True), format_estimate(m.score)
        table.add_row(row.evaluator, row.benchmark, row.model, str(m.n), ratio, score, str(m.parse_failures))
    console.print(table)
    v = results.verdicts
    console.print(
        f"verdicts: {v.get('new', 0)} new, {v.get('reused', 0)} from the ledger; cost ${results.cost_usd:.4f}. "
        f"Output: {out}/results.json, verdicts.jsonl, report.md"
    )
    _print_errors(results.errors, out)


RejudgeOption = Annotated[
    Path | None,
    typer.Option(
        help="A finished evaluation folder: judge its predictions again with CONFIG's evaluators "
        "(no model is run) and report how much the numbers move (judge drift)."
    ),
]
RetryUnreadableOption = Annotated[
    bool,
    typer.Option(
        "--retry-unreadable/--no-retry-unreadable",
        help="Ask the judges again for the verdicts this folder's ledger holds as unreadable or imputed.",
    ),
]
AllEvaluatorPairsOption = Annotated[
    bool,
    typer.Option(
        "--all-evaluator-pairs/--like-for-like",
        help="With --rejudge: compare every old evaluator with every new one, not only those of the same name.",
    ),
]


@app.command()
def evaluate(
    config: Annotated[Path, typer.Argument(help="A config with benchmarks, models and evaluators.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder; a rerun resumes from its ledger.")],
    rejudge: RejudgeOption = None,
    frames: FramesOption = None,
    allow_config_change: AllowChangeOption = False,
    limit: LimitOption = None,
    shard: ShardOption = None,
    retry_unreadable: RetryUnreadableOption = False,
    all_evaluator_pairs: AllEvaluatorPairsOption = False,
) -> None:
    """Evaluate models on benchmarks: answers, verdicts, metrics with intervals, report. Resumable."""
    if retry_unreadable and (frames or shard or rejudge is not None):
        raise typer.BadParameter("--retry-unreadable works on a plain evaluation (no --frames, --shard, --rejudge)")
    manager = _manager()
    run_config = load_config(config, manager)
    if frames:
        if rejudge is not None:
            raise typer.BadParameter("--rejudge judges fixed predictions; it takes no --frames")
        _ablate_evaluation(run_config, frames, out, manager, allow_config_change)
    elif rejudge is not None:
        _rejudge(run_config, rejudge, out, manager, allow_config_change, all_evaluator_pairs)
    elif shard:
        _evaluate_shard(run_config, out, manager, shard, allow_config_change, limit)
    else:
        _evaluate_here(run_config, out, manager, allow_config_change, limit, retry_unreadable)


def _ablate_evaluation(config: RunConfig, frames: list[str], out: Path, manager: PluginManager, allow: bool) -> None:
    from mmaip_core.stages.ablation import ablate_evaluation

    bar, update = _progress_bar()
    with bar:
        ablate_evaluation(config, frames, out, manager, progress=update, allow_config_change=allow)
    _print_ablation(out)


def _evaluate_here(
    config: RunConfig, out: Path, manager: PluginManager, allow: bool, limit: int | None, retry_unreadable: bool
) -> None:
    """The whole evaluation in this process."""
    from mmaip_core.stages.evaluate import run_evaluation

    bar, update = _progress_bar()
    with bar:
        results = run_evaluation(
            config,
            out,
            manager,
            progress=update,
            allow_config_change=allow,
            limit=limit,
            retry_unreadable=retry_unreadable,
        )
    _print_results(results, out)


def _rejudge(
    config: RunConfig, old: Path, out: Path, manager: PluginManager, allow: bool, all_evaluator_pairs: bool
) -> None:
    """Judge the predictions of the evaluation in ``old`` again with the config's evaluators; print the drift."""
    from mmaip_core.stages.drift import rejudge

    bar, update = _progress_bar()
    with bar:
        results, drift = rejudge(
            config, old, out, manager, progress=update, allow_config_change=allow, all_pairs=all_evaluator_pairs
        )
    _print_results(results, out)
    _print_drift(drift, out)


def _print_drift(drift: DriftReport, out: Path) -> None:
    from mmaip_core.stages.drift import ranking_line

    table = _table(
        "benchmark",
        "model",
        "old → new",
        "n",
        "ratio % old → new",
        "score old → new",
        "same verdict",
        "kappa",
        title="Judge drift",
    )
    for r in drift.rows:
        same = format_percent(r.verdict_agreement)
        table.add_row(
            r.benchmark,
            r.model,
            f"{r.old} → {r.new}",
            str(r.n),
            f"{format_number(r.ratio_old, scale=100)} → {format_number(r.ratio_new, scale=100)}",
            f"{format_number(r.score_old)} → {format_number(r.score_new)}",
            same,
            format_number(r.kappa),
        )
    console.print(table)
    for ranking in drift.rankings:
        console.print(ranking_line(ranking).strip(), highlight=False)
    console.print(f"Drift: {out}/drift.json and report.md")


def _print_comparison(comparison: Comparison, out: Path) -> None:
    scorers = _table(
        "scorer", "judged", "parse failures", "pairs", "length rho", "human agreement", "cost $", title="Scorers"
    )
    for s in comparison.scorers:
        human = "–" if s.human is None or s.human.rate is None else f"{100 * s.human.rate:.1f}% of {s.human.pairs}"
        scorers.add_row(
            s.name,
            str(s.judged),
            str(s.parse_failures),
            str(s.pairs),
            format_number(s.length_bias.spearman),
            human,
            f"{s.cost_usd:.4f}",
        )
    agreement = _table("A", "B", "Spearman", "Kendall", "kappa", "same pairs", "changed A→B / B→A", title="Agreement")
    for a in comparison.agreement:
        same = f"{a.same_pairs}/{a.pair_questions}"
        agreement.add_row(
            a.a,
            a.b,
            format_number(a.spearman),
            format_number(a.kendall),
            format_number(a.kappa),
            same,
            f"{a.changed_a_to_b} / {a.changed_b_to_a}",
        )
    console.print(scorers, agreement)
    console.print(f"Output: {out}/comparison.json, judgements.jsonl, report.md (agreement.png, bias.png)")


@app.command("compare-scorers")
def compare_scorers(
    build_dir: Annotated[Path, typer.Argument(help="A finished build's folder.")],
    scorers: Annotated[str, typer.Option(help="Scorers to compare, by label, separated by commas (at least two).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder; a rerun reuses its judgements.")],
    scorer_config: Annotated[
        Path | None,
        typer.Option(
            help="YAML/TOML mapping label -> scorer section ({name: plugin, options}); a label not in it "
            "is a plugin name (with the build's options for the build's own scorer)."
        ),
    ] = None,
    human: Annotated[
        Path | None, typer.Option(help="Human-labelled pairs (JSONL: id, video, prompt|question, chosen, rejected).")
    ] = None,
) -> None:
    """Compare scoring functions on a build's answers: rank correlation, kappa, pair changes, biases, cost,
    latency and agreement with human pairs. Writes JSON and a Markdown report with PNG charts."""
    from mmaip_core.analysis.compare import compare_scorers as run_comparison
    from mmaip_core.analysis.compare import read_build, resolve_scorers

    manager = _manager()
    build_config, _, _ = read_build(build_dir)
    labels = [label.strip() for label in scorers.split(",") if label.strip()]
    chosen = resolve_scorers(labels, scorer_config, build_config, manager)
    bar, update = _progress_bar()
    with bar:
        comparison = run_comparison(build_dir, chosen, out, manager, human=human, progress=update)
    _print_comparison(comparison, out)


class ExportFormat(StrEnum):
    trl = "trl"
    parquet = "parquet"
    hf = "hf"
    llava_hound = "llava-hound"


@app.command()
def export(
    run_dir: Annotated[Path, typer.Argument(help="A finished build's folder.")],
    format: Annotated[
        ExportFormat,
        typer.Option(
            "--format",
            "-f",
            help="trl (train.parquet, or train.jsonl with --video-path), parquet "
            "(train.parquet), hf (Hub folder) or llava-hound (LLaVA-Hound-DPO's train.jsonl + frames/).",
        ),
    ] = ExportFormat.trl,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Output folder (default: RUN_DIR/export-FORMAT).")
    ] = None,
    frames_as_images: Annotated[
        bool,
        typer.Option(
            "--frames-as-images/--video-path",
            help="Store the frames the zoo saw as images (what TRL's "
            "DPOTrainer trains on), or only the video's path and a video prompt part: for trainers with "
            "video support, not TRL's DPOTrainer. llava-hound always stores the frames.",
        ),
    ] = True,
    push_to_hub: Annotated[
        str | None,
        typer.Option("--push-to-hub", help="Then upload the export with its card as this Hub dataset (user/name)."),
    ] = None,
    private: Annotated[bool, typer.Option("--private/--public", help="Create the Hub dataset private.")] = False,
) -> None:
    """Export a build's pairs for TRL's DPOTrainer, datasets.load_dataset or LLaVA-Hound-DPO, with a dataset card."""
    from mmaip_core.stages.export import FRAMES_FOLDER, export_pairs

    folder = out or run_dir / f"export-{format.value}"
    target = export_pairs(run_dir, folder, format.value, frames_as_images)
    console.print(f"Exported to {target} (dataset card: {target if target.is_dir() else target.parent}/README.md)")
    if format is ExportFormat.llava_hound:
        console.print(f"LLaVA-Hound-DPO: --data_path {target} --video_folder {target.parent / FRAMES_FOLDER}")
    if push_to_hub:
        from mmaip_core.stages.publish import push_dataset

        _print_upload(push_dataset(folder, push_to_hub, private=private))


def _print_upload(upload: HubUpload) -> None:
    where = upload.url or f"nothing uploaded (--dry-run); review {upload.folder}"
    console.print(f"{upload.repo_type} {upload.repo_id}: {len(upload.files)} files from {upload.folder}: {where}")


@app.command()
def push(
    folder: Annotated[Path, typer.Argument(help="A training run's folder (its final model) or an export folder.")],
    repo_id: Annotated[str, typer.Argument(help="The Hub repository, user/name (created when missing).")],
    private: Annotated[bool, typer.Option("--private/--public", help="Create the repository private.")] = False,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run/--no-dry-run", help="Stage the files and card (a model: in FOLDER/hub) and upload nothing."
        ),
    ] = False,
    evaluation: Annotated[
        Path | None, typer.Option("--eval", help="An `mmaip evaluate` folder whose figures go on the model card.")
    ] = None,
    dataset: Annotated[
        str | None, typer.Option("--dataset", help="The Hub dataset the model was trained on (linked from its card).")
    ] = None,
) -> None:
    """Publish a trained model or an exported dataset on the Hugging Face Hub with its card (token: HF_TOKEN)."""
    from mmaip_core.stages.publish import push as push_to

    _print_upload(push_to(folder, repo_id, private=private, dry_run=dry_run, evaluation=evaluation, dataset=dataset))


def _alphas(alpha: float | None, alphas: str | None) -> list[float]:
    if (alpha is None) == (alphas is None):
        raise typer.BadParameter("give exactly one of --alpha and --alphas")
    try:
        values = [alpha] if alpha is not None else [float(a) for a in (alphas or "").split(",") if a.strip()]
    except ValueError:
        raise typer.BadParameter(f"--alphas takes numbers separated by commas, not '{alphas}'") from None
    if not values or min(values) < 0:
        raise typer.BadParameter("alphas must be >= 0")
    return values


@app.command()
def extrapolate(
    policy: Annotated[Path, typer.Option(help="The aligned (DPO) model folder, or a LoRA adapter with --lora.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (with --alphas: one alpha-A folder each).")],
    anchor: Annotated[
        Path | None, typer.Option(help="The weaker model: the round's reference or the base (SFT) model.")
    ] = None,
    alpha: Annotated[float | None, typer.Option(help="ExPO alpha (0.3-0.5 typical; 0 returns the policy).")] = None,
    alphas: Annotated[str | None, typer.Option(help="Several alphas, e.g. 0.1,0.3,0.5.")] = None,
    include_vision: Annotated[
        bool,
        typer.Option("--include-vision/--no-include-vision", help="Extrapolate the vision tower and projector too."),
    ] = False,
    lora: Annotated[
        bool, typer.Option("--lora/--no-lora", help="POLICY is a LoRA adapter trained on top of the anchor.")
    ] = False,
    eval_config: Annotated[
        Path | None,
        typer.Option(
            help="With --alphas: evaluate each model with this config's benchmarks and evaluators "
            "(its first `models` entry, an hf generator, is the template) and choose alpha."
        ),
    ] = None,
) -> None:
    """Weak-to-strong extrapolation (ExPO): strong = policy + alpha * (policy - anchor).

    Per floating tensor, over safetensors shards (memory near one shard); non-floating tensors copied;
    vision tower and projector copied from the policy unless --include-vision. With --lora, every lora_B of
    the adapter is scaled by 1 + alpha, which is the same formula with the adapter's base as the anchor.
    Tools that write interpolation, anchor + lambda * (policy - anchor), use lambda = 1 + alpha.
    """
    values = list(dict.fromkeys(_alphas(alpha, alphas)))
    if not lora and anchor is None:
        raise typer.BadParameter("--anchor is needed (except with --lora)")
    if eval_config is None:
        _write_extrapolated(policy, anchor, values, out, alphas is not None, lora, include_vision)
        return
    if lora or alphas is None:
        raise typer.BadParameter("--eval-config needs --alphas and full checkpoints (not --lora)")
    assert anchor is not None
    _sweep_alphas(policy, anchor, values, out, include_vision, eval_config)


def _sweep_alphas(
    policy: Path, anchor: Path, values: list[float], out: Path, include_vision: bool, eval_config: Path
) -> None:
    """Extrapolate with each alpha, evaluate each model with ``eval_config`` and print the chosen alpha."""
    from mmaip_core.train.sweep import sweep_alphas

    manager = _manager()
    result = sweep_alphas(
        policy,
        anchor,
        values,
        out,
        include_vision=include_vision,
        evaluation=load_config(eval_config, manager),
        manager=manager,
    )
    for label, score in result.scores.items():
        console.print(f"alpha {label}: mean {result.evaluator} score {score if score is None else f'{score:.3f}'}")
    console.print(f"chosen alpha: {result.chosen} (written: {out / 'sweep.json'})")


def _write_extrapolated(
    policy: Path, anchor: Path | None, values: list[float], out: Path, several: bool, lora: bool, include_vision: bool
) -> None:
    """One extrapolated model (or scaled adapter with ``lora``) per alpha: in ``out``, or with ``several`` in
    ``out/alpha-A``."""
    from mmaip_core.train.extrapolate import extrapolate as extrapolate_checkpoints
    from mmaip_core.train.extrapolate import scale_lora_adapter

    for value in values:
        target = out / f"alpha-{value:g}" if several else out
        if lora:
            scale_lora_adapter(policy, value, target)
        else:
            assert anchor is not None
            report = extrapolate_checkpoints(policy, anchor, value, target, include_vision=include_vision)
            console.print(f"alpha {value:g}: {len(report.combined)} tensors extrapolated, {len(report.copied)} copied")
        console.print(f"written: {target}")


@app.command()
def train(
    config: Annotated[Path, typer.Argument(help="The run config (YAML or TOML) with a `train` section.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder: checkpoints, manifest.json, curves.png.")],
    resume: Annotated[
        bool,
        typer.Option("--resume/--no-resume", help="Continue from the last complete round (and step inside a round)."),
    ] = False,
    processes: Annotated[
        int | None,
        typer.Option(
            "--launch", min=1, help="Start this many processes with `accelerate launch` (GPUs, or CPU with gloo)."
        ),
    ] = None,
) -> None:
    """Iter-W2S-RLAIF: rounds of DPO on video, reference updates and weak-to-strong extrapolation.

    Each round trains the policy from the reference, extrapolates strong = policy + alpha * (policy - anchor),
    and sets the next reference by the reference policy (fixed, previous, extrapolated, ema). Under
    `accelerate launch -m mmaip_cli.cli train ...` (or --launch N) the processes share each round.
    """
    if processes is not None:
        _relaunch(processes)
        return
    from mmaip_core.train import run_training

    manager = _manager()
    run_config = load_config(config, manager)
    manifest = _with_bar(lambda progress: run_training(run_config, out, manager, resume=resume, progress=progress))
    from accelerate import PartialState

    if PartialState().is_main_process:  # under accelerate launch, one process reports
        _print_training(manifest, out)


def _print_training(manifest: TrainManifest, out: Path) -> None:
    table = _table(
        "round", "steps", "skipped", "pairs", "left out", "final loss", "final margin", "s", title="Training"
    )
    for r in manifest.rounds:
        curves = r.result.curves
        last = {k: f"{curves[k][-1]:.3f}" if curves.get(k) else "–" for k in ("loss", "margin")}
        table.add_row(
            str(r.round),
            str(r.result.steps),
            str(r.result.skipped_steps),
            str(r.result.pairs),
            str(len(r.result.skipped)),
            last["loss"],
            last["margin"],
            f"{r.result.wall_s:.1f}",
        )
    console.print(table)
    held_out = [f"round {r.round}: {r.result.eval['accuracy']:.3f}" for r in manifest.rounds if r.result.eval]
    if held_out:
        console.print(f"held-out reward accuracy: {', '.join(held_out)}")
    kept = f" (round {manifest.final_round}, keep: {manifest.keep})" if manifest.final_round else ""
    console.print(
        f"final model: {manifest.final}{kept}\nmanifest: {out / 'manifest.json'}; curves: {out / 'curves.png'}"
    )


def _relaunch(processes: int) -> None:
    """Run this command again under `accelerate launch` with ``processes`` processes (without --launch)."""
    import subprocess

    args, skip = [], False
    for arg in sys.argv[1:]:
        if skip:
            skip = False
        elif arg == "--launch":
            skip = True
        elif not arg.startswith("--launch="):
            args.append(arg)
    import torch

    if torch.cuda.is_available():
        launcher = ["accelerate.commands.launch", *(["--multi_gpu"] if processes > 1 else []), "--num_processes"]
    else:  # several CPU processes (gloo): torchrun sets the environment accelerate reads
        launcher = ["torch.distributed.run", "--nproc_per_node"]
    command = [sys.executable, "-m", *launcher, str(processes), "-m", "mmaip_cli.cli", *args]
    raise typer.Exit(subprocess.call(command))


@app.command("sft")
def sft_command(
    config: Annotated[Path, typer.Argument(help="A run config with `samples`, `frames` and an `sft` section.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder of the fine-tuned model (complete or absent).")],
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="Train on the first N samples only.")] = None,
) -> None:
    """Supervised fine-tuning of `sft.model` on the answers of the config's samples (answer tokens only).

    The prompt is the hf generator's; the result is a checkpoint folder that `generator: hf`, `mmaip train`
    (`model: OUT`) and `mmaip extrapolate` load. Options: docs/training.md ("Supervised fine-tuning").
    """
    from mmaip_plugins.trainers.sft_run import run_sft

    manager = _manager()
    result = run_sft(load_config(config, manager), out, manager, limit=limit)
    for item in result.skipped:
        err_console.print(f"left out {escape(item.item)}: {escape(item.message)}")
    last = f"{result.losses[-1]:.4f}" if result.losses else "–"
    console.print(
        f"{result.examples} samples, {result.steps} steps, final loss {last}, {len(result.skipped)} left out, "
        f"{result.wall_s:.1f} s\nmodel: {result.out}"
    )


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Folder for the demo data, config and build.")] = Path("demo-out"),
    videos: Annotated[int, typer.Option(min=1, help="How many synthetic videos to generate.")] = 6,
) -> None:
    """Run the bundled offline demo: synthetic videos, a build with a zoo of tiny random models, two rounds of
    DPO with extrapolation on the pairs, an evaluation of the trained model beside its base with the offline
    evaluators, and a comparison of two offline scorers on the build."""
    from mmaip_core.testbeds.demo import run_demo

    bar, update = _progress_bar()
    with bar:
        demo = run_demo(out, _manager(), videos, progress=update, train_progress=lambda t, d, n: update(t, d, n, 0.0))
    console.print(f"Demo data and config written: {demo.config}")
    _print_summary(demo.build, out / "build")
    _print_training(demo.training, out / "train")
    _print_results(demo.evaluation, out / "evaluation")
    _print_comparison(demo.comparison, out / "compare")


miniature_app = typer.Typer(
    help="The paper in miniature: ShapesQA, a trained tiny zoo, the whole method on a CPU.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(miniature_app, name="miniature")


def _with_bar(call: Callable[[Callable[[str, int, int], None]], T]) -> T:
    """``call(progress)`` under a progress bar (for steps that report no cost)."""
    bar, update = _progress_bar()
    with bar:
        return call(lambda task, done, total: update(task, done, total, 0.0))


def _miniature_settings(quick: bool, full: bool = False) -> Any:
    from mmaip_miniature import FULL, QUICK, MiniatureSettings

    if quick and full:
        raise UserError("--quick and --full exclude each other")
    return QUICK if quick else FULL if full else MiniatureSettings()


def _cache(cache: Path | None) -> Path:
    base = os.environ.get("MMAIP_CACHE_DIR") or str(Path.home() / ".cache" / "mmaip")
    return cache or Path(base) / "miniature"


QuickOption = Annotated[
    bool, typer.Option("--quick/--no-quick", help="A reduced run (seconds; the numbers are noise).")
]
CacheOption = Annotated[
    Path | None,
    typer.Option(help="Where the zoo is cached (default: $MMAIP_CACHE_DIR/miniature or ~/.cache/mmaip/miniature)."),
]


@miniature_app.command("zoo")
def miniature_zoo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the ShapesQA data.")],
    quick: QuickOption = False,
    cache: CacheOption = None,
) -> None:
    """Generate ShapesQA and fine-tune (or find cached) the zoo of tiny models."""
    from mmaip_miniature import prepare_zoo

    folders = _with_bar(
        lambda progress: prepare_zoo(out, _miniature_settings(quick), _manager(), _cache(cache), progress)
    )
    for name, folder in folders.items():
        console.print(f"{name}: {folder}")


@miniature_app.command("run")
def miniature_run(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for data, configs, runs and results.")],
    quick: QuickOption = False,
    full: Annotated[
        bool,
        typer.Option(
            "--full/--no-full",
            help="The base and the recipe chosen on validation, alpha chosen per round, every variant and control under three training seeds.",
        ),
    ] = False,
    cache: CacheOption = None,
) -> None:
    """Run the miniature end to end (build, train the variants per seed, evaluate) and print the results table."""
    from mmaip_miniature import results_table, run_miniature

    settings = _miniature_settings(quick, full)
    results = _with_bar(lambda progress: run_miniature(out, settings, _manager(), _cache(cache), progress))
    console.print("\n".join(results_table(results)), markup=False, highlight=False, soft_wrap=True)  # Markdown, as is
    console.print(
        f"Full results: {out}/results.md (training and validation fit, text-only judge, wall times, plot "
        f"results.png), {out}/results.json"
    )


def main() -> None:
    """Entry point of the ``mmaip`` console script."""
    debug = "--debug" in sys.argv[1:]
    _setup_logging(debug)
    try:
        _manager().call_register_commands(app)
        app()
    except EmptyRunError as exc:
        _fail(exc, EXIT_EMPTY, debug)
    except (UserError, ValidationError) as exc:
        _fail(exc, 2, debug)
    except (MmaipError, OSError, UnicodeError) as exc:
        _fail(exc, 1, debug)


def _fail(exc: Exception, code: int, debug: bool) -> None:
    """Print one clear line (the traceback too with --debug) and exit with ``code``."""
    if debug:
        sys.stderr.write(redact_text(traceback.format_exc()))
    if isinstance(exc, ValidationError):
        message = "; ".join(render_validation_error(exc, prefix=exc.title))
    elif isinstance(exc, OSError) and exc.filename:
        message = f"{exc.filename}: {exc.strerror or exc}"
    else:
        message = str(exc)
    err_console.print(f"[red]error:[/] {escape(redact_text(message))}", highlight=False)
    sys.exit(code)


if __name__ == "__main__":
    main()
