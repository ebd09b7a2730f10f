from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from helpers import MMAIP, fake_distribution

import mmaip_core
from mmaip_core import PLUGIN_KINDS, RECORDS


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([MMAIP, *args], capture_output=True, text=True, env=full_env, timeout=120)


def test_version() -> None:
    result = run("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"mmaip {mmaip_core.__version__}"


def test_plugins_json_lists_every_kind() -> None:
    result = run("plugins", "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert {row["kind"] for row in rows} == set(PLUGIN_KINDS)
    assert all({"kind", "name", "package", "description"} <= set(row) for row in rows)
    table = run("plugins", "--kind", "scorer")
    assert "exact-match" in table.stdout and "uniform" not in table.stdout


def test_plugins_rejects_an_unknown_kind() -> None:
    result = run("plugins", "--kind", "scorers")
    assert result.returncode == 2
    assert "Did you mean 'scorer'?" in result.stderr


def test_schema() -> None:
    one = json.loads(run("schema", "PreferencePair").stdout)
    assert one["title"] == "PreferencePair" and "chosen" in one["properties"]
    every = json.loads(run("schema").stdout)
    assert set(every) == set(RECORDS)
    bad = run("schema", "Judgment")
    assert bad.returncode == 2
    assert bad.stderr.strip().startswith("error: unknown record 'Judgment'")
    assert "Traceback" not in bad.stderr


@pytest.mark.parametrize("backend", ["decord", "pyav"])
def test_frames_json_with_both_backends(demo_video: Path, tmp_path: Path, backend: str) -> None:
    result = run(
        "frames",
        str(demo_video),
        "--num-frames",
        "4",
        "--backend",
        backend,
        "--json",
        "--cache-dir",
        str(tmp_path),
        "--save",
        str(tmp_path / "png"),
    )
    assert result.returncode == 0, result.stderr
    manifest = mmaip_core.FrameManifest.model_validate_json(result.stdout)
    assert manifest.indices == [0, 10, 21, 31] and manifest.backend == backend
    assert sorted(p.name for p in (tmp_path / "png").iterdir()) == [f"frame_{i:06d}.png" for i in (0, 10, 21, 31)]


def test_frames_with_sampler_options(long_video: Path, tmp_path: Path) -> None:
    result = run("frames", str(long_video), "--sampler", "fps", "-s", "fps=0.5", "--set", "max_frames=4", "--json")
    assert result.returncode == 0, result.stderr
    # 0.5 fps over 10 s would be 5 frames; above the cap of 4 the sampler takes 4 uniform frames
    assert json.loads(result.stdout)["indices"] == [0, 100, 199, 299]


def test_frames_fails_cleanly_on_a_corrupt_file(broken_videos: dict[str, Path]) -> None:
    path = broken_videos["garbage"]
    result = run("frames", str(path))
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert lines and lines[0].startswith(f"error: video {path}: corrupt")
    assert "Traceback" not in result.stderr
    debug = run("--debug", "frames", str(path))
    assert "Traceback" in debug.stderr


def test_frames_reports_a_bad_sampler_option(demo_video: Path) -> None:
    result = run("frames", str(demo_video), "--sampler", "uniform", "--set", "frames=3")
    assert result.returncode == 2
    assert "unknown key 'frames'; allowed keys: num_frames" in result.stderr


def test_config_validate(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("zoo:\n  - {name: a, generator: smoke}\nscorer: {name: exact-match}\n")
    result = run("config", "validate", str(good))
    assert result.returncode == 0 and "ok" in result.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("zoo:\n  - {name: a, generator: smok}\nscorer: {name: exact-match, partial: x}\n")
    result = run("config", "validate", str(bad))
    assert result.returncode == 2
    assert "2 configuration error(s)" in result.stderr
    assert (
        "zoo.0: unknown generator 'smok'" in result.stderr and "scorer: scorer 'exact-match': partial" in result.stderr
    )
    assert "Traceback" not in result.stderr


def test_plugins_add_commands_and_broken_plugins_only_warn(tmp_path: Path) -> None:
    hello = """
        from mmaip_core import hookimpl

        @hookimpl
        def mmaip_register_commands(app):
            @app.command()
            def hello(name: str = "world") -> None:
                print(f"hello {name}")
        """
    site = fake_distribution(
        tmp_path / "site",
        "mmaip-hello",
        {"hello": "mmaip_hello", "broken": "mmaip_broken_plugin"},
        {"mmaip_hello": hello, "mmaip_broken_plugin": "import a_module_that_does_not_exist\n"},
    )
    env = {"PYTHONPATH": str(site)}
    result = run("hello", "--name", "video", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "hello video"
    assert " ".join(result.stderr.split()).count("warning: plugin 'broken' from mmaip-hello failed to load") == 1
    disabled = run("hello", env={**env, "MMAIP_DISABLE_PLUGINS": "hello,broken"})
    assert disabled.returncode != 0 and "warning" not in disabled.stderr


def test_file_system_problems_are_one_line_errors(demo_video: Path, tmp_path: Path) -> None:
    taken = tmp_path / "taken"
    taken.write_text("a file where a folder is wanted")
    result = run("frames", str(demo_video), "--save", str(taken))
    assert result.returncode == 1
    assert result.stderr.strip() == f"error: {taken}: File exists"
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"samples: \xff\n")
    result = run("config", "validate", str(bad))
    assert result.returncode == 2 and "not UTF-8 text" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["-k", "1000000000"],
            "frame-sampler 'uniform': num_frames: Input should be less than or equal to 1024 (got 1000000000)",
        ),
        (["--set", "num_frames=2000"], "num_frames: Input should be less than or equal to 1024 (got 2000)"),
        (["--set", "num_frames=abc"], "num_frames: Input should be a valid integer"),
        (
            ["--sampler", "fps", "--set", "fps=-1"],
            "frame-sampler 'fps': fps: Input should be greater than or equal to 0.0001 (got -1)",
        ),
        (["--set", "unknown=1"], "unknown: unknown key 'unknown'; allowed keys: num_frames"),
        (["--set", "num_frames=[1"], "--set 'num_frames=[1': the value is not valid YAML"),
        (["--set", "num_frames"], "--set 'num_frames' is not KEY=VALUE"),
        (["--max-side", "100000"], "max_side: Input should be less than or equal to 8192 (got 100000)"),
    ],
)
def test_frames_bad_options_are_one_line_errors(demo_video: Path, args: list[str], message: str) -> None:
    result = run("frames", str(demo_video), "--no-cache", *args)
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and message in line, result.stderr
