"""``mmaip compare-scorers``: several scoring functions on the same candidate answers of a finished build.

``compare_scorers(build_dir, scorers, out, manager)`` reads the build's samples, answers and config, scores
every answer with every scorer (judgements the build already made with the same scorer fingerprint are
taken from it; new ones go through ``out/ledger.sqlite``, so a rerun pays for nothing twice), makes each
scorer's pairs with the build's pair strategy, and writes into ``out``:

- ``comparison.json`` (:class:`Comparison`: every figure of :mod:`mmaip_core.analysis.compare.stats`);
- ``judgements.jsonl`` (every scorer's Judgement of every answer, human pairs' answers included);
- ``report.md`` with ``agreement.png`` (heat maps) and ``bias.png`` (length bias, parse failures);
- ``errors.jsonl`` (human pairs that could not be read).

``human`` is a JSONL file of human-labelled pairs, ``{id, video, prompt | question, chosen, rejected}`` per
line, the same format ``mmaip train`` reads as a training set. A pair whose video and question match a
build sample is judged with that sample's ground truth and caption; any other pair with its question alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from mmaip_core.analysis.compare.stats import (
    PairAgreement,
    QuestionAgreement,
    ScorerStats,
    all_agreements,
    scorer_stats,
)
from mmaip_core.config import RunConfig, ScorerConfig, read_config_file
from mmaip_core.errors import ConfigError, EmptyRunError, UserError
from mmaip_core.plugins.kinds import Scorer, ScoreRequest
from mmaip_core.plugins.manager import PluginManager
from mmaip_core.records import AnnotatedResponse, Judgement, PreferencePair, Response, RunManifest, TrainPair, VideoQA
from mmaip_core.stages.build import make_pairs, require_build_files
from mmaip_core.stages.models import score_answers
from mmaip_core.stages.run import Progress, StageRun, load_frames
from mmaip_core.store import layout
from mmaip_core.store.files import read_record, write_text_atomic
from mmaip_core.store.jsonl import read_jsonl, write_jsonl_atomic
from mmaip_core.store.runfolder import locked
from mmaip_core.train.pairs import read_train_pairs

FRAME_CHUNK = 64
"""Questions whose frames a comparison holds at once (for scorers that look at the video)."""

__all__ = ["Comparison", "compare_scorers", "read_build", "resolve_scorers"]


class Comparison(BaseModel):
    """Everything ``comparison.json`` holds."""

    build: str = Field(description="The build folder compared.")
    strategy: str = Field(description="The pair strategy that made each scorer's pairs.")
    answers: int = Field(description="Answers with text in the build.")
    questions: int
    scorers: list[ScorerStats]
    agreement: list[PairAgreement] = Field(description="One row per two scorers.")
    per_question: list[QuestionAgreement] = Field(description="Spearman and Kendall per question and two scorers.")
    human_file: str | None = None
    human_pairs: int = 0


def read_build(build_dir: str | Path) -> tuple[RunConfig, list[VideoQA], list[AnnotatedResponse]]:
    """The config, samples and answers of a finished build."""
    build_dir = Path(build_dir)
    require_build_files(build_dir, layout.RUN_MANIFEST, layout.SAMPLES, layout.RESPONSES)
    manifest = read_record(build_dir / layout.RUN_MANIFEST, RunManifest)
    config = RunConfig.model_validate(manifest.config)
    samples = list(read_jsonl(build_dir / layout.SAMPLES, VideoQA))
    return config, samples, list(read_jsonl(build_dir / layout.RESPONSES, AnnotatedResponse))


def resolve_scorers(
    labels: Sequence[str], config_file: Path | None, build: RunConfig, manager: PluginManager
) -> dict[str, ScorerConfig]:
    """The scorer of each label: its section in ``config_file`` (a mapping label -> ``{name: plugin, options}``),
    else the plugin of that name, with the build's options when it is the build's own scorer plugin."""
    sections = read_config_file(config_file) if config_file is not None else {}
    scorers: dict[str, ScorerConfig] = {}
    problems = []
    for label in dict.fromkeys(labels):
        section = sections.get(label, {"name": label})
        if label not in sections and build.scorer is not None and build.scorer.plugin == label:
            section = build.scorer.model_dump(mode="json")
        if not isinstance(section, Mapping) or "name" not in section:
            problems.append(f"{label}: needs a mapping with the scorer plugin's name")
            continue
        try:
            scorer = ScorerConfig.model_validate(section)
            manager.options("scorer", scorer.plugin, scorer.options)
        except ConfigError as exc:
            problems.extend(f"{label}: {p}" for p in exc.problems)
            continue
        except (UserError, ValidationError) as exc:
            problems.append(f"{label}: {exc}")
            continue
        scorers[label] = scorer
    if len(scorers) + len(problems) < 2:
        problems.append("--scorers: name at least two scorers to compare")
    if problems:
        raise ConfigError(problems, source=str(config_file) if config_file else "--scorers")
    return scorers


def _human_requests(
    pairs: Sequence[TrainPair], samples: Sequence[VideoQA]
) -> tuple[list[VideoQA], list[tuple[Response, Response]]]:
    """A sample (the build's, matched by video and question, else one of its own) and two answers per pair."""
    by_video_question = {(str(Path(s.video).resolve()), s.question): s for s in samples if s.video is not None}
    own: dict[str, VideoQA] = {}
    answers = []
    for pair in pairs:
        sample = by_video_question.get((str(Path(pair.video).resolve()), pair.prompt))
        if sample is None:
            sample = own.setdefault(pair.id, VideoQA(id=f"human:{pair.id}", video=pair.video, question=pair.prompt))
        answers.append((_human_answer(pair, sample, "chosen"), _human_answer(pair, sample, "rejected")))
    return list(own.values()), answers


def _human_answer(pair: TrainPair, sample: VideoQA, side: str) -> Response:
    return Response(
        id=f"human:{pair.id}:{side}",
        sample_id=sample.id,
        model="human",
        model_id="human",
        generator="human",
        params={},
        text=getattr(pair, side),
        frames="",
    )


def compare_scorers(
    build_dir: str | Path,
    scorers: Mapping[str, ScorerConfig],
    out: str | Path,
    manager: PluginManager,
    *,
    human: str | Path | None = None,
    progress: Progress | None = None,
) -> Comparison:
    """Score the build's answers with every scorer and compare them (see the module docstring); ``out`` is held
    by this process while it runs."""
    with locked(out) as folder:
        return _compare(build_dir, scorers, folder, manager, human, progress)


@dataclass
class _Judged:
    """One scorer's judgements by response id (the build's own where its fingerprint matches) and their counts."""

    judgements: dict[str, Judgement]
    reused: int
    new: int
    cost_usd: float


def _compare(
    build_dir: str | Path,
    scorers: Mapping[str, ScorerConfig],
    out: Path,
    manager: PluginManager,
    human: str | Path | None,
    progress: Progress | None,
) -> Comparison:
    config, samples, annotated = read_build(build_dir)
    responses = [line.response for line in annotated if line.response.text is not None]
    if not responses:
        raise EmptyRunError(f"{Path(build_dir) / layout.RESPONSES}: no answer to score")
    human_pairs, errors = read_train_pairs(human) if human is not None else ([], [])
    own_samples, human_answers = _human_requests(human_pairs, samples)
    asked = [*responses, *(r for pair in human_answers for r in pair)]
    with StageRun.open(config, out, manager, progress) as run:
        created = {
            label: manager.create("scorer", s.plugin, s.options, prices=run.prices) for label, s in scorers.items()
        }
        judged = _judge_with_each(run, created, annotated, [*samples, *own_samples], asked)
    judgements = {label: j.judgements for label, j in judged.items()}
    pairs = {label: _pairs(manager, config, samples, responses, judgements[label]) for label in created}
    answers = human_answers if human is not None else None
    stats = [
        _stats(label, scorers[label].plugin, s, responses, judged[label], pairs[label], answers)
        for label, s in created.items()
    ]
    summaries, per_question = all_agreements(list(created), responses, judgements, pairs)
    comparison = Comparison(
        build=str(build_dir),
        strategy=config.pairs.plugin,
        answers=len(responses),
        questions=len({r.sample_id for r in responses}),
        scorers=stats,
        agreement=summaries,
        per_question=per_question,
        human_file=str(human) if human is not None else None,
        human_pairs=len(human_pairs),
    )
    _write(out, comparison, responses, judgements, errors)
    return comparison


def _stats(
    label: str,
    plugin: str,
    scorer: Scorer,
    responses: Sequence[Response],
    judged: _Judged,
    pairs: list[PreferencePair],
    human_answers: Sequence[tuple[Response, Response]] | None,
) -> ScorerStats:
    """One scorer's figures; with human pairs, its judgement of each pair's chosen and rejected answer."""
    outcomes = None
    if human_answers is not None:
        outcomes = [(judged.judgements.get(c.id), judged.judgements.get(r.id)) for c, r in human_answers]
    return scorer_stats(
        label,
        plugin,
        scorer.fingerprint,
        responses,
        judged.judgements,
        pairs,
        reused=judged.reused,
        new=judged.new,
        cost_usd=judged.cost_usd,
        human=outcomes,
    )


def _judge_with_each(
    run: StageRun,
    created: Mapping[str, Scorer],
    annotated: Sequence[AnnotatedResponse],
    samples: Sequence[VideoQA],
    asked: Sequence[Response],
) -> dict[str, _Judged]:
    """Every scorer's judgement of every answer asked: the build's own where the fingerprint matches, the rest
    through the comparison's ledger. When a scorer looks at the video, the questions are judged FRAME_CHUNK at a
    time, their frames read for the chunk and let go after it."""
    by_id = {s.id: s for s in samples}
    looks = any(s.uses_frames for s in created.values())
    answers: dict[str, list[Response]] = {}
    for response in asked:
        answers.setdefault(response.sample_id, []).append(response)
    order = list(answers)
    size = FRAME_CHUNK if looks else max(len(order), 1)
    own = {label: _own(annotated, scorer) for label, scorer in created.items()}
    judged = {label: _Judged(dict(own[label]), len(own[label]), 0, 0.0) for label in created}
    for start in range(0, len(order), size):
        chunk = order[start : start + size]
        frames = load_frames(run, [by_id[i] for i in chunk]) if looks else {}
        for label, scorer in created.items():
            requests = [
                ScoreRequest(sample=by_id[r.sample_id], response=r, frames=frames.get(r.sample_id))
                for sample_id in chunk
                for r in answers[sample_id]
                if r.id not in judged[label].judgements
            ]
            scored = score_answers(run, scorer, requests, label=f"judgement {label}")
            part = judged[label]
            part.judgements.update(scored.judgements)
            part.reused, part.new = part.reused + scored.reused, part.new + scored.new
            part.cost_usd += scored.cost_usd
    return judged


def _own(annotated: Sequence[AnnotatedResponse], scorer: Scorer) -> dict[str, Judgement]:
    """The build's own judgements made by ``scorer`` (same fingerprint), by response id."""
    return {line.response.id: j for line in annotated for j in line.judgements if j.fingerprint == scorer.fingerprint}


def _pairs(
    manager: PluginManager,
    config: RunConfig,
    samples: Sequence[VideoQA],
    responses: Sequence[Response],
    judgements: Mapping[str, Judgement],
) -> list[PreferencePair]:
    """The pairs the build's strategy makes from one scorer's judgements."""
    lines = [
        AnnotatedResponse(response=r, judgements=[judgements[r.id]] if r.id in judgements else []) for r in responses
    ]
    return make_pairs(manager, config.pairs.plugin, config.pairs.options, samples, lines)[0]


def _write(
    out: Path,
    comparison: Comparison,
    responses: Sequence[Response],
    judgements: Mapping[str, Mapping[str, Judgement]],
    errors: Sequence[BaseModel],
) -> None:
    """``comparison.json``, ``judgements.jsonl``, ``errors.jsonl`` and the report."""
    from mmaip_core.analysis.compare.report import write_comparison_report

    write_text_atomic(out / layout.COMPARISON, comparison.model_dump_json(indent=2))
    write_jsonl_atomic(out / layout.JUDGEMENTS, [j for per_label in judgements.values() for j in per_label.values()])
    write_jsonl_atomic(out / layout.ERRORS, errors)
    write_comparison_report(out, comparison, responses, dict(judgements))
