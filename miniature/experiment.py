"""The paper in miniature, end to end on a CPU: ShapesQA, a zoo of fine-tuned tiny models, a build of
preference pairs, Iter-W2S-RLAIF training of the weakest model, and an evaluation whose truth is known.

``run_miniature(out, settings, manager)`` writes run configs into ``out/configs/`` and runs them through the
same functions as ``mmaip build``, ``mmaip train`` and ``mmaip evaluate`` (each config can be rerun by hand
with those commands):

1. ``data/``: ShapesQA; the train split's first ``zoo_videos`` videos train the zoo, the others are the
   build's questions; held-out and ood are the benchmarks.
2. the zoo (:mod:`mmaip_miniature.zoo`), cached;
3. ``build-zoo/``: every zoo member answers every build question ``answers_per_model`` times (sampling at
   ``temperature``), the exact-match scorer (the ground truth plays GPT-4o's part) scores, best-worst pairs;
   ``build-single/``: the same from the weakest model alone, ``single_model_answers`` samples per question;
4. training of the weakest model with the ``video-dpo`` trainer: (a) one round against a fixed reference;
   (b) ``rounds`` rounds, the reference updated to the last policy; (c) ``rounds`` rounds, the reference
   updated to the extrapolated model (ExPO, ``alpha``): the paper's method; (d) as (c) on the single-model
   pairs. (b)-(d) train on one disjoint shard of the pairs per round, so (a)-(c) see every pair once;
5. ``eval/``: every zoo member and (a)-(d) on held-out and ood, with the exact-match evaluator (truth) and the
   text-only ``reference`` evaluator (embedding similarity: a text-only judge, as Video-ChatGPT's);
6. ``results.json``, ``results.md`` (tables with 95% bootstrap intervals over videos) and ``results.png``.
"""

from __future__ import annotations

import json
import platform
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field

from mmaip_core import EvalRecord, Frames, PluginManager, VideoQA, stable_hash
from mmaip_core.analysis.metrics import MetricSummary, PairedDifference, paired_difference
from mmaip_core.config import load_config
from mmaip_core.frames import FrameLoader, FrameSettings
from mmaip_core.stages.build import run_build
from mmaip_core.stages.drift import DriftRow, judge_drift
from mmaip_core.stages.evaluate import EvalResults, run_evaluation
from mmaip_core.store import layout
from mmaip_core.store.files import write_text_atomic
from mmaip_core.store.jsonl import read_jsonl
from mmaip_core.testbeds.shapesqa import make_shapesqa
from mmaip_core.train import run_training
from mmaip_miniature.zoo import DEFAULT_ZOO, ZooMember, build_zoo

__all__ = ["QUICK", "MiniatureResults", "MiniatureSettings", "ModelResult", "prepare_zoo", "run_miniature"]

Progress = Callable[[str, int, int], None]
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "a": ("1 round of DPO, fixed reference", {"rounds": 1, "reference": {"policy": "fixed"}, "alpha": 0.0}),
    "b": ("T rounds, reference updated", {"reference": {"policy": "previous"}, "alpha": 0.0, "schedule": "shards"}),
    "c": (
        "T rounds, reference updated, extrapolated (the paper)",
        {"reference": {"policy": "extrapolated"}, "schedule": "shards"},
    ),
    "d": (
        "as (c), pairs from the weakest model alone",
        {"reference": {"policy": "extrapolated"}, "schedule": "shards"},
    ),
}


class MiniatureSettings(BaseModel):
    """Everything that sets the experiment; the defaults are the full run."""

    seed: int = 0
    train_videos: int = Field(default=1200, description="ShapesQA train videos (3 questions each).")
    zoo_videos: int = Field(
        default=900, description="Of those, the first ones train the zoo; the rest are the build's."
    )
    held_out: int = 100
    ood: int = 100
    num_frames: int = Field(default=8, description="Frames per video, for every model, scorer and trainer.")
    zoo: list[ZooMember] = Field(default_factory=lambda: list(DEFAULT_ZOO), description="The first is the weakest.")
    sft_batch_size: int = 32
    answers_per_model: int = 2
    single_model_answers: int = 8
    temperature: float = 0.7
    rounds: int = 3
    alpha: float = 0.3
    dpo: dict[str, Any] = Field(
        default_factory=lambda: {
            "learning_rate": 2e-4,
            "beta": 0.1,
            "epochs": 2,
            "batch_size": 16,
            "loss_type": ["sigmoid", "sft"],
            "loss_weights": [1.0, 1.0],
        },
        description="Options of the video-dpo trainer. DPO plus an SFT term on the chosen answer (RPO): with "
        "plain DPO these tiny models unlearn when to stop (see docs/miniature.md).",
    )


QUICK = MiniatureSettings(
    train_videos=30,
    zoo_videos=18,
    held_out=6,
    ood=6,
    num_frames=4,
    zoo=[
        ZooMember(name="llava-weak", family="llava-onevision", seed=0, steps=2),
        ZooMember(name="qwen2vl", family="qwen2-vl", seed=1, steps=20),
        ZooMember(name="llava-strong", family="llava-onevision", seed=2, steps=150),
    ],
    sft_batch_size=8,
    temperature=0.3,
    single_model_answers=4,
    rounds=2,
    dpo={
        "learning_rate": 1e-3,
        "beta": 0.1,
        "epochs": 1,
        "batch_size": 8,
        "loss_type": ["sigmoid", "sft"],
        "loss_weights": [1.0, 1.0],
    },
)
"""A reduced run for tests and a first look: the same pipeline, minutes become seconds, the numbers noise."""


class ModelResult(BaseModel):
    """One evaluated model."""

    model: str
    description: str
    metrics: dict[str, MetricSummary] = Field(description="'benchmark/evaluator' -> metrics.")
    versus_base: dict[str, PairedDifference] = Field(
        default_factory=dict, description="benchmark -> exact-match score minus the base model's, question by question."
    )


class MiniatureResults(BaseModel):
    """``results.json``."""

    settings: MiniatureSettings
    machine: str
    date: str
    wall_s: dict[str, float] = Field(description="Seconds per stage.")
    pairs: dict[str, int] = Field(description="Pairs built from the zoo and from the single model.")
    models: list[ModelResult]
    untrained: dict[str, str] = Field(default_factory=dict, description="Variants that could not be trained, and why.")
    text_judge: list[DriftRow] = Field(description="The text-only reference evaluator against exact match.")


def _split_train(data: Path, zoo_videos: int) -> tuple[Path, Path]:
    """``zoo-train.jsonl`` (questions on the first ``zoo_videos`` train videos) and ``build-train.jsonl``."""
    rows = [json.loads(line) for line in (data / "train.jsonl").read_text().splitlines() if line.strip()]
    videos = list(dict.fromkeys(r["video"] for r in rows))
    zoo_set = set(videos[:zoo_videos])
    paths = data / "zoo-train.jsonl", data / "build-train.jsonl"
    for path, keep in zip(paths, (True, False), strict=True):
        write_text_atomic(path, "".join(json.dumps(r) + "\n" for r in rows if (r["video"] in zoo_set) == keep))
    return paths


def _write(path: Path, config: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, yaml.safe_dump(config, sort_keys=False))
    return path


def _configs(out: Path, s: MiniatureSettings, folders: dict[str, Path]) -> dict[str, Path]:
    """Every run config of the experiment, written into ``out/configs``."""
    data = out / "data"
    frames = {"sampler": "uniform", "num_frames": s.num_frames, "cache_dir": str(out / "cache" / "frames")}
    weakest = s.zoo[0].name
    sampling = {"temperature": s.temperature, "max_new_tokens": 8, "seed": s.seed}

    def zoo(names: list[str], n: int) -> list[dict[str, Any]]:
        return [
            {"name": m, "generator": "hf", "model": str(folders[m]), "n": n, "batch_size": 32, "params": sampling}
            for m in names
        ]

    build = {
        "samples": {"reader": "jsonl", "path": str(data / "build-train.jsonl")},
        "frames": frames,
        "scorer": {"name": "exact-match", "partial": "none"},
        "pairs": {"strategy": "best-worst"},
    }
    configs = {
        "build-zoo": _write(
            out / "configs" / "build-zoo.yaml", {**build, "zoo": zoo([m.name for m in s.zoo], s.answers_per_model)}
        ),
        "build-single": _write(
            out / "configs" / "build-single.yaml", {**build, "zoo": zoo([weakest], s.single_model_answers)}
        ),
    }
    for variant, (_, train) in VARIANTS.items():
        pairs = out / ("build-single" if variant == "d" else "build-zoo") / layout.PAIRS
        section = {
            "pairs": str(pairs),
            "rounds": s.rounds,
            "alpha": s.alpha,
            "seed": s.seed,
            **train,
            "trainer": {"name": "video-dpo", "model": str(folders[weakest]), "seed": s.seed, **s.dpo},
        }
        configs[f"train-{variant}"] = _write(
            out / "configs" / f"train-{variant}.yaml", {"frames": frames, "train": section}
        )
    return configs


def _evaluation_config(out: Path, s: MiniatureSettings, models: dict[str, Path]) -> Path:
    greedy = {"temperature": 0, "max_new_tokens": 8}
    return _write(
        out / "configs" / "eval.yaml",
        {
            "frames": {"sampler": "uniform", "num_frames": s.num_frames, "cache_dir": str(out / "cache" / "frames")},
            "benchmarks": [
                {"name": split, "reader": "shapesqa", "path": str(out / "data"), "split": split}
                for split in ("held-out", "ood")
            ],
            "models": [
                {"name": name, "generator": "hf", "model": str(folder), "batch_size": 32, "params": greedy}
                for name, folder in models.items()
            ],
            "evaluators": [{"name": "exact-match", "match": "exact"}, {"name": "reference"}],
        },
    )


def _zoo_data(
    out: Path, s: MiniatureSettings, manager: PluginManager, path: Path
) -> tuple[list[VideoQA], Callable[[], dict[str, Frames]], str]:
    """The zoo's training samples, a loader of their frames by video, and the key of both."""
    samples = [
        x for x in manager.create("sample-reader", "jsonl", {"path": str(path)}).read() if isinstance(x, VideoQA)
    ]

    def frames() -> dict[str, Frames]:
        loader = FrameLoader(
            FrameSettings.model_validate({"num_frames": s.num_frames, "cache_dir": str(out / "cache" / "frames")}),
            manager,
        )
        videos = dict.fromkeys(sample.video for sample in samples if sample.video is not None)
        return {video: loader.load(video) for video in videos}

    # the frames are a function of the videos (fixed by the ShapesQA manifest) and the frame settings
    manifest = (path.parent / "shapesqa.json").read_text()
    key = stable_hash({"rows": path.read_text(), "data": manifest, "num_frames": s.num_frames})
    return samples, frames, key


def _results(
    out: Path, s: MiniatureSettings, descriptions: dict[str, str], evaluation: EvalResults
) -> tuple[list[ModelResult], list[DriftRow]]:
    records = list(read_jsonl(out / "eval" / layout.VERDICTS, EvalRecord))
    groups: dict[tuple[str, str, str], list[EvalRecord]] = defaultdict(list)
    for r in records:
        groups[(r.model, r.benchmark, r.evaluator)].append(r)
    base = s.zoo[0].name
    models = []
    for name, description in descriptions.items():
        metrics = {f"{m.benchmark}/{m.evaluator}": m.metrics for m in evaluation.metrics if m.model == name}
        versus = {
            b: paired_difference(groups[(name, b, "exact-match")], groups[(base, b, "exact-match")])
            for b in ("held-out", "ood")
            if name != base
        }
        models.append(ModelResult(model=name, description=description, metrics=metrics, versus_base=versus))
    drift = judge_drift(
        str(out / "eval"),
        [r for r in records if r.evaluator == "exact-match"],
        [r for r in records if r.evaluator == "reference"],
    )
    return models, drift.rows


def prepare_zoo(
    out: str | Path, settings: MiniatureSettings, manager: PluginManager, cache: Path, progress: Progress | None = None
) -> dict[str, Path]:
    """ShapesQA in ``out/data`` and the zoo fine-tuned on its first train videos (cached in ``cache``)."""
    out, s = Path(out), settings
    data = make_shapesqa(out / "data", seed=s.seed, train=s.train_videos, held_out=s.held_out, ood=s.ood)
    zoo_rows, _ = _split_train(data, s.zoo_videos)
    samples, frames, key = _zoo_data(out, s, manager, zoo_rows)
    return build_zoo(s.zoo, samples, frames, cache, data_key=key, batch_size=s.sft_batch_size, progress=progress)


def run_miniature(
    out: str | Path, settings: MiniatureSettings, manager: PluginManager, cache: Path, progress: Progress | None = None
) -> MiniatureResults:
    """Run the whole experiment into ``out`` (the zoo cached in ``cache``); see the module docstring.

    Both folders are made absolute first: the configs it writes name files by absolute path, since relative
    paths in a config are read from the config's own folder (``out/configs``)."""
    out, cache, s = Path(out).resolve(), cache.resolve(), settings
    say = progress or (lambda *_: None)
    walls: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        walls[stage] = round(time.perf_counter() - clock, 1)
        clock = time.perf_counter()

    folders = prepare_zoo(out, s, manager, cache, say)
    lap("data and zoo")
    configs = _configs(out, s, folders)

    def step(stage: str) -> Callable[..., None]:
        return lambda task, done, total, *_: say(f"{stage}: {task}", done, total)

    pairs = {}
    for build in ("build-zoo", "build-single"):
        summary = run_build(load_config(configs[build], manager), out / build, manager, progress=step(build))
        pairs[build.removeprefix("build-")] = summary.pairs
    lap("build")
    trained, untrained = {}, {}
    for variant in VARIANTS:
        name, source = f"train-{variant}", "single" if variant == "d" else "zoo"
        needed = 1 if variant == "a" else s.rounds  # one shard per round
        if pairs[source] < needed:  # too little to learn from: a finding, not a failure
            untrained[f"{s.zoo[0].name}+{variant}"] = f"not trained: the {source} build made {pairs[source]} pair(s)"
            continue
        manifest = run_training(
            load_config(configs[name], manager), out / name, manager, resume=True, progress=step(name)
        )
        assert manifest.final is not None
        trained[f"{s.zoo[0].name}+{variant}"] = Path(manifest.final)
    lap("train")
    descriptions = {
        m.name: f"zoo: {m.family}, {m.steps} SFT steps" + (" (the base)" if i == 0 else "") for i, m in enumerate(s.zoo)
    }
    descriptions.update({name: f"({name[-1]}) {VARIANTS[name[-1]][0]}" for name in trained})
    evaluation = _evaluation_config(out, s, {**folders, **trained})
    evaluated = run_evaluation(load_config(evaluation, manager), out / "eval", manager, progress=step("eval"))
    lap("evaluate")
    models, text_judge = _results(out, s, descriptions, evaluated)
    results = MiniatureResults(
        settings=s,
        machine=_machine(),
        date=datetime.now(UTC).strftime("%Y-%m-%d"),
        wall_s=walls,
        pairs=pairs,
        models=models,
        untrained=untrained,
        text_judge=text_judge,
    )
    write_text_atomic(out / layout.RESULTS, results.model_dump_json(indent=2))
    from mmaip_miniature.report import write_results

    write_results(out, results)
    return results


def _machine() -> str:
    """The CPU model (from /proc/cpuinfo on Linux), the cores this process may use, and the memory."""
    import os

    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [
            line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if line.startswith("model name")
        ]
        cpu = names[0] if names else cpu
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30 if hasattr(os, "sysconf") else None
    return f"{cpu}, {cores} cores" + (f", {memory:.0f} GiB" if memory else "")
