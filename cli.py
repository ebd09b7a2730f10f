"""The ``mmaip`` command line (a typer app). It parses arguments, calls the core and prints.

Installed as ``mmaip_cli.cli``; the console script ``mmaip`` runs :func:`main`.
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console
from rich.table import Table

import mmaip_core
from mmaip_core import MmaipError, PluginManager, UserError, get_plugin_manager
from mmaip_core.config import load_config
from mmaip_core.errors import did_you_mean
from mmaip_core.frames import FrameLoader, FrameSettings
from mmaip_core.interfaces import PLUGIN_KINDS
from mmaip_core.records import RECORDS, record_schema

app = typer.Typer(
    name="mmaip",
    help="Align video LLMs with preference data from multi-AI feedback.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
config_app = typer.Typer(help="Work with run configs.", no_args_is_help=True)
app.add_typer(config_app, name="config")

console = Console()
err = Console(stderr=True, soft_wrap=True)
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
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks and debug logs.")] = False,
) -> None:
    _state["debug"] = debug
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )


def _check_kind(kind: str | None) -> str | None:
    if kind is not None and kind not in PLUGIN_KINDS:
        raise typer.BadParameter(
            f"'{kind}' is no plugin kind; choose one of: {', '.join(PLUGIN_KINDS)}.{did_you_mean(kind, PLUGIN_KINDS)}"
        )
    return kind


@app.command()
def plugins(
    kind: Annotated[
        str | None, typer.Option("--kind", callback=_check_kind, help=f"Only this kind: {', '.join(PLUGIN_KINDS)}.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list.")] = False,
) -> None:
    """List every plugin: kind, name, providing package and description."""
    manager = _manager()
    infos = manager.list(kind)
    if as_json:
        _print_json([info.model_dump(mode="json") for info in infos])
        return
    table = Table("kind", "name", "package", "description")
    for info in infos:
        table.add_row(info.kind, info.name, f"{info.package} {info.version or ''}".strip(), info.description)
    console.print(table)
    for dup in manager.duplicates():
        err.print(f"[yellow]warning:[/] {dup}")


@app.command()
def schema(
    record: Annotated[str | None, typer.Argument(help=f"One of: {', '.join(RECORDS)}.")] = None,
) -> None:
    """Print the JSON Schema of a record (or of every record, keyed by name)."""
    if record is None:
        _print_json({name: cls.model_json_schema() for name, cls in RECORDS.items()})
    else:
        _print_json(record_schema(record))


def _parse_option(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise typer.BadParameter(f"'{text}' is not KEY=VALUE")
    return key.strip(), yaml.safe_load(value)


@app.command()
def frames(
    video: Annotated[Path, typer.Argument(help="The video file.")],
    sampler: Annotated[str, typer.Option(help="Frame sampler plugin.")] = "uniform",
    num_frames: Annotated[int | None, typer.Option("--num-frames", "-k", help="Frames to take.")] = None,
    option: Annotated[
        list[str] | None, typer.Option("--option", "-o", help="Other sampler option, KEY=VALUE (repeatable).")
    ] = None,
    backend: Annotated[str, typer.Option(help="auto, decord or pyav.")] = "auto",
    max_side: Annotated[int | None, typer.Option(help="Resize so the longer side is at most this.")] = None,
    cache_dir: Annotated[Path | None, typer.Option(help="Frame cache folder.")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Neither read nor write the frame cache.")] = False,
    save: Annotated[Path | None, typer.Option(help="Also write the frames as PNG files into this folder.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the FrameManifest as JSON.")] = False,
) -> None:
    """Sample frames from a video and print their manifest."""
    options = dict(_parse_option(o) for o in option or [])
    if num_frames is not None:
        options["num_frames"] = num_frames
    settings = FrameSettings.model_validate(
        {"sampler": sampler, "backend": backend, "max_side": max_side, "cache_dir": cache_dir, "cache": not no_cache}
    )
    result = FrameLoader(settings, _manager()).load(video, sampler, options)
    if save is not None:
        from PIL import Image

        save.mkdir(parents=True, exist_ok=True)
        for index, array in zip(result.manifest.indices, result.array, strict=True):
            Image.fromarray(array).save(save / f"frame_{index:06d}.png")
    manifest = result.manifest
    if as_json:
        sys.stdout.write(manifest.model_dump_json(indent=2) + "\n")
        return
    table = Table(show_header=False)
    for name, value in manifest.model_dump(mode="json").items():
        table.add_row(name, str(value))
    table.add_row("key", manifest.key)
    console.print(table)


@config_app.command("validate")
def config_validate(file: Annotated[Path, typer.Argument(help="A YAML or TOML run config.")]) -> None:
    """Validate a run config and report every error at once."""
    manager = _manager()
    config = load_config(file, manager)
    console.print(f"[green]ok[/] {file}: {len(config.zoo)} zoo model(s)")
    if _state["debug"]:
        _print_json(config.resolved(manager))


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Folder for the demo data, config, frame cache and manifest.")] = Path(
        "demo-out"
    ),
    videos: Annotated[int, typer.Option(help="How many synthetic videos to generate.")] = 6,
) -> None:
    """Run the bundled offline demo: synthetic videos, the demo config, frames, plugins."""
    from mmaip_core.demo import run_demo

    manager = _manager()
    result = run_demo(out, manager, num_videos=videos)
    table = Table("video", "questions", "frame indices", "backend", "frame key", title="Demo videos")
    for video, frames in result.frames.items():
        questions = sum(1 for sample in result.samples if sample.video == video)
        m = frames.manifest
        table.add_row(Path(video).name, str(questions), " ".join(map(str, m.indices)), m.backend, m.key[:12])
    console.print(table)
    kinds = Table("kind", "plugins", title="Plugins")
    for kind in PLUGIN_KINDS:
        kinds.add_row(kind, ", ".join(manager.names(kind)))
    console.print(kinds)
    for problem in result.errors:
        err.print(f"[yellow]skipped:[/] {problem}", highlight=False)
    console.print(
        f"{len(result.samples)} questions on {len(result.frames)} videos; "
        f"{result.frames_decoded} frames decoded, the rest served by the frame cache; "
        f"{len(result.config.zoo)} zoo models configured. Config: {out / 'demo.yaml'}, "
        f"manifest: {out / 'run-manifest.json'}"
    )


def main() -> None:
    """Entry point of the ``mmaip`` console script."""
    debug = "--debug" in sys.argv[1:]
    try:
        manager = _manager()
        manager.call_register_commands(app)
        for warning in manager.warnings:
            err.print(f"[yellow]warning:[/] {warning}", highlight=False)
        app()
    except UserError as exc:
        if debug:
            traceback.print_exc()
        err.print(f"[red]error:[/] {exc}", highlight=False)
        sys.exit(2)
    except MmaipError as exc:
        if debug:
            traceback.print_exc()
        err.print(f"[red]error:[/] {exc}", highlight=False)
        sys.exit(1)


if __name__ == "__main__":
    main()
