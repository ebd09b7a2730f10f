"""``mmaip build --engine ray``: the shards as Ray tasks on a local Ray (started by the command, on this
machine's CPUs), merged into what one process writes; a kill -9 of the driver resumes without paying twice."""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
import scripted_plugins
from helpers import MMAIP, TESTS, fake_distribution

from mmaip_core import PluginManager
from mmaip_core.config import load_config
from mmaip_core.stages.build import run_build

pytest.importorskip("ray", reason="Ray is an optional extra (pip install 'mmaip[ray]'); make test installs it")

from test_build import ZOO, _config
from test_stream import _outputs


def _done_keys(out: Path) -> set[str]:
    keys: set[str] = set()
    for ledger in (out / "shards").glob("*/ledger.sqlite"):
        try:
            with sqlite3.connect(ledger, timeout=5) as db:
                keys |= {k for (k,) in db.execute("SELECT key FROM entries WHERE status = 'done'")}
        except sqlite3.OperationalError:
            pass
    return keys


def _free(out: Path, timeout: float = 60) -> None:
    """Wait until no process holds a shard folder (the killed driver's Ray workers end with it)."""
    deadline = time.time() + timeout
    for lock in (out / "shards").glob("*/.mmaip.lock"):
        with open(lock) as fh:
            while True:
                try:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    fcntl.flock(fh, fcntl.LOCK_UN)
                    break
                except BlockingIOError:
                    assert time.time() < deadline, f"{lock} is still held"
                    time.sleep(0.2)


def test_a_ray_build_equals_one_process_and_a_kill_pays_nothing_twice(
    manager: PluginManager, demo_dir: Path, tmp_path: Path
) -> None:
    manager.register(scripted_plugins, "scripted")
    site = fake_distribution(tmp_path / "site", "mmaip-scripted", {"scripted": "scripted_plugins"}, {})
    shutil.copy(TESTS / "scripted_plugins.py", site / "scripted_plugins.py")
    log = tmp_path / "asked.log"
    config, out = _config(tmp_path, demo_dir, [{**e, "delay": 0.3, "log": str(log)} for e in ZOO]), tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(site)}
    command = [MMAIP, "build", str(config), "--out", str(out), "--engine", "ray", "--shards", "2"]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 180
    while len(_done_keys(out)) < 8 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    _free(out)
    committed = _done_keys(out)
    assert 8 <= len(committed) < 54, "the kill came after some calls and before the end"
    log.write_text("")
    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    asked = log.read_text().split()
    assert not set(asked) & committed and len(asked) == len(set(asked)), "a committed call was asked again"
    assert len(_done_keys(out)) == 54
    one = tmp_path / "one"
    run_build(load_config(_config(tmp_path, demo_dir, ZOO), manager), one, manager)
    assert _outputs(out) == _outputs(one)
    assert (out / "pairs.jsonl").read_bytes() == (one / "pairs.jsonl").read_bytes()
