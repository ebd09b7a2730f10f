"""``pip install .`` (not only editable) ships every package of the tree under its import name: the sdist is
built, the wheel is built from the sdist, installed into a fresh virtual environment with no editable install on
its path, and used there."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from helpers import ROOT

from mmaip_core.testbeds.demo import prepare_demo

IGNORE = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", "demo-out")
# the documented layout: import name -> source folder (README, "Layout and import names")
FOLDERS = {"mmaip_core": "mmaip_core", "mmaip_plugins": "plugins", "mmaip_miniature": "miniature"}


def _run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"HF_HUB_OFFLINE": "1"}
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{command}: {result.stderr}"
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from the sdist of a copy of the tree (python -m build: sdist first, then the wheel)."""
    tmp = tmp_path_factory.mktemp("dist")
    shutil.copytree(ROOT, tmp / "src", ignore=IGNORE)
    _run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(tmp / "dist"), str(tmp / "src")], tmp)
    assert len(list((tmp / "dist").glob("mmaip-*.tar.gz"))) == 1
    (built,) = (tmp / "dist").glob("mmaip-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with the wheel alone installed (``--no-deps``); the dependencies come from this
    environment's site-packages, named as a path in a .pth file: on sys.path, but its own .pth files (the
    editable install's finder) are not processed. Returns the environment's bin folder."""
    root = tmp_path_factory.mktemp("venv")
    _run([sys.executable, "-m", "venv", "--without-pip", str(root)], root)
    python = root / "bin" / "python"
    site = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], root).stdout.strip()
    (Path(site) / "mmaip-dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps", str(wheel)], root)
    return root / "bin"


def test_wheel_ships_every_package_of_the_tree(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    folders = {Path(n).parent.as_posix() for n in names}
    for name, source in FOLDERS.items():
        for init in (ROOT / source).rglob("__init__.py"):
            assert Path(name, init.parent.relative_to(ROOT / source)).as_posix() in folders, init
    assert {n.split("/")[0] for n in names if ".dist-info/" not in n} == {*FOLDERS, "mmaip_cli"}
    assert [n for n in names if n.startswith("mmaip_cli/")] == ["mmaip_cli/cli.py"]
    assert "mmaip_core/py.typed" in names
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "[mmaip]" in entry_points and "zoo = mmaip_plugins.zoo" in entry_points
    assert "mmaip = mmaip_cli.cli:main" in entry_points


def test_installed_wheel_lists_its_plugins_and_builds(venv: Path, tmp_path: Path) -> None:
    script = (
        "import json, sys, mmaip_core, mmaip_plugins, mmaip_cli.cli\n"
        "print(json.dumps([[m.__file__ for m in (mmaip_core, mmaip_plugins, mmaip_cli.cli)],"
        " [repr(f) for f in sys.meta_path]]))"
    )
    files, finders = json.loads(_run([str(venv / "python"), "-c", script], tmp_path).stdout)
    assert all(Path(f).is_relative_to(venv.parent) for f in files), files
    assert not any("__editable__" in f for f in finders), finders

    listed = _run([str(venv / "mmaip"), "plugins", "--json"], tmp_path)
    plugins = {(p["kind"], p["name"]) for p in json.loads(listed.stdout)}
    assert {("generator", g) for g in ("hf", "openai", "anthropic", "smoke")} <= plugins
    assert {("scorer", s) for s in ("openai-judge", "anthropic-judge", "reference", "exact-match")} <= plugins
    assert "failed" not in listed.stderr and "skipped" not in listed.stderr, listed.stderr

    config = prepare_demo(tmp_path, num_videos=1)  # a zoo of tiny random models, the offline reference scorer
    _run([str(venv / "mmaip"), "build", str(config), "--out", "build"], tmp_path)
    summary = json.loads((tmp_path / "build" / "summary.json").read_text())
    assert summary["samples"] == 3 and summary["pairs"] > 0
