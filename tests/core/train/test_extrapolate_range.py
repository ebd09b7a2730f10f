"""An alpha whose weights overflow float32 (in which checkpoints are combined) is refused like any non-finite
result: one clear error naming the alpha, nothing written, never torch's bare RuntimeError."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from helpers import MMAIP
from test_extrapolate import _checkpoint, _half_pair

from mmaip_core import UserError
from mmaip_core.train.extrapolate import combine_checkpoints, extrapolate


def test_a_huge_alpha_is_one_clear_error(tmp_path: Path) -> None:
    policy, anchor = _half_pair(tmp_path)
    out = tmp_path / "strong"
    with pytest.raises(UserError) as info:
        extrapolate(policy, anchor, 1e300, out)
    assert str(info.value) == (
        "alpha 1e+300 gives the weight 1e+300 to 'policy', which overflows float32 (at most 3.4e+38 either way), "
        f"in which the tensors are combined; nothing was written to {out}"
    )
    assert not out.exists()
    with pytest.raises(UserError, match=r"\(the result overflows float16\)"):  # within float32: combined, refused
        extrapolate(policy, anchor, 1e30, out)
    with pytest.raises(UserError, match=r"gives the weight -1e\+300 to 'b', which overflows float32"):
        combine_checkpoints({"a": 1.0, "b": -1e300}, {"a": policy, "b": anchor}, out, copy_from="a")


def test_cli_huge_alpha_is_one_line(tmp_path: Path) -> None:
    policy, anchor = _checkpoint(tmp_path / "policy", 4.0), _checkpoint(tmp_path / "anchor", 2.0)
    command = [MMAIP, "extrapolate", "--policy", str(policy), "--anchor", str(anchor), "--alpha", "1e300"]
    result = subprocess.run([*command, "--out", str(tmp_path / "out")], capture_output=True, text=True)
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: alpha 1e+300 gives the weight 1e+300 to 'policy', which overflows float32")
    assert "Traceback" not in result.stderr and not (tmp_path / "out").exists()
