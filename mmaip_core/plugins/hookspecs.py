"""Every hook a plugin can implement.

A plugin is a module (or object) with functions decorated by :data:`mmaip_core.hookimpl`, made known to
mmaip through an entry point in the ``mmaip`` group::

    [project.entry-points.mmaip]
    shorter = "mmaip_shorter"

Each ``mmaip_*`` hook below except :func:`mmaip_register_commands` returns a list of typed spec records
(see :mod:`mmaip_core.plugins.kinds`); mmaip calls every plugin's implementation, so several plugins can
contribute plugins of the same kind. Names must be unique per kind. Argument names are public API:
arguments may be added, never renamed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    import typer

    from mmaip_core.plugins.kinds import (
        EvaluatorSpec,
        FrameSamplerSpec,
        GeneratorSpec,
        PairStrategySpec,
        ReferencePolicySpec,
        SampleReaderSpec,
        ScorerSpec,
        TrainerSpec,
    )
    from mmaip_core.records import TrainPair

__all__ = [
    "hookimpl",
    "hookspec",
    "mmaip_evaluators",
    "mmaip_frame_samplers",
    "mmaip_pair_strategies",
    "mmaip_reference_policies",
    "mmaip_register_commands",
    "mmaip_response_generators",
    "mmaip_round_pairs",
    "mmaip_sample_readers",
    "mmaip_scorers",
    "mmaip_trainers",
]

PROJECT = "mmaip"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def mmaip_response_generators() -> list[GeneratorSpec]:
    """Register response generators: the models of the zoo.

    Called once, when the plugin manager loads. Every implementation is called; the results are
    collected. A generator's factory receives its validated options (which include ``model``) and
    returns a :class:`~mmaip_core.plugins.kinds.ResponseGenerator`.

    :return: the generator specs this plugin provides.

    Example::

        @hookimpl
        def mmaip_response_generators():
            return [GeneratorSpec(name="echo", description="Repeats the question",
                                  options=EchoOptions, factory=EchoGenerator)]
    """


@hookspec
def mmaip_scorers() -> list[ScorerSpec]:
    """Register scoring functions: rate a candidate answer on a numeric scale.

    Called once, when the plugin manager loads; every implementation is called. A scorer's factory
    returns a :class:`~mmaip_core.plugins.kinds.Scorer`, whose judgements carry a score only when their
    reply was parsed and in range.

    :return: the scorer specs this plugin provides.

    Example::

        @hookimpl
        def mmaip_scorers():
            return [ScorerSpec(name="shorter", description="Prefers short answers",
                               options=ShorterOptions, factory=ShorterScorer)]
    """


@hookspec
def mmaip_pair_strategies() -> list[PairStrategySpec]:
    """Register pair strategies: turn the scored answers of one question into preference pairs.

    Called once, when the plugin manager loads; every implementation is called.

    :return: the pair-strategy specs this plugin provides.

    Example::

        @hookimpl
        def mmaip_pair_strategies():
            return [PairStrategySpec(name="best-worst", description="argmax vs argmin",
                                     options=BestWorstOptions, factory=BestWorst)]
    """


@hookspec
def mmaip_reference_policies() -> list[ReferencePolicySpec]:
    """Register reference-update policies of iterative DPO.

    Called once, when the plugin manager loads; every implementation is called. A policy returns,
    after each round, the next reference as a linear combination of named checkpoints (base,
    reference, policy, strong).

    :return: the reference-policy specs this plugin provides.

    Example::

        @hookimpl
        def mmaip_reference_policies():
            return [ReferencePolicySpec(name="previous", description="last round's policy",
                                        factory=lambda o: Previous())]
    """


@hookspec
def mmaip_evaluators() -> list[EvaluatorSpec]:
    """Register evaluators: judge a model's predictions against the ground truth.

    Called once, when the plugin manager loads; every implementation is called.

    :return: the evaluator specs this plugin provides.

    Example::

        @hookimpl
        def mmaip_evaluators():
            return [EvaluatorSpec(name="exact-match", description="normalised string equality",
                                  options=ExactMatchOptions, factory=ExactMatchEvaluator)]
    """


@hookspec
def mmaip_frame_samplers() -> list[FrameSamplerSpec]:
    """Register frame samplers: choose which frames of a video a model or judge sees.

    Called once, when the plugin manager loads; every implementation is called.

    :return: the frame-sampler specs this plugin provides.

    Example::

        @hookimpl
        def mmaip_frame_samplers():
            return [FrameSamplerSpec(name="uniform", description="k evenly spaced frames",
                                     options=UniformOptions, factory=Uniform)]
    """


@hookspec
def mmaip_sample_readers() -> list[SampleReaderSpec]:
    """Register sample readers: dataset formats that yield VideoQA samples.

    Called once, when the plugin manager loads; every implementation is called. Readers report a
    bad row as a :class:`~mmaip_core.plugins.kinds.RowError` and go on with the rest; a file that cannot be
    read as a table at all (missing, empty, no rows, an object instead of rows) raises
    :class:`~mmaip_core.errors.SamplesFileError` naming it.

    :return: the sample-reader specs this plugin provides.

    Example::

        @hookimpl
        def mmaip_sample_readers():
            return [SampleReaderSpec(name="jsonl", description="one JSON object per line",
                                     options=JsonlOptions, factory=JsonlReader)]
    """


@hookspec
def mmaip_trainers() -> list[TrainerSpec]:
    """Register trainers: preference optimisation of a policy, one round at a time.

    Called once, when the plugin manager loads; every implementation is called. The core runs the rounds,
    the reference updates and the extrapolation; a trainer turns (reference checkpoint, pairs) into a
    policy checkpoint.

    :return: the trainer specs this plugin provides.

    Example::

        @hookimpl
        def mmaip_trainers():
            return [TrainerSpec(name="video-dpo", description="DPO on video", options=DpoOptions,
                                factory=VideoDpoTrainer)]
    """


@hookspec
def mmaip_round_pairs(round: int, model: str, reference: str, pairs: list[TrainPair]) -> list[TrainPair] | None:
    """Add pairs to a round of ``mmaip train`` (on-policy rounds).

    Called before every round with the round number (1-based), the folder of the model the round starts from
    (``model``: the base model in round 1, then the model the last round handed on), the folder of the round's
    reference (``reference``: the DPO reference, which under the ``fixed`` policy stays the base model), and the
    pairs the round would train on; every implementation is called and the pairs they return are added to the
    round. An implementation takes the arguments it names (``round, model, pairs`` is enough). Typical use:
    sample on-policy answers from the current model, i.e. run ``mmaip build`` with a zoo entry whose ``hf``
    model is ``model``, and return its pairs (see docs/training.md). An exception stops the run.

    :return: extra pairs for this round, or None.

    Example::

        @hookimpl
        def mmaip_round_pairs(round, model, pairs):
            if round > 1:
                return fresh_pairs_from(model)
    """


@hookspec
def mmaip_register_commands(app: typer.Typer) -> None:
    """Add commands to the ``mmaip`` command line.

    Called once, when the CLI starts, after plugins are loaded; every implementation is called.

    :param app: the root typer app; call ``app.command()`` or ``app.add_typer()`` on it.

    Example::

        @hookimpl
        def mmaip_register_commands(app):
            @app.command()
            def hello() -> None:
                print("hello")
    """
