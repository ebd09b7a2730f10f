"""Several training processes on the CPU (gloo): FSDP2 (examples/accelerate/fsdp2.yaml) over two processes equals
one process, a failure in a main-only step stops every process with its cause, a busy folder stops the run, and
the accelerate configurations in examples/accelerate/ are ones accelerate reads."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import test_train
import torch
from test_train import _config, _weights

from mmaip_core import PluginManager, is_complete
from mmaip_core.config import load_config
from mmaip_core.store.runfolder import RunFolderBusyError, locked
from mmaip_core.train import run_training

pairs_file = test_train.pairs_file  # the fixture: nine pairs on the three demo clips

CONFIGS = Path(__file__).resolve().parents[3] / "examples" / "accelerate"
FSDP2 = CONFIGS / "fsdp2.yaml"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _spawn(args: list[str], processes: int) -> list[subprocess.Popen[str]]:
    """``mmaip ARGS`` in ``processes`` processes started as SLURM's ``srun`` does: each with its rank in the
    environment, no elastic agent that would stop the others when one fails."""
    port = str(_free_port())
    started = []
    for rank in range(processes):
        env = {
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "OMP_NUM_THREADS": "1",
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": port,
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "WORLD_SIZE": str(processes),
            "LOCAL_WORLD_SIZE": str(processes),
        }
        command = [sys.executable, "-m", "mmaip_cli.cli", *args]
        started.append(subprocess.Popen(command, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    return started


def test_main_process_failure_stops_every_process(pairs_file: Path, tiny_models: Path, tmp_path: Path) -> None:
    """The main process's extrapolation overflows (alpha 1e300): both processes exit, the second naming the main
    process's error (not killed, nor failing on a closed connection, nor waiting at a barrier)."""
    path = _config(tmp_path, pairs_file, tiny_models, rounds=1, alpha=1e300, trainer={"batch_size": 2})
    runs = _spawn(["train", str(path), "--out", str(tmp_path / "out")], 2)
    try:
        outputs = [run.communicate(timeout=300) for run in runs]
    finally:
        for run in runs:
            run.kill()
    main_err, other_err = (err for _, err in outputs)
    assert all(run.returncode not in (0, None) for run in runs), main_err[-2000:] + other_err[-2000:]
    assert "overflow" in main_err.splitlines()[-1]
    stopped = other_err.splitlines()[-1]
    assert "the run stopped on another process (process 0 failed: " in stopped and "overflow" in stopped
    assert not (tmp_path / "out" / "manifest.json").exists()


@pytest.mark.parametrize(
    ("name", "kind"), [("single_gpu", "NO"), ("multi_gpu", "MULTI_GPU"), ("fsdp2", "FSDP"), ("zero3", "DEEPSPEED")]
)
def test_accelerate_configs_load(name: str, kind: str) -> None:
    """Every example config is one accelerate reads; the sharded ones load the whole model on every process."""
    from accelerate.commands.config.config_args import load_config_from_file

    config = load_config_from_file(str(CONFIGS / f"{name}.yaml"))
    assert config.distributed_type.value == kind
    assert config.fsdp_config.get("fsdp_cpu_ram_efficient_loading", False) is False
    assert config.deepspeed_config.get("zero3_init_flag", False) is False


def test_busy_folder_stops_training(
    pairs_file: Path, tiny_models: Path, tmp_path: Path, manager: PluginManager
) -> None:
    """A folder another training holds: the run stops at once (the lock is taken by the main process)."""
    config = load_config(_config(tmp_path, pairs_file, tiny_models), manager)
    with locked(tmp_path / "out"), pytest.raises(RunFolderBusyError):
        run_training(config, tmp_path / "out", manager)
    assert not (tmp_path / "out" / "base").exists()


def _curves(out: Path) -> dict[str, list[float]]:
    manifest = json.loads((out / "manifest.json").read_text())
    return dict(manifest["rounds"][0]["result"]["curves"])


def test_fsdp2_two_processes_equal_one(pairs_file: Path, tiny_models: Path, tmp_path: Path) -> None:
    """examples/accelerate/fsdp2.yaml with 2 CPU processes (gloo): the parameters are sharded, the loss curve
    equals one process's on the same global batch, and the round's policy is one full checkpoint, equal to one
    process's, that extrapolation reads."""
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
    one = _config(tmp_path / "one", pairs_file, tiny_models, rounds=1, trainer={"batch_size": 4, "save_steps": 1})
    two = _config(tmp_path / "two", pairs_file, tiny_models, rounds=1, trainer={"batch_size": 2, "save_steps": 1})
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    single = [sys.executable, "-m", "mmaip_cli.cli", "train", str(one), "--out", str(tmp_path / "one" / "out")]
    done = subprocess.run(single, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(FSDP2), "--num_processes", "2"]
    mmaip = [str(Path(__file__).with_name("fsdp_on_cpu.py")), "train", str(two), "--out", str(tmp_path / "two" / "out")]
    done = subprocess.run([*launch, *mmaip], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr.count("fully_shard: ") == 2 and "fully_shard: 0 of" not in done.stderr
    curves = {name: _curves(tmp_path / name / "out") for name in ("one", "two")}
    assert len(curves["two"]["loss"]) == 3
    for name in ("loss", "margin", "grad_norm"):
        assert curves["two"][name] == pytest.approx(curves["one"][name], abs=1e-4, rel=1e-4), name
    policies = {name: _weights(tmp_path / name / "out" / "round-1" / "policy") for name in ("one", "two")}
    assert policies["two"].keys() == _weights(tmp_path / "two" / "out" / "base").keys()
    for key, tensor in policies["one"].items():
        torch.testing.assert_close(policies["two"][key], tensor, atol=1e-4, rtol=1e-4)
    assert is_complete(tmp_path / "two" / "out" / "round-1" / "strong")
