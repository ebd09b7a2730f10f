"""Exports and trained models go to the Hub with their cards, through huggingface_hub's own client, against a
local stand-in of the Hub's API that implements the endpoints create_repo and upload_folder call and keeps the
files each commit carries."""

from __future__ import annotations

import base64
import json
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import scripted_plugins
import yaml
from typer.testing import CliRunner

from mmaip_core import PluginManager, UserError
from mmaip_core.analysis.metrics import Estimate, MetricSummary
from mmaip_core.config import load_config
from mmaip_core.records import RoundRecord, RoundResult, TrainManifest
from mmaip_core.stages.build import run_build
from mmaip_core.stages.cards import model_card
from mmaip_core.stages.evaluate import EvalResults, MetricRow
from mmaip_core.stages.publish import HUB_FOLDER, push_model
from mmaip_core.store.checkpoints import staged
from mmaip_core.store.manifest import run_manifest
from mmaip_plugins.zoo.tiny import build_tiny_model

TOKEN = "hf_standInTokenForTests0123456789"


class StandInHub(ThreadingHTTPServer):
    """The Hub API as huggingface_hub uses it to create a repository and commit a folder to it."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.calls: list[tuple[str, str]] = []
        self.repos: dict[str, dict[str, Any]] = {}
        self.files: dict[str, dict[str, bytes]] = {}
        self.tokens: set[str] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: StandInHub

    def log_message(self, *args: Any) -> None:
        pass

    def _reply(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.calls.append(("POST", self.path))
        self.server.tokens.add(self.headers.get("Authorization", ""))
        parts = self.path.split("?")[0].strip("/").split("/")
        if parts[:3] == ["api", "repos", "create"]:
            request = json.loads(body)
            kind = request.get("type") or "model"
            repo = f"{request.get('organization') or 'user'}/{request['name']}"
            self.server.repos[repo] = request
            prefix = "" if kind == "model" else f"{kind}s/"
            return self._reply(200, {"url": f"{self.server.url}/{prefix}{repo}"})
        if parts[:2] == ["api", "validate-yaml"]:
            return self._reply(200, {"errors": [], "warnings": []})
        if parts[0] == "api" and parts[4] == "preupload":
            files = json.loads(body)["files"]
            modes = [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]
            return self._reply(200, {"files": modes})
        if parts[0] == "api" and parts[4] == "commit":
            repo = "/".join(parts[2:4])
            lines = [json.loads(line) for line in body.splitlines() if line.strip()]
            added = {
                v["path"]: base64.b64decode(v["content"])
                for k, v in ((x["key"], x["value"]) for x in lines)
                if k == "file"
            }
            self.server.files.setdefault(repo, {}).update(added)
            return self._reply(
                200, {"commitUrl": f"{self.server.url}/{repo}/commit/1", "commitOid": "1" * 40, "pullRequestUrl": None}
            )
        return self._reply(404, {"error": f"the stand-in has no {self.path}"})


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[StandInHub]:
    from huggingface_hub import constants

    server = StandInHub()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setattr(constants, "ENDPOINT", server.url)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def build_dir(manager: PluginManager, demo_dir: Path, tmp_path: Path) -> Path:
    manager.register(scripted_plugins, "scripted")
    config = {
        "samples": {"path": str(demo_dir / "qa.jsonl")},
        "frames": {"num_frames": 2, "cache_dir": str(tmp_path / "frames")},
        "zoo": [
            {"name": "good", "generator": "scripted"},
            {"name": "bad", "generator": "scripted", "model": "bad", "answers": ["no idea"]},
        ],
        "scorer": {"name": "parsing-judge"},
    }
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    run_build(load_config(tmp_path / "run.yaml", manager), tmp_path / "run", manager)
    return tmp_path / "run"


def test_export_push_to_hub_uploads_the_data_and_its_card(build_dir: Path, tmp_path: Path, hub: StandInHub) -> None:
    from mmaip_cli.cli import app

    out = tmp_path / "export"
    args = ["export", str(build_dir), "--format", "hf", "--out", str(out), "--push-to-hub", "me/pairs", "--private"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert TOKEN not in result.output and "dataset me/pairs: 2 files" in result.output
    assert hub.repos["me/pairs"]["visibility"] == "private" and hub.repos["me/pairs"]["type"] == "dataset"
    assert hub.tokens == {f"Bearer {TOKEN}"}
    sent = hub.files["me/pairs"]
    assert set(sent) == {"README.md", "data/train-00000-of-00001.parquet"}
    assert sent["data/train-00000-of-00001.parquet"] == (out / "data/train-00000-of-00001.parquet").read_bytes()
    card = sent["README.md"].decode()
    assert "## Provenance" in card and "- Scorer:" in card and "## Counts" in card and "arXiv:2411.16201" in card
    assert str(tmp_path) not in card  # no path of this machine goes public
    (out / ".train.parquet.tmp").write_text("a write cut short")  # hidden files stay behind
    again = CliRunner().invoke(app, ["push", str(out), "me/again"])
    assert again.exit_code == 0, again.output
    assert hub.files["me/again"] == sent and hub.repos["me/again"]["visibility"] == "public"


def _trained_run(folder: Path, tiny: Path, manager: PluginManager) -> Path:
    """A finished one-round training run whose final model is a tiny real checkpoint."""
    final = folder / "round-1" / "strong"
    with staged(final) as tmp:
        shutil.copytree(build_tiny_model("qwen2-vl", 0, tiny), tmp, dirs_exist_ok=True)
    result = RoundResult(steps=4, pairs=9)
    record = RoundRecord(
        round=1,
        reference=str(folder / "base"),
        policy=str(folder / "round-1" / "policy"),
        strong=str(final),
        alpha=0.3,
        anchor=str(folder / "base"),
        reference_policy="extrapolated",
        next_reference=str(final),
        next_reference_weights={"strong": 1.0},
        pairs_file=str(folder / "round-1" / "pairs.jsonl"),
        result=result,
    )
    train = {"pairs": "pairs.jsonl", "trainer": {"name": "video-dpo", "model": "tiny/qwen2-vl"}, "anchor": "reference"}
    manifest = TrainManifest(
        base=str(folder / "base"),
        trainer="video-dpo",
        trainer_fingerprint="f",
        rounds_planned=1,
        rounds=[record],
        final=str(final),
        run=run_manifest({"train": train, "frames": {"num_frames": 8, "cache_dir": str(folder / "cache")}}, manager),
    )
    (folder / "manifest.json").write_text(manifest.model_dump_json())
    return folder


def _evaluation(folder: Path) -> Path:
    metrics = MetricSummary(
        n=18,
        videos=6,
        ratio=Estimate(value=0.5, low=0.3, high=0.7),
        score=Estimate(value=3.25, low=2.5, high=4.0),
        parse_failures=0,
        errors=0,
    )
    results = EvalResults(
        metrics=[MetricRow(model="trained", benchmark="demo", evaluator="vision-judge", metrics=metrics)], paired=[]
    )
    folder.mkdir()
    (folder / "results.json").write_text(results.model_dump_json())
    return folder


def test_push_model_stages_the_final_model_with_its_card(
    tmp_path: Path, tiny_models: Path, manager: PluginManager, hub: StandInHub
) -> None:
    run = _trained_run(tmp_path / "train", tiny_models, manager)
    evaluation = _evaluation(tmp_path / "eval")
    dry = push_model(run, "me/model", dry_run=True, evaluation=evaluation, dataset="me/pairs")
    assert dry.url is None and hub.calls == [] and dry.folder == run / HUB_FOLDER
    assert "model.safetensors" in dry.files and "README.md" in dry.files and "COMPLETE.json" not in dry.files
    card = (run / HUB_FOLDER / "README.md").read_text()
    for text in (
        "datasets: [me/pairs]",
        "base_model: tiny/qwen2-vl\nbase_model_relation: finetune",  # the Hub id the trainer started from
        '"model": "tiny/qwen2-vl"',
        "| 1 | 9 | 4 | 0.3 | extrapolated | extrapolated |",
    ):
        assert text in card
    assert "| trained | demo | vision-judge | 18 | 0.500 [0.300, 0.700] | 3.250 [2.500, 4.000] |" in card
    assert "arXiv:2411.16201" in card and '{"num_frames": 8}' in card and str(tmp_path) not in card
    local = TrainManifest.model_validate_json((run / "manifest.json").read_text())
    assert local.run is not None
    local.run.config["train"]["trainer"]["model"] = str(tiny_models)  # a folder here: no Hub model to link
    assert "base_model" not in model_card(local, "me/model")
    pushed = push_model(run, "me/model")
    assert pushed.url == f"{hub.url}/me/model" and hub.repos["me/model"]["type"] == "model"
    weights = run / "round-1" / "strong" / "model.safetensors"
    assert hub.files["me/model"]["model.safetensors"] == weights.read_bytes()
    assert set(hub.files["me/model"]) == set(dry.files)


def test_no_push_offline_or_without_a_token(
    tmp_path: Path, tiny_models: Path, manager: PluginManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import constants

    run = _trained_run(tmp_path / "train", tiny_models, manager)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(UserError, match="HF_HUB_OFFLINE is set"):
        push_model(run, "me/model")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with pytest.raises(UserError, match="no Hugging Face token"):
        push_model(run, "me/model")
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    with pytest.raises(UserError, match=r"could not push .* to me/model: .*Connection refused") as refused:
        push_model(run, "me/model")
    assert TOKEN not in str(refused.value)
    (tmp_path / "train" / "manifest.json").unlink()
    with pytest.raises(UserError, match="not a training run"):
        push_model(tmp_path / "train", "me/model")
