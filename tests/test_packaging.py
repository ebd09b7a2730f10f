"""``pip install .`` (not only editable) ships the core, the bundled plugins and the CLI, under
project-specific import names."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
IGNORE = shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info", "__pycache__", ".*_cache", "demo-out", "tests")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    shutil.copytree(ROOT, tmp / "src", ignore=IGNORE)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(tmp / "dist"),
         str(tmp / "src")],
        check=True, capture_output=True, text=True, timeout=300,
    )
    (built,) = (tmp / "dist").glob("mmaip-*.whl")
    return built


def test_wheel_has_namespaced_packages_only(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top == {"mmaip_core", "mmaip_plugins", "mmaip_miniature", "mmaip_cli"}
    for module in ("mmaip_plugins/zoo/__init__.py", "mmaip_plugins/zoo/tiny.py", "mmaip_plugins/scorers/__init__.py",
                   "mmaip_cli/cli.py", "mmaip_core/py.typed", "mmaip_core/compare/stats.py", "mmaip_miniature/experiment.py",
                   "mmaip_plugins/trainers/sft.py"):
        assert module in names
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "[mmaip]" in entry_points and "zoo = mmaip_plugins.zoo" in entry_points
    assert "mmaip = mmaip_cli.cli:main" in entry_points


def test_installed_wheel_finds_its_bundled_plugins(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site), str(wheel)],
        check=True, capture_output=True, text=True, timeout=300,
    )
    script = (
        "import json, mmaip_plugins, mmaip_cli.cli\n"
        "from mmaip_core import get_plugin_manager\n"
        "print(json.dumps([mmaip_plugins.__file__, sorted({i.kind for i in get_plugin_manager().list()})]))"
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True)
    where, kinds = json.loads(result.stdout)
    assert where.startswith(str(site))
    assert len(kinds) == 8
