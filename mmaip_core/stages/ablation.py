"""Frame ablations: the same build or evaluation under several frame settings, reported side by side
(``mmaip build|evaluate CONFIG --out OUT --frames uniform:4 --frames uniform:8 --frames scene-change:8``).

A setting is ``N`` (the config's sampler with ``num_frames: N``), ``SAMPLER`` (its defaults), ``SAMPLER:N`` or
``SAMPLER:key=value,key=value`` (e.g. ``fps:fps=1,max_frames=32``). The decoder, resizing and cache settings of
the config's ``frames`` section are kept; its sampler options are kept only when the sampler is the same.

Each setting runs the whole command into ``OUT/frames-LABEL`` (resumable, like any run), so the models
under evaluation, the zoo and every judge that looks at the video see that setting's frames. ``OUT`` then
gets ``ablation.json`` and ``ablation.md``: per setting, a build's pairs, margins, mean score per zoo entry,
unreadable verdicts and cost; an evaluation's ratio and score per (benchmark, model, evaluator) with their
intervals, and each setting's paired difference from the first one.
"""

from __future__ import annotations

import re
import statistics
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field

from mmaip_core.analysis.metrics import MetricSummary, PairedDifference, paired_difference
from mmaip_core.analysis.report import format_estimate, format_number
from mmaip_core.config import RunConfig
from mmaip_core.errors import ConfigError, UserError
from mmaip_core.frames import FrameSettings
from mmaip_core.plugins.manager import PluginManager
from mmaip_core.records import AnnotatedResponse, EvalRecord, ParseStatus, PreferencePair
from mmaip_core.stages.build import run_build
from mmaip_core.stages.evaluate import run_evaluation
from mmaip_core.stages.run import BuildSummary, Progress
from mmaip_core.store import layout
from mmaip_core.store.files import write_text_atomic
from mmaip_core.store.jsonl import read_jsonl

__all__ = [
    "BuildAblation",
    "BuildSetting",
    "EvalAblation",
    "EvalSettingRow",
    "ablate_build",
    "ablate_evaluation",
    "frame_variants",
    "parse_frame_setting",
]


def parse_frame_setting(spec: str, base: FrameSettings) -> FrameSettings:
    """The frames section of one setting (see the module docstring)."""
    head, _, rest = spec.strip().partition(":")
    if head.isdigit():
        head, rest = base.sampler, head
    sampler = head or base.sampler
    options: dict[str, Any] = dict(base.sampler_options) if sampler == base.sampler else {}
    if rest.isdigit():
        options["num_frames"] = int(rest)
    elif rest:
        for item in rest.split(","):
            key, equals, value = item.partition("=")
            if not equals or not key.strip():
                raise ValueError(f"'{item}' is not key=value")
            options[key.strip()] = yaml.safe_load(value)
    kept = base.model_dump(include={"max_side", "backend", "cache_dir", "cache"})
    return FrameSettings.model_validate({**kept, "sampler": sampler, **options})


def _label(spec: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "-", spec.strip()).strip("-")


def frame_variants(config: RunConfig, specs: Sequence[str], manager: PluginManager) -> list[tuple[str, RunConfig]]:
    """One config per setting, labelled; every bad setting is reported at once."""
    variants: list[tuple[str, RunConfig]] = []
    problems: list[str] = []
    for spec in specs:
        try:
            frames = parse_frame_setting(spec, config.frames)
            manager.options("frame-sampler", frames.sampler, frames.sampler_options)
        except ConfigError as exc:
            problems.extend(f"--frames {spec}: {p}" for p in exc.problems)
            continue
        except (UserError, ValueError) as exc:
            problems.append(f"--frames {spec}: {exc}")
            continue
        variants.append((_label(spec), config.model_copy(update={"frames": frames})))
    labels = [label for label, _ in variants]
    if len(set(labels)) < len(labels):
        problems.append(f"--frames: settings repeated ({', '.join(labels)})")
    if problems:
        raise ConfigError(problems)
    return variants


def _progress(progress: Progress | None, label: str) -> Progress | None:
    if progress is None:
        return None
    return lambda stage, done, total, spent: progress(f"[{label}] {stage}", done, total, spent)


# --- build ------------------------------------------------------------------------------------------


class BuildSetting(BaseModel):
    """A build under one frame setting."""

    label: str
    frames: dict[str, Any] = Field(description="The setting's frames section.")
    folder: str
    samples: int
    answers: int = Field(description="Answers with text.")
    judged_ok: int
    unreadable: int = Field(description="Judgements that could not be read or were out of range.")
    pairs: int
    mean_margin: float | None = Field(description="Mean chosen-minus-rejected score of the pairs.")
    mean_score: dict[str, float | None] = Field(description="Mean score per zoo entry.")
    cost_usd: float
    refused_by_budget: int = Field(default=0, description="API calls not made: --max-cost stopped them.")


class BuildAblation(BaseModel):
    """``ablation.json`` of a build."""

    kind: str = "build"
    settings: list[BuildSetting]

    @property
    def refused_by_budget(self) -> int:
        """API calls that --max-cost left unmade, over every setting."""
        return sum(s.refused_by_budget for s in self.settings)


def _build_setting(label: str, config: RunConfig, folder: Path, summary: BuildSummary) -> BuildSetting:
    lines = list(read_jsonl(folder / layout.RESPONSES, AnnotatedResponse))
    pairs = list(read_jsonl(folder / layout.PAIRS, PreferencePair))
    scores: dict[str, list[float]] = defaultdict(list)
    judged = [j for line in lines for j in line.judgements]
    for line in lines:
        for j in line.judgements:
            if j.status is ParseStatus.OK and j.score is not None:
                scores[line.response.model].append(j.score)
    return BuildSetting(
        label=label,
        frames=config.frames.model_dump(mode="json"),
        folder=str(folder),
        samples=len({line.response.sample_id for line in lines}),
        answers=sum(line.response.text is not None for line in lines),
        judged_ok=sum(j.status is ParseStatus.OK for j in judged),
        unreadable=sum(j.status in (ParseStatus.PARSE_FAILURE, ParseStatus.OUT_OF_RANGE) for j in judged),
        pairs=len(pairs),
        mean_margin=statistics.fmean(p.margin for p in pairs) if pairs else None,
        mean_score={e.name: statistics.fmean(scores[e.name]) if scores[e.name] else None for e in config.zoo},
        cost_usd=summary.cost_usd,
        refused_by_budget=summary.refused_by_budget,
    )


def ablate_build(
    config: RunConfig,
    specs: Sequence[str],
    out: str | Path,
    manager: PluginManager,
    progress: Progress | None = None,
    max_cost: float | None = None,
    allow_config_change: bool = False,
) -> BuildAblation:
    """Run the build once per frame setting into ``out/frames-LABEL`` and write the side-by-side report.
    ``max_cost`` and ``allow_config_change`` apply to each setting's folder; a setting that ``max_cost`` stops
    is reported with the calls it left unmade (:attr:`BuildAblation.refused_by_budget`), and the next goes on."""
    out = Path(out)
    settings = []
    for label, variant in frame_variants(config, specs, manager):
        folder = out / f"frames-{label}"
        summary = run_build(
            variant,
            folder,
            manager,
            progress=_progress(progress, label),
            max_cost=max_cost,
            allow_config_change=allow_config_change,
        )
        settings.append(_build_setting(label, variant, folder, summary))
    ablation = BuildAblation(settings=settings)
    write_text_atomic(out / layout.ABLATION, ablation.model_dump_json(indent=2))
    models = [e.name for e in config.zoo]
    lines = [
        "# Frame ablation: build",
        "",
        f"| setting | samples | answers | judged | unreadable | pairs | mean margin | {' | '.join(f'mean score {m}' for m in models)} | cost $ |",
        "|---|---|---|---|---|---|---|" + "---|" * len(models) + "---|",
    ]
    for s in settings:
        means = " | ".join(format_number(s.mean_score[m]) for m in models)
        margin = format_number(s.mean_margin)
        lines.append(
            f"| {s.label} | {s.samples} | {s.answers} | {s.judged_ok} | {s.unreadable} | {s.pairs} | {margin} | {means} | {s.cost_usd:.4f} |"
        )
    write_text_atomic(out / "ablation.md", "\n".join([*lines, ""]))
    return ablation


# --- evaluation -------------------------------------------------------------------------------------


class EvalSettingRow(BaseModel):
    """One (benchmark, model, evaluator) under every setting."""

    benchmark: str
    model: str
    evaluator: str
    metrics: dict[str, MetricSummary] = Field(description="Setting label -> metrics.")
    versus_first: dict[str, PairedDifference] = Field(
        default_factory=dict, description="Setting label -> this setting minus the first, question by question."
    )


class EvalAblation(BaseModel):
    """``ablation.json`` of an evaluation."""

    kind: str = "evaluation"
    settings: dict[str, dict[str, Any]] = Field(description="Label -> frames section.")
    rows: list[EvalSettingRow]


def ablate_evaluation(
    config: RunConfig,
    specs: Sequence[str],
    out: str | Path,
    manager: PluginManager,
    progress: Progress | None = None,
    allow_config_change: bool = False,
) -> EvalAblation:
    """Run the evaluation once per frame setting into ``out/frames-LABEL`` and write the side-by-side report
    (``allow_config_change`` applies to each setting's folder)."""
    out = Path(out)
    variants = frame_variants(config, specs, manager)
    rows: dict[tuple[str, str, str], EvalSettingRow] = {}
    verdicts: dict[tuple[str, str, str, str], list[EvalRecord]] = defaultdict(list)
    for label, variant in variants:
        folder = out / f"frames-{label}"
        results = run_evaluation(
            variant, folder, manager, progress=_progress(progress, label), allow_config_change=allow_config_change
        )
        for m in results.metrics:
            row = rows.setdefault(
                (m.benchmark, m.model, m.evaluator),
                EvalSettingRow(benchmark=m.benchmark, model=m.model, evaluator=m.evaluator, metrics={}),
            )
            row.metrics[label] = m.metrics
        for record in read_jsonl(folder / layout.VERDICTS, EvalRecord):
            verdicts[(record.benchmark, record.model, record.evaluator, label)].append(record)
    first = variants[0][0]
    for (benchmark, model, evaluator), row in rows.items():
        for label, _ in variants[1:]:
            row.versus_first[label] = paired_difference(
                verdicts[(benchmark, model, evaluator, label)], verdicts[(benchmark, model, evaluator, first)]
            )
    ablation = EvalAblation(
        settings={label: v.frames.model_dump(mode="json") for label, v in variants}, rows=list(rows.values())
    )
    write_text_atomic(out / layout.ABLATION, ablation.model_dump_json(indent=2))
    write_text_atomic(out / "ablation.md", _evaluation_report(ablation, [label for label, _ in variants]))
    return ablation


def _evaluation_report(ablation: EvalAblation, labels: list[str]) -> str:
    """``ablation.md``: every setting's ratio and score side by side, and each setting minus the first."""
    first = labels[0]
    lines = [
        "# Frame ablation: evaluation",
        "",
        "Ratio % and mean score per setting (95% bootstrap intervals over videos); the last columns: each "
        f"setting's score minus the first setting's (`{first}`), question by question.",
        "",
        f"| benchmark | model | evaluator | {' | '.join(f'{x} ratio % / score' for x in labels)} | "
        f"{' | '.join(f'{x} − {first}' for x in labels[1:])} |",
        "|---|---|---|" + "---|" * (2 * len(labels) - 1),
    ]
    for row in ablation.rows:
        cells = [
            f"{format_estimate(row.metrics[x].ratio, True)} / {format_estimate(row.metrics[x].score)}"
            if x in row.metrics
            else "–"
            for x in labels
        ]
        diffs = [format_estimate(row.versus_first[x].score) if x in row.versus_first else "–" for x in labels[1:]]
        lines.append(f"| {row.benchmark} | {row.model} | {row.evaluator} | {' | '.join(cells)} | {' | '.join(diffs)} |")
    return "\n".join([*lines, ""])
