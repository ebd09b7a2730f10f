"""Every hook a plugin can implement.

A plugin is a module (or object) with functions decorated by :data:`mmaip_core.hookimpl`, made known to
mmaip through an entry point in the ``mmaip`` group::

    [project.entry-points.mmaip]
    shorter = "mmaip_shorter"

Each ``mmaip_*`` hook below except :func:`mmaip_register_commands` returns a list of typed spec records
(see :mod:`mmaip_core.interfaces`); mmaip calls every plugin's implementation, so several plugins can
contribute plugins of the same kind. Names must be unique per kind. Argument names are public API:
arguments may be added, never renamed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    import typer

    from mmaip_core.interfaces import (
        EvaluatorSpec,
        FrameSamplerSpec,
        GeneratorSpec,
        PairStrategySpec,
        ReferencePolicySpec,
        SampleReaderSpec,
        ScorerSpec,
    )

__all__ = [
    "hookimpl",
    "hookspec",
    "mmaip_evaluators",
    "mmaip_frame_samplers",
    "mmaip_pair_strategies",
    "mmaip_reference_policies",
    "mmaip_register_commands",
    "mmaip_response_generators",
    "mmaip_sample_readers",
    "mmaip_scorers",
]

PROJECT = "mmaip"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def mmaip_response_generators() -> list[GeneratorSpec]:
    """Register response generators: the models of the zoo.

    Called once, when the plugin manager loads. Every implementation is called; the results are
    collected. A generator's factory receives its validated options (which include ``model``) and
    returns a :class:`~mmaip_core.interfaces.ResponseGenerator`.

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
    returns a :class:`~mmaip_core.interfaces.Scorer`, whose judgements carry a score only when their
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
    bad row as a :class:`~mmaip_core.interfaces.RowError` and go on with the rest.

    :return: the sample-reader specs this plugin provides.

    Example::

        @hookimpl
        def mmaip_sample_readers():
            return [SampleReaderSpec(name="jsonl", description="one JSON object per line",
                                     options=JsonlOptions, factory=JsonlReader)]
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
