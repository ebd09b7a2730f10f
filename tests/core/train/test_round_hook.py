"""The on-policy hook ``mmaip_round_pairs`` gets the model each round starts from (to sample from the current
model), beside the round's reference; an implementation that names only some arguments gets those."""

from __future__ import annotations

from pathlib import Path

import test_train
from test_train import _config

from mmaip_core import PluginManager, TrainPair, hookimpl
from mmaip_core.config import load_config
from mmaip_core.train import run_training

pairs_file = test_train.pairs_file  # the fixture: nine pairs on the three demo clips


class CurrentModel:
    """Records what each round offers; adds nothing."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, str, str]] = []

    @hookimpl
    def mmaip_round_pairs(self, round: int, model: str, reference: str) -> None:
        self.calls.append((round, model, reference))


class OlderPlugin:
    """Written for the hook before it offered ``model``: still called, with what it names."""

    def __init__(self) -> None:
        self.rounds: list[int] = []

    @hookimpl
    def mmaip_round_pairs(self, round: int, pairs: list[TrainPair]) -> list[TrainPair]:
        self.rounds.append(round)
        return [pairs[0].model_copy(update={"id": f"{pairs[0].id}-again-{round}"})]


def test_the_hook_gets_the_model_the_round_starts_from(
    pairs_file: Path, tiny_models: Path, tmp_path: Path, manager: PluginManager
) -> None:
    current, older = CurrentModel(), OlderPlugin()
    assert manager.register(current, "current-model") and manager.register(older, "older-plugin")
    path = _config(tmp_path, pairs_file, tiny_models, reference={"policy": "fixed"}, alpha=0.0)
    manifest = run_training(load_config(path, manager), tmp_path / "out", manager)
    r1, r2 = manifest.rounds
    assert current.calls == [(1, manifest.base, manifest.base), (2, r2.init, manifest.base)]
    assert r2.init not in (None, manifest.base) and r2.reference == manifest.base  # fixed: the reference stays
    assert older.rounds == [1, 2] and r1.result.pairs == r2.result.pairs == 10  # nine pairs and the one added
