from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import scripted_plugins
import yaml
from api_mock import MockServer
from helpers import MMAIP, TESTS, fake_distribution

from mmaip_core import AnnotatedResponse, ParseStatus, PluginManager, PreferencePair
from mmaip_core.config import load_config
from mmaip_core.stages.build import re_pair, run_build
from mmaip_core.store.jsonl import read_jsonl


@pytest.fixture
def plugins(manager: PluginManager) -> PluginManager:
    manager.register(scripted_plugins, "scripted")
    return manager


def _config(tmp_path: Path, demo_dir: Path, zoo: list[dict], scorer: str = "parsing-judge", **extra: object) -> Path:
    data = {
        "samples": {"reader": "jsonl", "path": str(demo_dir / "qa.jsonl")},
        "frames": {"num_frames": 4, "cache_dir": str(tmp_path / "frames")},
        "zoo": zoo,
        "scorer": {"name": scorer},
        "pairs": {"strategy": "best-worst"},
        **extra,
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


ZOO = [
    {"name": "good", "generator": "scripted", "answers": ["{truth}"]},
    {"name": "bad", "generator": "scripted", "model": "bad", "answers": ["no idea", "???"], "n": 2},
]


def _build(config: Path, out: Path, manager: PluginManager, allow_config_change: bool = False):  # type: ignore[no-untyped-def]
    return run_build(load_config(config, manager), out, manager, allow_config_change=allow_config_change)


def test_build_makes_pairs_and_records_everything(plugins: PluginManager, demo_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    summary = _build(_config(tmp_path, demo_dir, ZOO), out, plugins)
    assert summary.samples == 9
    assert summary.responses["good"] == {"reused": 0, "new": 9, "done": 9}
    assert summary.responses["bad"] == {"reused": 0, "new": 18, "done": 18}
    # the "???" answers of "bad" are replies the judge cannot parse: counted, never scored
    assert summary.judgements == {"reused": 0, "new": 27, "ok": 18, "parse_failure": 9}
    pairs = list(read_jsonl(out / "pairs.jsonl", PreferencePair))
    assert summary.pairs == len(pairs) == 9
    assert all(p.chosen_model == "good" and p.chosen == p.answer and p.rejected == "no idea" for p in pairs)
    lines = list(read_jsonl(out / "responses.jsonl", AnnotatedResponse))
    assert len(lines) == 27
    failures = [line for line in lines if line.judgements[0].status is ParseStatus.PARSE_FAILURE]
    assert len(failures) == 9 and all(f.judgements[0].score is None for f in failures)
    assert {f.response.text for f in failures} == {"???"}
    frames = {json.loads(line)["video_sha256"] for line in (out / "frames.jsonl").read_text().splitlines()}
    assert len(frames) == 3
    errors = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    assert [e["stage"] for e in errors] == ["judgement"] * 9
    manifest = json.loads((out / "run-manifest.json").read_text())
    assert manifest["config"]["zoo"][1]["answers"] == ["no idea", "???"]


def test_rerun_makes_no_call_and_writes_the_same_output(plugins: PluginManager, demo_dir: Path, tmp_path: Path) -> None:
    config, out = _config(tmp_path, demo_dir, ZOO), tmp_path / "run"
    _build(config, out, plugins)
    before = {name: (out / name).read_bytes() for name in ("pairs.jsonl", "responses.jsonl", "samples.jsonl")}
    judge_calls = []
    original = scripted_plugins.ParsingJudge.score

    def counting(self, requests):  # type: ignore[no-untyped-def]
        judge_calls.append(len(requests))
        return original(self, requests)

    scripted_plugins.ParsingJudge.score = counting  # type: ignore[method-assign]
    try:
        summary = _build(config, out, plugins)
    finally:
        scripted_plugins.ParsingJudge.score = original  # type: ignore[method-assign]
    assert judge_calls == []
    assert {e["new"] for e in summary.responses.values()} == {0}
    assert summary.judgements["new"] == 0 and summary.judgements["reused"] == 27
    assert {name: (out / name).read_bytes() for name in before} == before


def test_changing_one_zoo_entry_reruns_only_its_calls(plugins: PluginManager, demo_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    _build(_config(tmp_path, demo_dir, ZOO), out, plugins)
    changed = [ZOO[0], {**ZOO[1], "answers": ["no idea", "maybe"]}]
    summary = _build(_config(tmp_path, demo_dir, changed), out, plugins, allow_config_change=True)
    assert summary.responses["good"]["new"] == 0
    assert summary.responses["bad"] == {"reused": 0, "new": 18, "done": 18}
    # "no idea" was judged before: only the 9 "maybe" answers are new judgements
    assert summary.judgements["new"] == 9 and summary.judgements["reused"] == 18


def test_bad_rows_and_videos_fail_per_item(
    plugins: PluginManager, demo_dir: Path, tmp_path: Path, broken_videos: dict[str, Path]
) -> None:
    rows = [json.loads(line) for line in (demo_dir / "qa.jsonl").read_text().splitlines()[:3]]
    for row in rows:
        row["video"] = str(demo_dir / row["video"])
    rows.append({"id": "broken", "video": str(broken_videos["garbage"]), "question": "q?", "answer": "a"})
    rows.append({"id": "noq", "video": rows[0]["video"]})
    qa = tmp_path / "qa.jsonl"
    qa.write_text("".join(json.dumps(r) + "\n" for r in rows) + "{oops\n")
    config = _config(tmp_path, demo_dir, [*ZOO[:1], {**ZOO[1], "n": 1}])
    data = yaml.safe_load(config.read_text())
    data["samples"]["path"] = str(qa)
    config.write_text(yaml.safe_dump(data))
    summary = _build(config, tmp_path / "run", plugins)
    assert (summary.samples, summary.row_errors, summary.video_errors) == (4, 2, 1)
    assert summary.pairs == 3
    errors = [json.loads(line) for line in (tmp_path / "run" / "errors.jsonl").read_text().splitlines()]
    by_stage = {(e["stage"], e["item"].rsplit(":", 1)[-1]): e for e in errors}
    assert by_stage[("frames", "broken")]["message"].startswith(f"video {broken_videos['garbage']}: corrupt")
    assert "missing column(s) question" in by_stage[("samples", "5")]["message"]
    assert "invalid JSON" in by_stage[("samples", "6")]["message"]


def test_repairing_makes_no_call(plugins: PluginManager, demo_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    _build(_config(tmp_path, demo_dir, ZOO), out, plugins)
    entries = sqlite3.connect(out / "ledger.sqlite").execute("SELECT COUNT(*) FROM entries").fetchone()[0]
    summary = re_pair(out, plugins, "margin", {"min_margin": 1})
    assert summary.pairs == 9
    assert all(p.strategy == "margin" for p in read_jsonl(out / "pairs.jsonl", PreferencePair))
    assert sqlite3.connect(out / "ledger.sqlite").execute("SELECT COUNT(*) FROM entries").fetchone()[0] == entries


def test_build_needs_its_sections(plugins: PluginManager, tmp_path: Path) -> None:
    from mmaip_core import ConfigError
    from mmaip_core.config import RunConfig

    with pytest.raises(ConfigError, match="scorer: a build needs this section"):
        run_build(RunConfig.model_validate({"samples": {"path": "x"}, "zoo": [ZOO[0]]}), tmp_path, plugins)


def _ledger_keys(out: Path) -> set[str]:
    path = out / "ledger.sqlite"
    if not path.exists():
        return set()
    try:
        with sqlite3.connect(path, timeout=5) as db:
            return {k for (k,) in db.execute("SELECT key FROM entries WHERE status = 'done'")}
    except sqlite3.OperationalError:
        return set()


def test_killed_builds_resume_without_repeating_finished_calls(
    plugins: PluginManager, demo_dir: Path, tmp_path: Path
) -> None:
    """kill -9 a real `mmaip build` at several points: nothing committed is lost or asked for again, and
    the finished build equals an uninterrupted one."""
    site = fake_distribution(tmp_path / "site", "mmaip-scripted", {"scripted": "scripted_plugins"}, {})
    shutil.copy(TESTS / "scripted_plugins.py", site / "scripted_plugins.py")
    log = tmp_path / "asked.log"
    zoo = [{**entry, "delay": 0.05, "log": str(log)} for entry in ZOO]
    config, out = _config(tmp_path, demo_dir, zoo), tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(site)}
    command = [MMAIP, "build", str(config), "--out", str(out)]
    for kill_at in (3, 10, 19, None):
        committed = _ledger_keys(out)
        log.write_text("")
        proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 120
        while kill_at and len(_ledger_keys(out)) < kill_at and proc.poll() is None and time.time() < deadline:
            time.sleep(0.002)
        if kill_at:
            proc.send_signal(signal.SIGKILL)
        _, stderr = proc.communicate(timeout=120)
        asked = log.read_text().split()
        assert not set(asked) & committed, f"killed at {kill_at}: a committed call was asked again"
        assert len(asked) == len(set(asked))
        assert committed <= _ledger_keys(out), "a committed result was lost"
        if kill_at is None:
            assert proc.returncode == 0, stderr
        else:
            assert proc.returncode == -signal.SIGKILL and len(committed) < len(_ledger_keys(out)) < 54
    assert len(_ledger_keys(out)) == 27 + 27  # 27 answers; 27 distinct (question, answer) judgements
    reference = tmp_path / "uninterrupted"
    _build(_config(tmp_path, demo_dir, ZOO), reference, plugins)
    assert (out / "pairs.jsonl").read_bytes() == (reference / "pairs.jsonl").read_bytes()
    assert (out / "samples.jsonl").read_bytes() == (reference / "samples.jsonl").read_bytes()


def test_same_question_twice_and_twin_zoo_entries_keep_their_own_answers(
    plugins: PluginManager, demo_dir: Path, tmp_path: Path
) -> None:
    video = str(demo_dir / "videos" / "clip000.mp4")
    qa = tmp_path / "qa.jsonl"
    qa.write_text(
        "".join(json.dumps({"id": i, "video": video, "question": "What?", "answer": "red"}) + "\n" for i in ("a", "b"))
    )
    zoo = [{"name": "one", "generator": "scripted"}, {"name": "two", "generator": "scripted"}]
    config = _config(tmp_path, demo_dir, zoo)
    data = yaml.safe_load(config.read_text())
    data["samples"]["path"] = str(qa)
    config.write_text(yaml.safe_dump(data))
    out = tmp_path / "run"
    summary = _build(config, out, plugins)
    assert summary.responses == {"one": {"reused": 0, "new": 2, "done": 2}, "two": {"reused": 0, "new": 2, "done": 2}}
    lines = list(read_jsonl(out / "responses.jsonl", AnnotatedResponse))
    assert sorted((line.response.sample_id, line.response.model) for line in lines) == [
        ("a", "one"),
        ("a", "two"),
        ("b", "one"),
        ("b", "two"),
    ]


def test_damaged_outputs_are_one_clear_error(plugins: PluginManager, demo_dir: Path, tmp_path: Path) -> None:
    from mmaip_core import ConfigError
    from mmaip_core.stages.export import export_pairs

    out = tmp_path / "run"
    _build(_config(tmp_path, demo_dir, ZOO[:1]), out, plugins)  # one model: no pairs
    with pytest.raises(ConfigError, match="no pairs to export"):
        export_pairs(out, tmp_path / "export")
    (out / "responses.jsonl").write_text('{"response": {"id": "x"}\n')
    with pytest.raises(ConfigError, match="line 1: not a valid AnnotatedResponse"):
        re_pair(out, plugins, "best-worst", {})


def _scripted_env(tmp_path: Path) -> dict[str, str]:
    """The environment in which a `mmaip` subprocess finds the scripted test plugins."""
    site = fake_distribution(tmp_path / "site", "mmaip-scripted", {"scripted": "scripted_plugins"}, {})
    shutil.copy(TESTS / "scripted_plugins.py", site / "scripted_plugins.py")
    return {**os.environ, "PYTHONPATH": str(site)}


def _one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def test_a_second_process_into_the_same_folder_stops_and_a_killed_one_leaves_no_lock(
    demo_dir: Path, tmp_path: Path
) -> None:
    env, out = _scripted_env(tmp_path), tmp_path / "run"
    command = [MMAIP, "build", str(_config(tmp_path, demo_dir, ZOO)), "--out", str(out)]
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom mmaip_core.store.runfolder import locked\n"
            "with locked(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(120)\n",
            str(out),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        assert second.returncode == 2
        assert f"in use by another mmaip process (pid {holder.pid})" in _one_error_line(second.stderr)
        assert not (out / "ledger.sqlite").exists(), "the second process must not start any work"
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    after_crash = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert after_crash.returncode == 0, after_crash.stderr
    assert (out / "pairs.jsonl").read_text().count("\n") == 9


def test_a_different_config_into_a_folder_stops_and_says_what_differs(demo_dir: Path, tmp_path: Path) -> None:
    env, out = _scripted_env(tmp_path), tmp_path / "run"
    first = _config(tmp_path, demo_dir, ZOO)
    assert (
        subprocess.run(
            [MMAIP, "build", str(first), "--out", str(out)], env=env, capture_output=True, timeout=120
        ).returncode
        == 0
    )
    pairs = (out / "pairs.jsonl").read_bytes()
    changed = tmp_path / "changed.yaml"
    shutil.move(_config(tmp_path, demo_dir, [ZOO[0], {**ZOO[1], "answers": ["no idea", "maybe"]}]), changed)
    refused = subprocess.run(
        [MMAIP, "build", str(changed), "--out", str(out)], env=env, capture_output=True, text=True, timeout=120
    )
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert 'zoo.1.answers.1: "???" → "maybe"' in refused.stderr and "--allow-config-change" in refused.stderr
    assert (out / "pairs.jsonl").read_bytes() == pairs, "the refused run must leave the outputs as they were"
    allowed = subprocess.run(
        [MMAIP, "build", str(changed), "--out", str(out), "--allow-config-change"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert allowed.returncode == 0, allowed.stderr
    remembered = json.loads((out / "run-config.json").read_text())
    assert remembered["stage"] == "build" and remembered["config"]["zoo"][1]["answers"] == ["no idea", "maybe"]


def test_a_build_with_nothing_to_show_is_an_error_after_its_outputs_are_written(
    plugins: PluginManager, demo_dir: Path, tmp_path: Path
) -> None:
    from mmaip_core import EmptyRunError

    unreadable = [{"name": "mute", "generator": "scripted", "answers": ["??? mumble"]}]
    with pytest.raises(EmptyRunError, match=r"none of the 9 answers could be scored; first: parse_failure"):
        _build(_config(tmp_path, demo_dir, unreadable), tmp_path / "unscored", plugins)
    assert (tmp_path / "unscored" / "errors.jsonl").read_text().count("\n") == 9
    qa = tmp_path / "bad.jsonl"
    qa.write_text(json.dumps({"id": "a", "video": "x.mp4"}) + "\n")
    config = _config(tmp_path, demo_dir, ZOO)
    data = yaml.safe_load(config.read_text())
    data["samples"]["path"] = str(qa)
    config.write_text(yaml.safe_dump(data))
    with pytest.raises(EmptyRunError, match=r"no sample could be read \(1 bad row\(s\); first: RowError: .*question"):
        _build(config, tmp_path / "norows", plugins)


def test_a_build_whose_every_api_call_failed_exits_non_zero(server: MockServer, demo_dir: Path, tmp_path: Path) -> None:
    zoo = [{"name": "down", "generator": "openai", "model": "alwaysfail", "max_attempts": 1}]
    config, out = _config(tmp_path, demo_dir, zoo, scorer="exact-match"), tmp_path / "run"
    result = subprocess.run(
        [MMAIP, "build", str(config), "--out", str(out)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 4  # nothing to show: its own exit code
    line = _one_error_line(result.stderr)
    assert "no zoo model answered any question; first: InternalServerError" in line and "errors.jsonl" in line
    assert [json.loads(x)["stage"] for x in (out / "errors.jsonl").read_text().splitlines()] == ["generation"] * 9


def test_a_damaged_or_full_ledger_is_one_line_naming_it(plugins: PluginManager, demo_dir: Path, tmp_path: Path) -> None:
    from mmaip_core import StorageError
    from mmaip_core.store.ledger import Ledger

    env, out = _scripted_env(tmp_path), tmp_path / "run"
    command = [MMAIP, "build", str(_config(tmp_path, demo_dir, ZOO)), "--out", str(out)]
    assert subprocess.run(command, env=env, capture_output=True, timeout=120).returncode == 0
    ledger = out / "ledger.sqlite"
    for damage in (
        lambda: ledger.write_bytes(ledger.read_bytes()[: ledger.stat().st_size // 3]),
        lambda: ledger.write_bytes(b"not a database" * 100),
    ):
        damage()
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 1
        assert f"{ledger}: the ledger is damaged" in _one_error_line(result.stderr)
    full = Ledger(tmp_path / "full.sqlite")
    full._db.execute("PRAGMA max_page_count = 8")  # the database cannot grow: as on a full disk
    with pytest.raises(StorageError, match=r"full\.sqlite: cannot use the ledger: database or disk is full"):
        for i in range(1000):
            full.put(f"k{i}", "generation", "done", {"text": "x" * 500})
    full.close()


def test_outputs_are_replaced_whole_and_a_failed_write_names_the_file(
    plugins: PluginManager, demo_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    out = tmp_path / "run"
    _build(_config(tmp_path, demo_dir, ZOO), out, plugins)
    before = {name: (out / name).read_bytes() for name in ("summary.json", "run-manifest.json", "pairs.jsonl")}

    def disk_full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space left on device") as failed:
        re_pair(out, plugins, "best-worst", {})
    assert failed.value.filename == str(out / "pairs.jsonl")
    monkeypatch.undo()
    assert {name: (out / name).read_bytes() for name in before} == before
    assert not [p for p in out.iterdir() if p.name.startswith(".") and p.name != ".mmaip.lock"], (
        "a temporary file was left"
    )
    (out / "summary.json").write_text("")
    result = subprocess.run([MMAIP, "pairs", str(out)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and f"error: {out / 'summary.json'}: empty file" in result.stderr
    assert "Traceback" not in result.stderr
