"""Fingerprints hash values, not how they were written: a run from its own resolved config (the one in
``run-manifest.json``) asks nothing again, and an API model behind a new address keeps its fingerprint unless
``fingerprint_endpoint`` asks for the address. The dry run plans exactly the judgements a build makes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import scripted_plugins
import yaml
from api_mock import MockServer

from mmaip_core import PluginManager, stable_json
from mmaip_core.config import load_config
from mmaip_core.stages.build import plan_build, run_build

# the options each plugin requires (the rest of its options take their defaults)
REQUIRED: dict[tuple[str, str], dict[str, Any]] = {
    ("generator", "hf"): {"model": "some/model"},
    ("generator", "openai"): {"model": "m"},
    ("generator", "anthropic"): {"model": "m"},
    ("generator", "vllm"): {"model": "some/model"},
    ("scorer", "ensemble"): {"members": [{"name": "exact-match"}, {"name": "reference"}]},
    ("scorer", "hf-judge"): {"model": "some/model"},
    ("trainer", "video-dpo"): {"smoke": {}},
    ("trainer", "sft"): {"smoke": {}},
}


def _required(manager: PluginManager, kind: str, name: str) -> dict[str, Any]:
    """The options of REQUIRED, or "x" for each required option (a path or a name, as readers need)."""
    fields = manager.get(kind, name).spec.options.model_fields
    return REQUIRED.get((kind, name), {key: "x" for key, field in fields.items() if field.is_required()})


def test_every_plugin_s_defaults_equal_their_resolved_values(manager: PluginManager) -> None:
    """What a fingerprint hashes (the options' Python values) is the same for the defaults and for the same
    options read back from their JSON (a resolved config): no default written 1 where the file holds 1.0."""
    from mmaip_core.plugins.kinds import PLUGIN_KINDS

    checked = set()
    for kind in PLUGIN_KINDS:
        for name in manager.names(kind):
            options = manager.options(kind, name, _required(manager, kind, name))
            again = manager.options(kind, name, json.loads(options.model_dump_json()))
            assert stable_json(again.model_dump()) == stable_json(options.model_dump()), f"{kind} {name}"
            checked.add(name)
    assert {
        "openai-judge",
        "anthropic-judge",
        "hf-judge",
        "vision-judge",
        "openai",
        "hf",
        "video-dpo",
        "jsonl",
    } <= checked


def _build_config(tmp_path: Path, demo_dir: Path) -> Path:
    config = tmp_path / "build.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "samples": {"path": str(demo_dir / "qa.jsonl")},
                "frames": {"num_frames": 2, "cache_dir": str(tmp_path / "frames")},
                "zoo": [
                    {"name": "api", "generator": "openai", "model": "gpt-4o-mini", "timeout_s": 5},
                    {"name": "a", "generator": "scripted", "answers": ["{truth}", "no idea"], "n": 2},
                    {"name": "b", "generator": "scripted", "model": "other", "answers": ["it is {truth}"]},
                ],
                "scorer": {"name": "openai-judge", "timeout_s": 5},
            }
        )
    )
    return config


@pytest.fixture
def scripted_manager(manager: PluginManager) -> PluginManager:
    manager.register(scripted_plugins, "scripted")
    return manager


def test_a_run_from_its_own_resolved_config_asks_nothing_again(
    server: MockServer, scripted_manager: PluginManager, demo_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    first = run_build(load_config(_build_config(tmp_path, demo_dir), scripted_manager), out, scripted_manager)
    made = len(server.requests)
    assert made == 9 + first.judgements["ok"] and first.judgements["ok"] > 0
    resolved = tmp_path / "resolved.yaml"
    resolved.write_text(yaml.safe_dump(json.loads((out / "run-manifest.json").read_text())["config"]))
    again = run_build(load_config(resolved, scripted_manager), out, scripted_manager)
    assert len(server.requests) == made, "every generation and judgement is reused"
    assert (again.judgements["reused"], again.judgements["new"]) == (first.judgements["ok"], 0)
    assert again.pairs == first.pairs


def test_the_dry_run_plans_the_judgements_the_build_makes(
    server: MockServer, scripted_manager: PluginManager, demo_dir: Path, tmp_path: Path
) -> None:
    """Three zoo entries of 1, 2 and 1 answers a question: 4 judgements a question, however alike the placeholder
    answers of the dry run would be."""
    config, out = _build_config(tmp_path, demo_dir), tmp_path / "run"
    plan = plan_build(load_config(config, scripted_manager), out, scripted_manager)
    assert [(r.stage, r.calls) for r in plan.rows] == [
        ("generation api", 9),
        ("generation a", 18),
        ("generation b", 9),
        ("judgement", 36),
    ]
    assert server.requests == []
    summary = run_build(load_config(config, scripted_manager), out, scripted_manager)
    judged = len(server.requests) - 9
    assert judged == plan.rows[-1].calls == summary.judgements["new"]
    again = plan_build(load_config(config, scripted_manager), out, scripted_manager)
    assert [(r.stored, r.new) for r in again.rows][-1] == (36, 0)


@pytest.mark.parametrize(
    ("kind", "name", "options"),
    [
        ("scorer", "openai-judge", {}),
        ("scorer", "anthropic-judge", {}),
        ("generator", "openai", {"model": "m"}),
        ("generator", "anthropic", {"model": "m"}),
        ("evaluator", "vision-judge", {"judge": {"name": "openai-judge"}}),
    ],
)
def test_the_endpoint_is_in_the_fingerprint_only_when_asked(
    manager: PluginManager, kind: str, name: str, options: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test")

    def fingerprint(url: str, asked: bool) -> str:
        where = {"base_url": url, "fingerprint_endpoint": asked}
        values = {**options, "judge": {**options["judge"], **where}} if "judge" in options else {**options, **where}
        plugin: Any = manager.create(kind, name, values)  # type: ignore[call-overload]
        return str(plugin.fingerprint)

    assert fingerprint("http://a:8000/v1", False) == fingerprint("http://b:9000/v1", False)
    assert fingerprint("http://a:8000/v1", True) != fingerprint("http://b:9000/v1", True)
    assert fingerprint("http://a:8000/v1", True) == fingerprint("http://a:8000/v1/", True)


def test_compare_scorers_reuses_the_build_s_own_judgements(
    server: MockServer, scripted_manager: PluginManager, demo_dir: Path, tmp_path: Path
) -> None:
    """compare-scorers makes the build's scorer from the resolved config in run-manifest.json: the same
    fingerprint, so the build's judgements are taken as they are."""
    from mmaip_core.analysis.compare import compare_scorers, read_build, resolve_scorers

    out = tmp_path / "run"
    summary = run_build(load_config(_build_config(tmp_path, demo_dir), scripted_manager), out, scripted_manager)
    made = len(server.requests)
    build, _, _ = read_build(out)
    scorers = resolve_scorers(["openai-judge", "exact-match"], None, build, scripted_manager)
    comparison = compare_scorers(out, scorers, tmp_path / "compare", scripted_manager)
    judge = next(s for s in comparison.scorers if s.name == "openai-judge")
    assert (judge.reused, judge.new) == (summary.judgements["ok"], 0)
    assert len(server.requests) == made
