"""The trainer's main-only saves over two CPU processes (gloo): a failure on the main process while it writes a
step checkpoint or the round's policy stops the other process with its cause (Processes.together), instead of
leaving it at a barrier or failing on a closed connection."""

from __future__ import annotations

from pathlib import Path

import pytest
import test_train
from test_distributed import _spawn
from test_train import _config

pairs_file = test_train.pairs_file  # the fixture: nine pairs on the three demo clips


@pytest.mark.parametrize(
    ("blocked", "trainer"),
    [("work/step-1", {"batch_size": 2, "save_steps": 1}), ("policy", {"batch_size": 2})],
    ids=["step-checkpoint", "policy"],
)
def test_a_failed_main_only_save_stops_every_process(
    pairs_file: Path, tiny_models: Path, tmp_path: Path, blocked: str, trainer: dict[str, int]
) -> None:
    """A file where the main process renames its finished folder (round-1/work/step-1, round-1/policy): only
    the main process writes it, so only it fails; the other names its error."""
    path = _config(tmp_path, pairs_file, tiny_models, rounds=1, trainer=trainer)
    out = tmp_path / "out"
    (out / "round-1" / blocked).parent.mkdir(parents=True)
    (out / "round-1" / blocked).write_text("in the way")
    runs = _spawn(["train", str(path), "--out", str(out)], 2)
    try:
        outputs = [run.communicate(timeout=240) for run in runs]
    finally:
        for run in runs:
            run.kill()
    main_err, other_err = (err for _, err in outputs)
    assert all(run.returncode not in (0, None) for run in runs), main_err[-2000:] + other_err[-2000:]
    failed = main_err.strip().splitlines()[-1]
    assert failed.endswith(f"{out / 'round-1' / blocked}: Not a directory"), main_err[-2000:]
    stopped = other_err.strip().splitlines()[-1]
    assert "the run stopped on another process (process 0 failed: NotADirectoryError" in stopped, other_err[-2000:]
    assert "Not a directory" in stopped
    assert (out / "round-1" / blocked).read_text() == "in the way"
