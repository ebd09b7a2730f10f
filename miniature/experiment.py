"""The paper in miniature, end to end on a CPU: ShapesQA, a zoo of fine-tuned tiny models, a build of
preference pairs, Iter-W2S-RLAIF training of the weakest model, and an evaluation whose truth is known.

``run_miniature(out, settings, manager)`` writes run configs into ``out/configs/`` and runs them through the
same functions as ``mmaip build``, ``mmaip train`` and ``mmaip evaluate`` (each config can be rerun by hand
with those commands):

1. ``data/``: ShapesQA; the train split's first ``zoo_videos`` videos train the zoo, the others are the
   build's questions; held-out and ood are the benchmarks, held-out also with shuffled and blank frames;
2. the zoo (:mod:`mmaip_miniature.zoo`), cached; with ``base_candidates``, ``eval-base/``: the candidates and
   the zoo on the validation questions with real and shuffled frames, and the base the rule of
   :mod:`mmaip_miniature.base` chooses;
3. ``build-zoo/``: every zoo member answers every build question ``answers_per_model`` times (sampling at
   ``temperature``), the exact-match scorer (the ground truth plays GPT-4o's part) scores, best-worst pairs;
   ``build-single/``: the same from the weakest model alone, ``single_model_answers`` samples per question;
   ``pairs/``: both builds' pairs split on the last ``validation_videos`` build videos (validation, never
   trained on), and the oracle pairs (:mod:`mmaip_miniature.pairs`); with ``recipe_grid``, ``recipe-<i>/``: one
   round per grid point, and the recipe the rule of :mod:`mmaip_miniature.recipe` chooses on validation;
4. ``train-<variant>-s<seed>/``: the weakest model trained with the ``video-dpo`` trainer under every seed of
   ``seeds``: the variants (a)-(d), with ``alpha_grid`` (c-val), alpha chosen per round
   (:mod:`mmaip_miniature.chain`), and with ``controls`` the controls, the on-policy one through the
   ``mmaip_round_pairs`` hook (:mod:`mmaip_miniature.variants`, :mod:`mmaip_miniature.onpolicy`), each validated
   on the zoo's validation pairs after every round;
5. ``eval/``: every zoo member and every trained model on held-out, ood and held-out's frame controls
   (:mod:`mmaip_miniature.video_use`), with the exact-match evaluator (truth) and the text-only ``reference``
   evaluator (embedding similarity: a text-only judge, as Video-ChatGPT's);
6. ``results.json`` (:mod:`mmaip_miniature.analysis`: per model, per variant across seeds, the paired tests of
   :mod:`mmaip_miniature.stats`), ``results.md`` (tables with 95% bootstrap intervals over videos) and
   ``results.png``.
"""

from __future__ import annotations

import json
import platform
import time
from collections import defaultdict
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from pydantic import BaseModel, Field, model_validator

from mmaip_core import EvalRecord, Frames, PluginManager, VideoQA, stable_hash
from mmaip_core.analysis.metrics import paired_difference
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
from mmaip_miniature.analysis import (
    BENCHMARKS,
    GAP_SPLIT,
    Groups,
    ModelResult,
    RoundFit,
    VariantResult,
    exact_match_groups,
    paired_tests,
    round_fits,
    variant_result,
    video_gap,
)
from mmaip_miniature.base import VALIDATION_SPLIT, BaseChoice, candidate_numbers, choose_base, validation_benchmarks
from mmaip_miniature.chain import AlphaChain, train_alpha_per_round
from mmaip_miniature.configs import frames_section, models_section, write_config
from mmaip_miniature.onpolicy import OnPolicyPairs
from mmaip_miniature.pairs import oracle_pairs, split_pairs, validation_videos
from mmaip_miniature.recipe import RECIPE_GRID, RecipeChoice, RecipeFit, choose_recipe
from mmaip_miniature.stats import PairedTest
from mmaip_miniature.variants import COMPARISONS, CONTROLS, VARIANTS, train_section
from mmaip_miniature.video_use import frame_control_benchmarks
from mmaip_miniature.zoo import BASE_CANDIDATES, DEFAULT_ZOO, OTHER_MEMBERS, ZooMember, build_zoo

__all__ = ["FULL", "QUICK", "MiniatureResults", "MiniatureSettings", "ModelResult", "prepare_zoo", "run_miniature"]

Progress = Callable[[str, int, int], None]
_Step = Callable[[str], Callable[..., None]]
ALL_VARIANTS = {**VARIANTS, **CONTROLS}


class MiniatureSettings(BaseModel):
    """Everything that sets the experiment; the defaults are ``make demo``'s run (one training seed, no
    controls), :data:`FULL` is the full run and :data:`QUICK` a reduced one."""

    seed: int = Field(default=0, description="ShapesQA's seed and the builds' sampling seed.")
    seeds: list[int] = Field(
        default_factory=lambda: [0], min_length=1, description="Training seeds: every variant is trained with each."
    )
    controls: bool = Field(default=False, description="Also train the controls (SFT, fixed reference, oracle pairs).")
    train_videos: int = Field(default=1200, description="ShapesQA train videos (3 questions each).")
    zoo_videos: int = Field(
        default=900, description="Of those, the first ones train the zoo; the rest are the build's."
    )
    validation_videos: int = Field(
        default=30, ge=0, description="Of the build's videos, the last ones: their pairs validate, never train."
    )
    held_out: int = 100
    ood: int = 100
    num_frames: int = Field(default=8, description="Frames per video, for every model, scorer and trainer.")
    zoo: list[ZooMember] = Field(
        default_factory=lambda: list(DEFAULT_ZOO),
        description="The zoo. Without base_candidates the first is the base (the weakest, the model trained); with "
        "them, the other members, and the chosen base joins them first.",
    )
    base_candidates: list[ZooMember] = Field(
        default_factory=list,
        description="Candidates for the base, chosen by the rule of base.py on the validation questions (needs "
        "validation_videos >= 2); empty: the zoo's first member is the base.",
    )
    base_margin: float = Field(
        default=10.0,
        ge=0,
        description="The base's validation accuracy is at least this many points below the "
        "strongest other member's (base.py).",
    )
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
            "loss_weights": [1.0, 0.25],
        },
        description="Options of the video-dpo trainer: the point of recipe.RECIPE_GRID the full run's rule chose "
        "on 2026-11-30 (docs/miniature.md). DPO plus an SFT term on the chosen answer (RPO): with plain DPO these "
        "tiny models unlearn when to stop.",
    )
    recipe_grid: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Options over dpo, each trained one round from the base and scored on validation; the rule of "
        "recipe.py picks the one every variant uses. Empty: dpo as it is.",
    )
    recipe_tolerance: float = Field(default=0.02, ge=0, description="recipe.py's tolerance (reward accuracy).")
    alpha_grid: list[float] = Field(
        default_factory=list,
        description="With validation videos: the alphas (c-val) tries in every round besides 0 (chain.py); "
        "empty: no (c-val).",
    )
    alpha_tolerance: float = Field(
        default=0.0,
        ge=0,
        description="chain.py's tolerance (validation accuracy, 0-1): a larger alpha must win by more.",
    )
    onpolicy_answers: int = Field(
        default=4, ge=2, description="The on-policy control: samples of the current model per question and round."
    )

    @model_validator(mode="after")
    def _candidates_need_validation(self) -> MiniatureSettings:
        names = [m.name for m in [*self.base_candidates, *self.zoo]]
        if len(set(names)) < len(names):
            raise ValueError(f"zoo and base_candidates: every member needs its own name, got {names}")
        if self.base_candidates and self.validation_videos < 2:
            raise ValueError("base_candidates: choosing the base needs validation_videos >= 2")
        return self


FULL = MiniatureSettings(
    seeds=[0, 1, 2],
    controls=True,
    validation_videos=100,  # 300 questions: on 30 videos a 9-point video gap's interval still spans 0
    zoo=OTHER_MEMBERS,
    base_candidates=BASE_CANDIDATES,
    recipe_grid=RECIPE_GRID,
    alpha_grid=[0.1, 0.3, 0.5, 1.0],
)
"""The full run: the base chosen among :data:`BASE_CANDIDATES` (base.py), the recipe among :data:`RECIPE_GRID`
(recipe.py), then every variant and control under three training seeds, (c-val) choosing alpha per round among
0 and :attr:`MiniatureSettings.alpha_grid` (chain.py); about 45 minutes on 2 CPU cores from an empty cache."""

QUICK = MiniatureSettings(
    seeds=[0, 1],
    controls=True,
    train_videos=30,
    zoo_videos=18,
    validation_videos=4,
    held_out=6,
    ood=6,
    num_frames=4,
    zoo=[
        ZooMember(name="qwen2vl", family="qwen2-vl", seed=1, steps=20),
        ZooMember(name="llava-strong", family="llava-onevision", seed=2, steps=150),
    ],
    base_candidates=[
        ZooMember(name="llava-weak", family="llava-onevision", seed=0, steps=2),
        ZooMember(name="llava-alt", family="llava-onevision", seed=1, steps=4),
    ],
    recipe_grid=[{"beta": 0.1}, {"beta": 0.5, "loss_weights": [1.0, 0.25]}],
    alpha_grid=[0.5],
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
"""A reduced run for tests and a first look: the same pipeline with two seeds and the controls, minutes become
seconds, the numbers noise."""


class MiniatureResults(BaseModel):
    """``results.json``."""

    settings: MiniatureSettings
    machine: str
    date: str
    wall_s: dict[str, float] = Field(description="Seconds per stage.")
    base: BaseChoice | None = Field(
        default=None, description="How the base was chosen from settings.base_candidates, with every number."
    )
    pairs: dict[str, int] = Field(
        description="Pairs built from the zoo and from the single model; training and validation pairs per source."
    )
    recipe: RecipeChoice | None = Field(
        default=None, description="How the recipe was chosen from settings.recipe_grid, with every point's numbers."
    )
    models: list[ModelResult] = Field(description="Every zoo member, and every variant under every seed.")
    variants: list[VariantResult] = Field(default_factory=list, description="Each trained variant across seeds.")
    tests: list[PairedTest] = Field(default_factory=list, description="The paired tests of the comparisons.")
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


def _sampling(s: MiniatureSettings) -> dict[str, Any]:
    """How zoo members answer in a build."""
    return {"temperature": s.temperature, "max_new_tokens": 8, "seed": s.seed}


def _build_section(out: Path, s: MiniatureSettings) -> dict[str, Any]:
    """A build config without its samples and zoo: the exact-match scorer (the truth plays GPT-4o's part) and
    best-worst pairs."""
    return {
        "frames": frames_section(out, s.num_frames),
        "scorer": {"name": "exact-match", "partial": "none"},
        "pairs": {"strategy": "best-worst"},
    }


def _build_configs(out: Path, s: MiniatureSettings, folders: dict[str, Path]) -> dict[str, Path]:
    """The two builds' run configs, written into ``out/configs``."""
    sampling = _sampling(s)

    def zoo(names: list[str], n: int) -> list[dict[str, Any]]:
        return [
            {"name": m, "generator": "hf", "model": str(folders[m]), "n": n, "batch_size": 32, "params": sampling}
            for m in names
        ]

    build = {
        "samples": {"reader": "jsonl", "path": str(out / "data" / "build-train.jsonl")},
        **_build_section(out, s),
    }
    return {
        "build-zoo": write_config(
            out / "configs" / "build-zoo.yaml", {**build, "zoo": zoo([m.name for m in s.zoo], s.answers_per_model)}
        ),
        "build-single": write_config(
            out / "configs" / "build-single.yaml", {**build, "zoo": zoo([s.zoo[0].name], s.single_model_answers)}
        ),
    }


class _PairFiles(BaseModel):
    """The training pairs of each source and the validation pairs, with their counts."""

    train: dict[str, Path]
    validation: Path | None
    questions: Path | None = None  # the validation questions (data/validation.jsonl), with validation videos
    counts: dict[str, int]


def _pair_files(out: Path, s: MiniatureSettings) -> _PairFiles:
    """Split both builds' pairs on the validation videos and make the oracle pairs (see pairs.py)."""
    folder = out / "pairs"
    folder.mkdir(parents=True, exist_ok=True)
    validation = validation_videos(out / "data" / "build-train.jsonl", s.validation_videos)
    zoo_train, zoo_valid, n_zoo, n_valid = split_pairs(out / "build-zoo", validation, folder)
    single_train, _, n_single, _ = split_pairs(out / "build-single", validation, folder)
    oracle, n_oracle = oracle_pairs(out / "build-single", validation, folder)
    data = out / "data"
    questions = validation_benchmarks(data, data / "build-train.jsonl", validation) if validation else {}
    return _PairFiles(
        train={"zoo": zoo_train, "single": single_train, "oracle": oracle},
        validation=zoo_valid if n_valid else None,
        questions=questions.get(VALIDATION_SPLIT),
        counts={"zoo train": n_zoo, "single train": n_single, "oracle train": n_oracle, "validation": n_valid},
    )


def _train_config(out: Path, s: MiniatureSettings, key: str, seed: int, files: _PairFiles, base: Path) -> Path:
    """The run config of variant ``key`` trained with ``seed``."""
    variant = ALL_VARIANTS[key]
    section = train_section(
        variant,
        pairs=str(files.train[variant.pairs]),
        eval_pairs=str(files.validation) if files.validation else None,
        model=str(base),
        seed=seed,
        rounds=s.rounds,
        alpha=s.alpha,
        dpo=s.dpo,
    )
    return write_config(
        out / "configs" / f"train-{key}-s{seed}.yaml", {"frames": frames_section(out, s.num_frames), "train": section}
    )


def _evaluation_config(out: Path, s: MiniatureSettings, models: dict[str, Path]) -> Path:
    """Greedy answers of every model on held-out, ood and held-out's frame controls (video_use.py)."""
    data = out / "data"
    controls = frame_control_benchmarks(data, GAP_SPLIT)
    return write_config(
        out / "configs" / "eval.yaml",
        {
            "frames": frames_section(out, s.num_frames),
            "benchmarks": [
                *({"name": split, "reader": "shapesqa", "path": str(data), "split": split} for split in BENCHMARKS),
                *({"name": f"{GAP_SPLIT}-{c}", "reader": "jsonl", "path": str(path)} for c, path in controls.items()),
            ],
            "models": models_section(models),
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


def _choose_recipe(
    out: Path, s: MiniatureSettings, manager: PluginManager, files: _PairFiles, base: Path, step: _Step
) -> tuple[MiniatureSettings, RecipeChoice | None]:
    """``s`` with the recipe the rule of recipe.py chooses from ``s.recipe_grid`` (each point: one round of (a),
    the first training seed, in ``recipe-<i>/``), and the choice; ``s`` as it is without a grid or validation."""
    if not s.recipe_grid or files.validation is None or not files.counts["zoo train"]:
        return s, None
    fits = []
    for i, point in enumerate(s.recipe_grid):
        grid_point = s.model_copy(update={"dpo": {**s.dpo, **point}})
        one_round = _one_round(out, grid_point, files, base, files.train["zoo"], s.seeds[0])
        config = write_config(out / "configs" / f"recipe-{i}.yaml", one_round)
        run_training(
            load_config(config, manager), out / f"recipe-{i}", manager, resume=True, progress=step(f"recipe-{i}")
        )
        fit = round_fits(out / f"recipe-{i}" / layout.TRAIN_MANIFEST)[0][-1]
        fits.append(
            RecipeFit(
                options=point,
                validation=fit.validation,
                train_accuracy=fit.train_accuracy,
                train_margin=fit.train_margin,
            )
        )
    choice = choose_recipe(fits, s.recipe_tolerance)
    return s.model_copy(update={"dpo": {**s.dpo, **choice.chosen}}), choice


class _Trained(NamedTuple):
    key: str
    seed: int
    name: str
    folder: Path
    fits: list[RoundFit]
    final_round: int | None


def _train_all(
    out: Path, s: MiniatureSettings, manager: PluginManager, files: _PairFiles, base: Path, step: _Step
) -> tuple[list[_Trained], dict[str, str]]:
    """Every variant (and control, with ``s.controls``) under every seed, or why a variant was not trained."""
    trained, untrained, weakest = [], {}, s.zoo[0].name
    for key in [*VARIANTS, *(CONTROLS if s.controls else {})]:
        variant = ALL_VARIANTS[key]
        if variant.runner == "alpha-per-round" and not (s.alpha_grid and files.questions):
            continue  # (c-val) needs an alpha grid and validation questions
        available, needed = files.counts[f"{variant.pairs} train"], variant.train.get("rounds", s.rounds)
        if available < needed:  # one shard per round; too little to learn from: a finding, not a failure
            untrained[f"{weakest}+{key}"] = f"not trained: {available} {variant.pairs} training pair(s)"
            continue
        for seed in s.seeds:
            folder, fits, final = _train_variant(out, s, manager, files, base, key, seed, step)
            trained.append(_Trained(key, seed, f"{weakest}+{key}-s{seed}", folder, fits, final))
    return trained, untrained


def _train_variant(
    out: Path,
    s: MiniatureSettings,
    manager: PluginManager,
    files: _PairFiles,
    base: Path,
    key: str,
    seed: int,
    step: _Step,
) -> tuple[Path, list[RoundFit], int | None]:
    """Variant ``key`` trained with ``seed`` into ``out/train-<key>-s<seed>``: its final model and its fit."""
    run, variant = out / f"train-{key}-s{seed}", ALL_VARIANTS[key]
    if variant.runner == "alpha-per-round":
        assert files.questions is not None
        chain = AlphaChain(
            out=run,
            train=lambda start, shard: _one_round(out, s, files, start, shard, seed),
            frames=frames_section(out, s.num_frames),
            pairs=files.train[variant.pairs],
            validation=files.questions,
            base=base,
            seed=seed,
            rounds=s.rounds,
            grid=s.alpha_grid,
            tolerance=s.alpha_tolerance,
        )
        final, fits = train_alpha_per_round(chain, manager, step)
        return final, fits, s.rounds
    config = load_config(_train_config(out, s, key, seed, files, base), manager)
    with ExitStack() as hooks:
        if variant.runner == "on-policy":
            hooks.enter_context(manager.registered(_on_policy(out, s, manager, files, run), f"on-policy-{run.name}"))
        manifest = run_training(config, run, manager, resume=True, progress=step(run.name))
    assert manifest.final is not None
    return Path(manifest.final), *round_fits(run / layout.TRAIN_MANIFEST)


def _one_round(
    out: Path, s: MiniatureSettings, files: _PairFiles, start: Path, pairs: Path, seed: int
) -> dict[str, Any]:
    """The config of one round of (a)'s kind (``s.dpo``, validated on the validation pairs) from ``start`` on
    ``pairs``: a recipe grid point, or a round of (c-val) (chain.py)."""
    section = train_section(
        VARIANTS["a"],
        pairs=str(pairs),
        eval_pairs=str(files.validation) if files.validation else None,
        model=str(start),
        seed=seed,
        rounds=1,
        alpha=0.0,
        dpo=s.dpo,
    )
    return {"frames": frames_section(out, s.num_frames), "train": section}


def _on_policy(out: Path, s: MiniatureSettings, manager: PluginManager, files: _PairFiles, run: Path) -> OnPolicyPairs:
    """The ``mmaip_round_pairs`` implementation of the on-policy control (onpolicy.py), building into
    ``run/on-policy``."""
    return OnPolicyPairs(
        folder=run / "on-policy",
        questions=out / "data" / "build-train.jsonl",
        zoo_pairs=files.train["zoo"],
        build=_build_section(out, s),
        sampling=_sampling(s),
        answers=s.onpolicy_answers,
        manager=manager,
    )


def _model_results(
    s: MiniatureSettings, evaluation: EvalResults, groups: Groups, trained: list[_Trained]
) -> list[ModelResult]:
    """Every zoo member and every trained model: metrics, the change from the base, the video gap, the fit."""
    base = s.zoo[0].name

    def result(name: str, description: str, **more: Any) -> ModelResult:
        return ModelResult(
            model=name,
            description=description,
            metrics={f"{m.benchmark}/{m.evaluator}": m.metrics for m in evaluation.metrics if m.model == name},
            versus_base={}
            if name == base
            else {b: paired_difference(groups.get((name, b), []), groups.get((base, b), [])) for b in BENCHMARKS},
            video_gap=video_gap(groups, name),
            **more,
        )

    models = [
        result(m.name, f"zoo: {m.family}, {m.steps} SFT steps" + (" (the base)" if i == 0 else ""))
        for i, m in enumerate(s.zoo)
    ]
    for t in trained:
        description = f"({t.key}) {ALL_VARIANTS[t.key].description}, seed {t.seed}"
        models.append(result(t.name, description, variant=t.key, seed=t.seed, fit=t.fits, final_round=t.final_round))
    return models


def _variant_results(
    s: MiniatureSettings, models: list[ModelResult], groups: Groups
) -> tuple[list[VariantResult], list[PairedTest]]:
    """Each variant across its seeds, and the paired tests of the comparisons whose variants were trained."""
    per: dict[str, dict[int, ModelResult]] = defaultdict(dict)
    for m in models:
        if m.variant is not None and m.seed is not None:
            per[m.variant][m.seed] = m
    base = s.zoo[0].name
    variants = [
        variant_result(key, f"{base}+{key}", f"({key}) {ALL_VARIANTS[key].description}", by_seed, groups, base)
        for key, by_seed in per.items()
    ]
    return variants, paired_tests(COMPARISONS, per, groups)


def prepare_zoo(
    out: str | Path, settings: MiniatureSettings, manager: PluginManager, cache: Path, progress: Progress | None = None
) -> dict[str, Path]:
    """ShapesQA in ``out/data`` and the zoo and the base's candidates fine-tuned on its first train videos
    (cached in ``cache``)."""
    out, s = Path(out), settings
    data = make_shapesqa(out / "data", seed=s.seed, train=s.train_videos, held_out=s.held_out, ood=s.ood)
    zoo_rows, _ = _split_train(data, s.zoo_videos)
    samples, frames, key = _zoo_data(out, s, manager, zoo_rows)
    members = [*s.base_candidates, *s.zoo]
    return build_zoo(members, samples, frames, cache, data_key=key, batch_size=s.sft_batch_size, progress=progress)


def _choose_base(
    out: Path, s: MiniatureSettings, manager: PluginManager, folders: dict[str, Path], step: _Step
) -> tuple[list[ZooMember], BaseChoice | None]:
    """The zoo with the base first: ``s.zoo`` as it is without candidates, else the candidate the rule of
    base.py chooses on the validation questions (``eval-base/``), then ``s.zoo``."""
    if not s.base_candidates:
        return list(s.zoo), None
    data = out / "data"
    videos = validation_videos(data / "build-train.jsonl", s.validation_videos)
    benchmarks = validation_benchmarks(data, data / "build-train.jsonl", videos)
    config = {
        "frames": frames_section(out, s.num_frames),
        "benchmarks": [{"name": name, "reader": "jsonl", "path": str(path)} for name, path in benchmarks.items()],
        "models": models_section({m.name: folders[m.name] for m in [*s.base_candidates, *s.zoo]}),
        "evaluators": [{"name": "exact-match", "match": "exact"}],
    }
    path = write_config(out / "configs" / "eval-base.yaml", config)
    run_evaluation(load_config(path, manager), out / "eval-base", manager, progress=step("base"))
    groups = exact_match_groups(list(read_jsonl(out / "eval-base" / layout.VERDICTS, EvalRecord)))
    choice = choose_base(
        [candidate_numbers(groups, m.name) for m in s.base_candidates],
        [candidate_numbers(groups, m.name) for m in s.zoo],
        s.base_margin,
    )
    chosen = next(m for m in s.base_candidates if m.name == choice.chosen)
    return [chosen, *s.zoo], choice


def run_miniature(
    out: str | Path, settings: MiniatureSettings, manager: PluginManager, cache: Path, progress: Progress | None = None
) -> MiniatureResults:
    """Run the whole experiment into ``out`` (the zoo cached in ``cache``); see the module docstring.

    Both folders are made absolute first: the configs it writes name files by absolute path, since relative
    paths in a config are read from the config's own folder (``out/configs``)."""
    out, cache = Path(out).resolve(), cache.resolve()
    say = progress or (lambda *_: None)
    walls: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        walls[stage] = round(time.perf_counter() - clock, 1)
        clock = time.perf_counter()

    def step(stage: str) -> Callable[..., None]:
        return lambda task, done, total, *_: say(f"{stage}: {task}", done, total)

    folders = prepare_zoo(out, settings, manager, cache, say)
    lap("data and zoo")
    zoo, base = _choose_base(out, settings, manager, folders, step)
    s = settings.model_copy(update={"zoo": zoo, "base_candidates": []})  # the run's zoo: the base first
    lap("base")
    pairs = {}
    for build, config in _build_configs(out, s, folders).items():
        summary = run_build(load_config(config, manager), out / build, manager, progress=step(build))
        pairs[build.removeprefix("build-")] = summary.pairs
    files = _pair_files(out, s)
    lap("build")
    s, recipe = _choose_recipe(out, s, manager, files, folders[s.zoo[0].name], step)
    lap("recipe")
    trained, untrained = _train_all(out, s, manager, files, folders[s.zoo[0].name], step)
    lap("train")
    models = {m.name: folders[m.name] for m in s.zoo} | {t.name: t.folder for t in trained}
    evaluation = _evaluation_config(out, s, models)
    evaluated = run_evaluation(load_config(evaluation, manager), out / "eval", manager, progress=step("eval"))
    lap("evaluate")
    run = _Run(walls, pairs | files.counts, trained, untrained, evaluated, base, recipe, settings)
    return _write_results(out, s, run)


class _Run(NamedTuple):
    walls: dict[str, float]
    pairs: dict[str, int]
    trained: list[_Trained]
    untrained: dict[str, str]
    evaluation: EvalResults
    base: BaseChoice | None
    recipe: RecipeChoice | None
    settings: MiniatureSettings  # as given (``s``: with the chosen base first in its zoo)


def _write_results(out: Path, s: MiniatureSettings, run: _Run) -> MiniatureResults:
    """``results.json``, ``results.md`` and ``results.png`` from the evaluation and the training manifests."""
    records = list(read_jsonl(out / "eval" / layout.VERDICTS, EvalRecord))
    groups = exact_match_groups(records)
    models = _model_results(s, run.evaluation, groups, run.trained)
    variants, tests = _variant_results(s, models, groups)
    real = [r for r in records if r.benchmark in BENCHMARKS]  # the text-only judge on the real benchmarks
    drift = judge_drift(
        str(out / "eval"),
        [r for r in real if r.evaluator == "exact-match"],
        [r for r in real if r.evaluator == "reference"],
    )
    results = MiniatureResults(
        settings=run.settings,
        base=run.base,
        recipe=run.recipe,
        machine=_machine(),
        date=datetime.now(UTC).strftime("%Y-%m-%d"),
        wall_s=run.walls,
        pairs=run.pairs,
        models=models,
        variants=variants,
        tests=tests,
        untrained=run.untrained,
        text_judge=drift.rows,
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
