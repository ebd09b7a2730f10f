"""Complete-or-absent checkpoint folders: staged saves, markers, leftovers, the latest complete one, pruning.

(``test_train.py`` kills a round inside ``mark_complete`` and resumes from ``latest_complete``; here each
function is checked on plain folders.)
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from mmaip_core.store.checkpoints import MARKER, is_complete, latest_complete, mark_complete, prune, read_marker, staged


def _hidden(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def _complete(parent: Path, name: str, **info: object) -> Path:
    with staged(parent / name, dict(info)) as tmp:
        (tmp / "weights.bin").write_bytes(name.encode())
    return parent / name


def _incomplete(parent: Path, name: str) -> Path:
    folder = parent / name
    folder.mkdir(parents=True)
    (folder / "weights.bin").write_bytes(b"half")
    return folder


def test_staged_writes_into_a_hidden_folder_and_renames_it_on_success(tmp_path: Path) -> None:
    final = tmp_path / "models" / "policy"
    with staged(final, {"alpha": 0.5, "where": Path("/x")}) as tmp:
        assert tmp.parent == final.parent and tmp.name.startswith(".policy-") and tmp.is_dir()
        (tmp / "sub").mkdir()
        (tmp / "sub" / "weights.bin").write_bytes(b"1234")
        (tmp / "config.json").write_text("{}")
        assert not final.exists()  # nothing at the final name while writing
        assert not is_complete(tmp)
    assert not tmp.exists()
    assert sorted(p.relative_to(final).as_posix() for p in final.rglob("*")) == [
        MARKER,
        "config.json",
        "sub",
        "sub/weights.bin",
    ]
    assert (final / "sub" / "weights.bin").read_bytes() == b"1234"
    assert is_complete(final)
    marker = read_marker(final)
    assert marker["alpha"] == 0.5 and marker["where"] == "/x"  # not JSON: as a string
    assert datetime.fromisoformat(marker["completed_at"]).tzinfo is not None
    assert _hidden(final.parent) == []


def test_staged_without_info_writes_only_the_time(tmp_path: Path) -> None:
    with staged(tmp_path / "ckpt"):
        pass
    assert list(read_marker(tmp_path / "ckpt")) == ["completed_at"]


def test_an_error_inside_staged_leaves_neither_the_folder_nor_the_temporary_one(tmp_path: Path) -> None:
    final = tmp_path / "policy"
    with pytest.raises(RuntimeError, match="out of memory"), staged(final) as tmp:
        (tmp / "weights.bin").write_bytes(b"half written")
        raise RuntimeError("out of memory")
    assert not final.exists() and not tmp.exists()
    assert list(tmp_path.iterdir()) == []


def test_an_error_inside_staged_keeps_the_older_checkpoint_untouched(tmp_path: Path) -> None:
    final = _complete(tmp_path, "policy", version=1)
    with pytest.raises(KeyboardInterrupt), staged(final, {"version": 2}) as tmp:
        (tmp / "weights.bin").write_bytes(b"new")
        raise KeyboardInterrupt
    assert read_marker(final)["version"] == 1
    assert (final / "weights.bin").read_bytes() == b"policy"
    assert _hidden(tmp_path) == []


def test_a_successful_save_replaces_an_older_folder_whole(tmp_path: Path) -> None:
    final = tmp_path / "policy"
    with staged(final, {"version": 1}) as tmp:
        (tmp / "old-only.bin").write_bytes(b"old")
        (tmp / "weights.bin").write_bytes(b"old")
    with staged(final, {"version": 2}) as tmp:
        (tmp / "weights.bin").write_bytes(b"new")
    assert read_marker(final)["version"] == 2
    assert (final / "weights.bin").read_bytes() == b"new"
    assert not (final / "old-only.bin").exists()  # replaced, not merged
    assert _hidden(tmp_path) == []


def test_leftovers_of_a_killed_save_are_removed_by_the_next_save(tmp_path: Path) -> None:
    for leftover in (".policy-abc123", ".policy-zzz"):
        (tmp_path / leftover / "deep").mkdir(parents=True)
        (tmp_path / leftover / "deep" / "weights.bin").write_bytes(b"half")
    (tmp_path / ".other-abc123").mkdir()  # another checkpoint's leftover
    (tmp_path / "policy-notes").mkdir()  # not hidden: not a leftover
    with staged(tmp_path / "policy") as tmp:
        assert _hidden(tmp_path) == sorted([".other-abc123", tmp.name])  # removed before writing starts
    assert _hidden(tmp_path) == [".other-abc123"]
    assert (tmp_path / "policy-notes").is_dir() and is_complete(tmp_path / "policy")


def test_is_complete_needs_the_marker_file(tmp_path: Path) -> None:
    folder = _incomplete(tmp_path, "ckpt")
    assert not is_complete(folder)
    assert not is_complete(tmp_path / "missing")
    (folder / MARKER).mkdir()  # a folder of that name is no marker
    assert not is_complete(folder)
    (folder / MARKER).rmdir()
    (folder / MARKER).write_text(json.dumps({"step": 3}))
    assert is_complete(str(folder))  # a str path too
    assert read_marker(str(folder)) == {"step": 3}


def test_read_marker_of_an_incomplete_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_marker(_incomplete(tmp_path, "ckpt"))


def test_mark_complete_renames_with_the_marker_and_replaces_an_older_folder(tmp_path: Path) -> None:
    older = _complete(tmp_path, "step-3", step=3, version="old")
    (older / "stale.bin").write_bytes(b"stale")
    tmp = tmp_path / ".step-3.partial"  # as the multi-process trainer names it
    tmp.mkdir()
    (tmp / "model.safetensors").write_bytes(b"new")
    mark_complete(tmp, older, {"step": 3, "version": "new"})
    assert not tmp.exists()
    assert sorted(p.name for p in older.iterdir()) == sorted([MARKER, "model.safetensors"])
    assert read_marker(older)["version"] == "new" and "completed_at" in read_marker(older)


def test_mark_complete_into_a_new_name(tmp_path: Path) -> None:
    tmp = tmp_path / "writing"
    tmp.mkdir()
    (tmp / "a.bin").write_bytes(b"a")
    mark_complete(str(tmp), str(tmp_path / "done"))
    assert is_complete(tmp_path / "done") and not tmp.exists()


def test_latest_complete_takes_the_largest_number_that_is_complete(tmp_path: Path) -> None:
    assert latest_complete(tmp_path / "missing", "step") is None
    assert latest_complete(tmp_path, "step") is None
    _incomplete(tmp_path, "step-1")
    assert latest_complete(tmp_path, "step") is None
    _complete(tmp_path, "step-2")
    _complete(tmp_path, "step-10")  # numeric, not alphabetical: 10 > 9 > 2
    _complete(tmp_path, "step-9")
    _incomplete(tmp_path, "step-11")  # newer but not complete: a killed save
    _complete(tmp_path, "step-12x")  # not a number
    _complete(tmp_path, "other-50")
    _complete(tmp_path, "stepper-60")
    (tmp_path / ".step-99-abc").mkdir()  # a hidden leftover
    assert latest_complete(tmp_path, "step") == tmp_path / "step-10"
    assert latest_complete(str(tmp_path), "other") == tmp_path / "other-50"


def test_latest_complete_escapes_the_prefix(tmp_path: Path) -> None:
    _complete(tmp_path, "round.1-3")
    _complete(tmp_path, "roundX1-7")  # would match an unescaped "round.1"
    assert latest_complete(tmp_path, "round.1") == tmp_path / "round.1-3"


def test_prune_keeps_the_newest_complete_folders(tmp_path: Path) -> None:
    for n in (1, 2, 3, 4, 5):
        _complete(tmp_path, f"step-{n}")
    deleted = prune(tmp_path, "step", keep=2)
    assert sorted(p.name for p in deleted) == ["step-1", "step-2", "step-3"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-4", "step-5"]
    assert prune(tmp_path, "step", keep=2) == []  # nothing more to do


def test_prune_never_deletes_the_newest_complete_folder(tmp_path: Path) -> None:
    for n in (1, 2, 3):
        _complete(tmp_path, f"step-{n}")
    for keep in (0, -1):
        prune(tmp_path, "step", keep=keep)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["step-3"]
    assert latest_complete(tmp_path, "step") == tmp_path / "step-3"


def test_prune_removes_older_incomplete_folders_and_keeps_newer_ones(tmp_path: Path) -> None:
    _incomplete(tmp_path, "step-1")
    _complete(tmp_path, "step-2")
    _incomplete(tmp_path, "step-3")
    _complete(tmp_path, "step-4")
    _incomplete(tmp_path, "step-5")  # newer than every complete one: possibly being written now
    _complete(tmp_path, "other-1")
    deleted = prune(tmp_path, "step", keep=2)
    assert sorted(p.name for p in deleted) == ["step-1", "step-3"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other-1", "step-2", "step-4", "step-5"]


def test_prune_without_a_complete_folder_deletes_nothing(tmp_path: Path) -> None:
    assert prune(tmp_path / "missing", "step", keep=1) == []
    _incomplete(tmp_path, "step-1")
    _incomplete(tmp_path, "step-2")
    assert prune(tmp_path, "step", keep=1) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-1", "step-2"]


def test_prune_with_room_for_everything_deletes_nothing_complete(tmp_path: Path) -> None:
    for n in (1, 2):
        _complete(tmp_path, f"step-{n}")
    assert prune(tmp_path, "step", keep=5) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-1", "step-2"]
