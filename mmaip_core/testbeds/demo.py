"""The bundled demo: synthetic videos and a run config that builds preference pairs, trains on them for two
rounds (DPO with extrapolation) and evaluates, offline.

It needs no network and no GPU: the zoo is three tiny random models (``smoke``), the scorer the offline
``reference`` scorer, the pairs ``best-worst``; training runs the ``video-dpo`` trainer on a tiny Qwen2-VL; the
evaluation runs two tiny models (and, added by ``mmaip demo``, the trained one) with the offline
``reference`` and ``exact-match`` evaluators and, added by ``mmaip demo``, a ``text-judge`` under the named
``lmms-eval`` judge protocol with the trained tiny model as a local judge (``hf-judge``): its replies cannot be
read, so the protocol's rule imputes each verdict as no, 0 and reports it so. The answers of random models are noise; the demo shows the
machinery, not the method.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mmaip_core.store.files import write_text_atomic
from mmaip_core.testbeds.synthetic import make_demo_dataset

if TYPE_CHECKING:
    from mmaip_core.analysis.compare import Comparison
    from mmaip_core.config import RunConfig
    from mmaip_core.plugins.manager import PluginManager
    from mmaip_core.records import TrainManifest
    from mmaip_core.stages.evaluate import EvalResults
    from mmaip_core.stages.run import BuildSummary, Progress
    from mmaip_core.train.loop import TrainProgress

__all__ = ["DEMO_CONFIG", "DemoRun", "prepare_demo", "run_demo"]

DEMO_CONFIG = """\
# The bundled demo run config (see docs/config.md for every key).
samples:
  reader: jsonl
  path: data/qa.jsonl
frames:
  sampler: uniform
  num_frames: 8
  cache_dir: cache/frames
zoo:
  - name: tiny-qwen2vl-a
    generator: smoke
    family: qwen2-vl
    seed: 0
    n: 2
  - name: tiny-qwen2vl-b
    generator: smoke
    family: qwen2-vl
    seed: 1
  - name: tiny-llava-ov
    generator: smoke
    family: llava-onevision
    seed: 0
scorer:
  name: reference
pairs:
  strategy: best-worst
# evaluation (mmaip evaluate): the same tiny models, greedy, judged offline
benchmarks:
  - name: shapes-demo
    reader: jsonl
    path: data/qa.jsonl
models:
  - name: tiny-qwen2vl
    generator: smoke
    family: qwen2-vl
    params: {temperature: 0, max_new_tokens: 8}
  - name: tiny-llava-ov
    generator: smoke
    family: llava-onevision
    params: {temperature: 0, max_new_tokens: 8}
evaluators:
  - name: reference
  - name: exact-match
# training (mmaip train): two Iter-W2S rounds of DPO on the pairs the build wrote, on a tiny model
train:
  pairs: build/pairs.jsonl
  rounds: 2
  alpha: 0.3
  reference: {policy: extrapolated}
  trainer:
    name: video-dpo
    smoke: {family: qwen2-vl, seed: 0}
    learning_rate: 0.001
    batch_size: 2
    epochs: 2
"""


def prepare_demo(out: str | Path, num_videos: int = 6) -> Path:
    """Write the demo dataset and ``demo.yaml`` into ``out``; return the config's path."""
    out = Path(out)
    make_demo_dataset(out / "data", num_videos=num_videos)
    config = out / "demo.yaml"
    write_text_atomic(config, DEMO_CONFIG)
    return config


@dataclass
class DemoRun:
    """What :func:`run_demo` made: the config, and each stage's result (its folder is ``out/<stage>``)."""

    config: Path
    build: BuildSummary
    training: TrainManifest
    evaluation: EvalResults
    comparison: Comparison


def run_demo(
    out: str | Path,
    manager: PluginManager,
    num_videos: int = 6,
    progress: Progress | None = None,
    train_progress: TrainProgress | None = None,
) -> DemoRun:
    """The whole demo into ``out``: data and config, a build (``build/``), two rounds of training on its pairs
    (``train/``, resumed on a rerun), an evaluation of the trained model beside its base and another tiny model
    (``evaluation/``, with a judge protocol's evaluator), and the build's answers scored by ``reference`` and
    ``exact-match`` (``compare/``)."""
    from mmaip_core.analysis.compare import compare_scorers, resolve_scorers
    from mmaip_core.config import load_config
    from mmaip_core.stages.build import run_build
    from mmaip_core.stages.evaluate import run_evaluation
    from mmaip_core.train import run_training

    out = Path(out)
    config_path = prepare_demo(out, num_videos=num_videos)
    config = load_config(config_path, manager)
    summary = run_build(config, out / "build", manager, progress=progress)
    manifest = run_training(config, out / "train", manager, resume=True, progress=train_progress)
    if manifest.final is not None:  # the evaluation compares the trained model with its base
        config = _with_trained_model(config, manifest.final)
    results = run_evaluation(config, out / "evaluation", manager, progress=progress)
    scorers = resolve_scorers(["reference", "exact-match"], None, config, manager)
    comparison = compare_scorers(out / "build", scorers, out / "compare", manager, progress=progress)
    return DemoRun(config_path, summary, manifest, results, comparison)


def _with_trained_model(config: RunConfig, model: str) -> RunConfig:
    """``config`` with the trained ``model`` among the evaluated models and as the local judge of a
    ``text-judge`` evaluator under the ``lmms-eval`` protocol."""
    from mmaip_core.config import EvaluatorConfig, ZooEntry

    trained = ZooEntry.model_validate(
        {
            "name": "tiny-qwen2vl-trained",
            "generator": "hf",
            "model": model,
            "device": "cpu",
            "params": {"temperature": 0, "max_new_tokens": 8},
        }
    )
    judge = EvaluatorConfig.model_validate(
        {
            "name": "lmms-eval-judge",
            "evaluator": "text-judge",
            "protocol": "lmms-eval",
            "judge": {"name": "hf-judge", "model": model, "device": "cpu"},
        }
    )
    return config.model_copy(update={"models": [*config.models, trained], "evaluators": [*config.evaluators, judge]})
