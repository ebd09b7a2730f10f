"""On-policy rounds (a control): before every round, the model the round starts from answers the round's
questions again and its own answers are scored and paired, as the paper's iterative setting samples the
current model each round.

:class:`OnPolicyPairs` implements the public ``mmaip_round_pairs`` hook, the way a third-party plugin would:
for round t it takes the questions of the round's zoo pairs (its shard), runs an ordinary ``mmaip build``
(config ``<folder>/round-<t>/build.yaml``) with one zoo entry, the ``hf`` generator on the current model,
``answers`` samples per question, the exact-match scorer and best-worst pairs, and returns those pairs: the
round trains on its zoo shard plus the current model's own pairs. A resumed training finds each round's
build complete and pays for nothing twice.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from mmaip_core import PluginManager, PreferencePair, TrainPair, hookimpl
from mmaip_core.config import load_config
from mmaip_core.stages.build import run_build
from mmaip_core.store import layout
from mmaip_core.store.files import write_text_atomic
from mmaip_core.store.jsonl import read_jsonl
from mmaip_core.train.pairs import read_train_pairs

__all__ = ["OnPolicyPairs"]


class OnPolicyPairs:
    """``mmaip_round_pairs`` for one training run: the current model's pairs on each round's questions.

    ``questions``: the build's questions file (``data/build-train.jsonl``, videos relative to its folder);
    ``zoo_pairs``: the zoo's pair file the rounds draw their shards from (it maps each pair to its question);
    ``build``: the rest of the build config (frames, scorer, pairs); ``sampling``: the generator's params."""

    def __init__(
        self,
        folder: Path,
        questions: Path,
        zoo_pairs: Path,
        build: dict[str, Any],
        sampling: dict[str, Any],
        answers: int,
        manager: PluginManager,
    ) -> None:
        self.folder, self.build, self.sampling, self.answers, self.manager = folder, build, sampling, answers, manager
        rows = [json.loads(line) for line in questions.read_text().splitlines() if line.strip()]
        self.rows = {row["id"]: {**row, "video": str(questions.parent / row["video"])} for row in rows}
        self.sample_of = {p.id: p.sample_id for p in read_jsonl(zoo_pairs, PreferencePair)}

    @hookimpl
    def mmaip_round_pairs(self, round: int, model: str, pairs: list[TrainPair]) -> list[TrainPair]:
        """The pairs of ``model``'s own answers on the questions of ``pairs``, ids prefixed ``on-policy-r<t>-``."""
        folder = self.folder / f"round-{round}"
        samples = dict.fromkeys(self.sample_of[p.id] for p in pairs if p.id in self.sample_of)
        questions = folder / "questions.jsonl"
        write_text_atomic(questions, "".join(json.dumps(self.rows[s]) + "\n" for s in samples if s in self.rows))
        config = {
            **self.build,
            "samples": {"reader": "jsonl", "path": str(questions)},
            "zoo": [
                {
                    "name": "current",
                    "generator": "hf",
                    "model": model,
                    "n": self.answers,
                    "batch_size": 32,
                    "params": self.sampling,
                }
            ],
        }
        path = folder / "build.yaml"
        write_text_atomic(path, yaml.safe_dump(config, sort_keys=False))
        run_build(load_config(path, self.manager), folder / "build", self.manager)
        own, _ = read_train_pairs(folder / "build" / layout.PAIRS)
        return [p.model_copy(update={"id": f"on-policy-r{round}-{p.id}"}) for p in own]
