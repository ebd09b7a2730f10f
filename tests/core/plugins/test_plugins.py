from __future__ import annotations

import sys
from pathlib import Path

import pytest
from helpers import fake_distribution

from mmaip_core import (
    PLUGIN_KINDS,
    DuplicatePluginError,
    PluginConfigError,
    PluginError,
    PluginManager,
    ScorerSpec,
    TrainPair,
    UnknownPluginError,
    hookimpl,
)
from mmaip_plugins.scorers import ExactMatchOptions, ExactMatchScorer


class DuplicateScorer:
    """A plugin object registering a scorer under a bundled name."""

    @hookimpl
    def mmaip_scorers(self) -> list[ScorerSpec]:
        return [ScorerSpec(name="exact-match", description="dup", options=ExactMatchOptions, factory=ExactMatchScorer)]


def test_bundled_plugins_cover_every_kind(manager: PluginManager) -> None:
    infos = manager.list()
    kinds = {info.kind for info in infos}
    assert kinds == set(PLUGIN_KINDS)
    assert all(info.package == "mmaip" for info in infos)
    assert manager.warnings == []


def test_list_filters_by_kind(manager: PluginManager) -> None:
    names = [info.name for info in manager.list("frame-sampler")]
    assert names == ["fps", "scene-change", "uniform"]


def test_unknown_name_lists_known_names_with_suggestion(manager: PluginManager) -> None:
    with pytest.raises(UnknownPluginError) as info:
        manager.get("frame-sampler", "unifrom")
    message = str(info.value)
    assert "unknown frame-sampler 'unifrom'" in message
    assert "fps, scene-change, uniform" in message
    assert "Did you mean 'uniform'?" in message
    assert info.value.valid_names == ["fps", "scene-change", "uniform"]


def test_names_are_normalised(manager: PluginManager) -> None:
    assert manager.get("pair-strategy", "Best_Worst").spec.name == "best-worst"


def test_duplicate_names_fail_naming_both_providers(manager: PluginManager) -> None:
    manager.register(DuplicateScorer(), "dup-plugin", package="mmaip-dup")
    with pytest.raises(DuplicatePluginError) as info:
        manager.get("scorer", "exact-match")
    message = str(info.value)
    assert "mmaip (mmaip_plugins.scorers)" in message
    assert "mmaip-dup (DuplicateScorer)" in message
    assert [str(d) for d in manager.duplicates()] == [message]
    # other names keep working
    assert manager.get("pair-strategy", "best-worst")


def test_plugin_raising_in_its_hook_is_skipped_with_a_warning(bare_manager: PluginManager) -> None:
    class Broken:
        @hookimpl
        def mmaip_scorers(self) -> list[ScorerSpec]:
            raise RuntimeError("kaboom")

    bare_manager.register(Broken(), "broken", package="mmaip-broken")
    assert bare_manager.names("scorer") == []
    assert any("broken" in w and "kaboom" in w for w in bare_manager.warnings)


def test_plugin_returning_wrong_records_is_skipped(bare_manager: PluginManager) -> None:
    class Wrong:
        @hookimpl
        def mmaip_scorers(self) -> list[object]:
            return ["not a spec"]

    bare_manager.register(Wrong(), "wrong")
    assert bare_manager.names("scorer") == []
    assert any("returned str" in w for w in bare_manager.warnings)


def test_plugin_with_misspelled_hook_is_rejected(bare_manager: PluginManager) -> None:
    assert bare_manager.register(Misspelled(), "misspelled") is False
    assert any("misspelled" in w and "invalid" in w for w in bare_manager.warnings)


def test_a_plugin_registered_for_a_block_is_gone_after_it(bare_manager: PluginManager) -> None:
    pair = TrainPair(id="p", video="v.mp4", prompt="q", chosen="a", rejected="b")

    class AddsOne:
        @hookimpl
        def mmaip_round_pairs(self, round: int) -> list[TrainPair]:
            return [pair.model_copy(update={"id": f"added-{round}"})]

    with bare_manager.registered(DuplicateScorer(), "scorer-for-a-block"), bare_manager.registered(AddsOne(), "adds"):
        assert [p.id for p in bare_manager.call_round_pairs(2, "m", "r", [pair])] == ["added-2"]
        assert bare_manager.names("scorer") == ["exact-match"]
    assert list(bare_manager.call_round_pairs(2, "m", "r", [pair])) == [] and bare_manager.names("scorer") == []
    with pytest.raises(PluginError, match="misspelled"), bare_manager.registered(Misspelled(), "misspelled"):
        pass


class Misspelled:
    @hookimpl
    def mmaip_scorer(self) -> list[ScorerSpec]:  # not a hook: the spec is mmaip_scorers
        return []


GOOD_PLUGIN = """
from mmaip_core import ScorerSpec, hookimpl
from mmaip_plugins.scorers import ExactMatchOptions, ExactMatchScorer

@hookimpl
def mmaip_scorers():
    return [ScorerSpec(name="fake-good", description="ok", options=ExactMatchOptions, factory=ExactMatchScorer)]
"""


@pytest.fixture
def fake_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    site = tmp_path / "site"
    fake_distribution(
        site,
        "mmaip-fakes",
        {"fakegood": "fake_good", "fakebroken": "fake_broken", "fakemissing": "fake_missing_module"},
        {"fake_good": GOOD_PLUGIN, "fake_broken": "raise ImportError('needs a library that is not installed')\n"},
    )
    monkeypatch.syspath_prepend(str(site))
    yield site
    for module in ("fake_good", "fake_broken"):
        sys.modules.pop(module, None)


def test_entry_point_discovery_skips_broken_plugins(fake_site: Path) -> None:
    manager = PluginManager(env={})
    info = next(i for i in manager.list("scorer") if i.name == "fake-good")
    assert (info.package, info.version, info.module) == ("mmaip-fakes", "1.0", "fake_good")
    warnings = "\n".join(manager.warnings)
    assert "fakebroken" in warnings and "needs a library" in warnings
    assert "fakemissing" in warnings and "ModuleNotFoundError" in warnings
    assert manager.get("scorer", "exact-match")  # the bundled ones still load


def test_disable_env_blocks_plugin_modules_and_single_plugins(fake_site: Path) -> None:
    manager = PluginManager(
        env={"MMAIP_DISABLE_PLUGINS": "fakegood, fakebroken,fakemissing,sampler-x,frame-sampler:fps"}
    )
    assert "fake-good" not in manager.names("scorer")
    assert manager.warnings == []
    assert manager.names("frame-sampler") == ["scene-change", "uniform"]


def test_load_env_is_an_allow_list(fake_site: Path) -> None:
    manager = PluginManager(env={"MMAIP_LOAD_PLUGINS": "fakegood,scorers"})
    assert {"exact-match", "fake-good"} <= set(manager.names("scorer"))
    assert manager.names("frame-sampler") == []
    assert PluginManager(env={"MMAIP_LOAD_PLUGINS": ""}).list() == []


def test_options_errors_name_plugin_key_and_allowed_values(manager: PluginManager) -> None:
    with pytest.raises(PluginConfigError) as info:
        manager.options("scorer", "exact-match", {"partial": "fuzzy", "colour": 1})
    problems = info.value.problems
    assert any("scorer 'exact-match'" in p and "partial" in p and "'none', 'contains' or 'f1'" in p for p in problems)
    assert any("unknown key 'colour'" in p and "allowed keys: partial, scale" in p for p in problems)


def test_create_builds_the_plugin_with_defaults(manager: PluginManager) -> None:
    sampler = manager.create("frame-sampler", "uniform", {"num_frames": 4})
    assert sampler.k == 4  # type: ignore[attr-defined]


def test_trace_env_prints_hook_calls(capsys: pytest.CaptureFixture[str]) -> None:
    manager = PluginManager(env={"MMAIP_TRACE_PLUGINS": "1", "MMAIP_LOAD_PLUGINS": "samplers"})
    manager.list()
    assert "mmaip_frame_samplers() -> plugin 'samplers'" in capsys.readouterr().err


def test_same_entry_point_name_from_two_packages_keeps_both(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = fake_distribution(
        tmp_path / "site",
        "third-party",
        {"scorers": "tp_scorers"},
        {"tp_scorers": GOOD_PLUGIN.replace("fake-good", "my-judge")},
    )
    monkeypatch.syspath_prepend(str(site))
    try:
        manager = PluginManager(env={})
        assert {"exact-match", "reference", "my-judge"} <= set(manager.names("scorer"))
        assert manager.get("scorer", "my-judge").package == "third-party"
    finally:
        sys.modules.pop("tp_scorers", None)


def test_disabling_one_provider_of_a_duplicated_name() -> None:
    env = {"MMAIP_DISABLE_PLUGINS": "Scorer:Exact_Match@mmaip-dup, sampler:x"}
    manager = PluginManager(env=env)
    manager.register(DuplicateScorer(), "dup-plugin", package="mmaip-dup")
    assert manager.get("scorer", "exact-match").package == "mmaip"
    assert any("'sampler:x' names no plugin kind" in w for w in manager.warnings)
