"""The figures of a scorer comparison, computed from judgements and pairs alone (no model calls), so each
can be checked by hand on a small fixture.

Definitions (per unordered pair of scorers A, B, on the answers both scored successfully):

- ``spearman`` / ``kendall``: the rank correlation of A's and B's scores over one question's answers, per
  question, averaged over the questions where it is defined (at least two answers, neither scorer constant);
- ``kappa``: Cohen's kappa of the chosen/rejected decision, pooled over every two answers of a question:
  each rater says first, second or tie (``agreement.pairwise_preferences``); ``decision_agreement`` is the
  raw share of equal decisions;
- ``pair_agreement``: among questions where both scorers made pairs (with the build's pair strategy), the
  share where they made exactly the same (chosen, rejected) pairs; ``changed_a_to_b``: pairs of A's data set
  that would not exist had B been the scorer (and ``changed_b_to_a`` the other way round).

Per scorer: parse failures (unreadable or out-of-range verdicts) over judged answers; length bias (Spearman
and Pearson of score with answer length in words, over every successfully scored answer); cost and mean
latency; agreement with human pairs (share of pairs whose chosen answer the scorer scores strictly higher,
ties and unscored pairs counted apart). Position bias exists only for prompts that show several answers at
once; mmaip's ``Scorer`` interface scores one answer per prompt, so it is reported as not applicable.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Mapping, Sequence
from itertools import combinations
from typing import Any

from pydantic import BaseModel, Field

from mmaip_core.analysis.agreement import Preference, cohen_kappa, kendall, pairwise_preferences, pearson, spearman
from mmaip_core.records import Judgement, ParseStatus, PreferencePair, Response

__all__ = [
    "POSITION_BIAS_NOTE",
    "HumanAgreement",
    "LengthBias",
    "PairAgreement",
    "QuestionAgreement",
    "ScorerStats",
    "agreement",
    "all_agreements",
    "human_agreement",
    "scorer_stats",
]

POSITION_BIAS_NOTE = "not applicable: every scorer rates one answer per prompt, so there is no order to swap"


class LengthBias(BaseModel):
    n: int = Field(description="Successfully scored answers.")
    spearman: float | None = Field(description="Rank correlation of score with answer length (words).")
    pearson: float | None = Field(description="Linear correlation of score with answer length (words).")


class HumanAgreement(BaseModel):
    pairs: int = Field(description="Human pairs read.")
    agree: int = Field(description="Pairs whose chosen answer the scorer scores strictly higher.")
    disagree: int = Field(description="Pairs whose rejected answer the scorer scores strictly higher.")
    ties: int = Field(description="Pairs scored equal.")
    unscored: int = Field(description="Pairs where either answer could not be scored.")
    rate: float | None = Field(description="agree / (agree + disagree + ties).")


class ScorerStats(BaseModel):
    """One scorer's figures."""

    name: str = Field(description="The scorer's label in this comparison.")
    plugin: str
    fingerprint: str
    judged: int = Field(description="Answers judged.")
    ok: int
    parse_failures: int = Field(description="Verdicts that could not be read or were out of range.")
    errors: int = Field(description="Judgements that failed otherwise (no ground truth, API error).")
    parse_failure_rate: float | None
    pairs: int = Field(description="Pairs the build's strategy makes from this scorer's scores.")
    reused: int = Field(description="Judgements taken from the build or this folder's ledger.")
    new: int = Field(description="Judgements asked in this run.")
    cost_usd: float
    cost_per_pair_usd: float | None
    mean_latency_s: float | None = Field(description="Mean seconds per judgement (where timed).")
    length_bias: LengthBias
    position_bias: str = POSITION_BIAS_NOTE
    human: HumanAgreement | None = None


class QuestionAgreement(BaseModel):
    sample_id: str
    a: str
    b: str
    answers: int
    spearman: float | None
    kendall: float | None


class PairAgreement(BaseModel):
    """Agreement of scorers ``a`` and ``b`` (see the module docstring)."""

    a: str
    b: str
    questions: int = Field(description="Questions with at least two answers both scored.")
    spearman: float | None
    spearman_questions: int
    kendall: float | None
    kendall_questions: int
    kappa: float | None
    decisions: int = Field(description="Answer pairs both scorers decided on.")
    decision_agreement: float | None
    pair_questions: int = Field(description="Questions where both scorers made pairs.")
    same_pairs: int = Field(description="Of those, questions with exactly the same pairs.")
    pair_agreement: float | None
    changed_a_to_b: int
    changed_b_to_a: int


def _ok(judgement: Judgement | None) -> float | None:
    return judgement.score if judgement is not None and judgement.status is ParseStatus.OK else None


def _mean(values: Sequence[float | None]) -> tuple[float | None, int]:
    defined = [v for v in values if v is not None]
    return (statistics.fmean(defined) if defined else None), len(defined)


def human_agreement(outcomes: Sequence[tuple[Judgement | None, Judgement | None]]) -> HumanAgreement:
    """``outcomes``: the scorer's (chosen, rejected) judgements of each human pair."""
    counts = {"agree": 0, "disagree": 0, "ties": 0, "unscored": 0}
    for chosen, rejected in outcomes:
        x, y = _ok(chosen), _ok(rejected)
        key = "unscored" if x is None or y is None else "agree" if x > y else "disagree" if y > x else "ties"
        counts[key] += 1
    decided = counts["agree"] + counts["disagree"] + counts["ties"]
    return HumanAgreement(pairs=len(outcomes), **counts, rate=counts["agree"] / decided if decided else None)


def scorer_stats(
    name: str,
    plugin: str,
    fingerprint: str,
    responses: Sequence[Response],
    judgements: Mapping[str, Judgement],
    pairs: Sequence[PreferencePair],
    *,
    reused: int,
    new: int,
    cost_usd: float,
    human: Sequence[tuple[Judgement | None, Judgement | None]] | None = None,
) -> ScorerStats:
    """One scorer's figures over ``responses`` (by response id in ``judgements``)."""
    judged = [(r, judgements[r.id]) for r in responses if r.id in judgements]
    ok = [(r, j) for r, j in judged if j.status is ParseStatus.OK and j.score is not None]
    unreadable = sum(j.status in (ParseStatus.PARSE_FAILURE, ParseStatus.OUT_OF_RANGE) for _, j in judged)
    lengths = [float(len((r.text or "").split())) for r, _ in ok]
    scores = [float(j.score) for _, j in ok if j.score is not None]
    latency, _ = _mean([j.latency_s for _, j in judged])
    return ScorerStats(
        name=name,
        plugin=plugin,
        fingerprint=fingerprint,
        judged=len(judged),
        ok=len(ok),
        parse_failures=unreadable,
        errors=sum(j.status is ParseStatus.ERROR for _, j in judged),
        parse_failure_rate=unreadable / len(judged) if judged else None,
        pairs=len(pairs),
        reused=reused,
        new=new,
        cost_usd=cost_usd,
        cost_per_pair_usd=cost_usd / len(pairs) if pairs else None,
        mean_latency_s=latency,
        length_bias=LengthBias(n=len(ok), spearman=spearman(lengths, scores), pearson=pearson(lengths, scores)),
        human=human_agreement(human) if human is not None else None,
    )


def _pairs_by_question(pairs: Sequence[PreferencePair]) -> dict[str, set[tuple[str, str]]]:
    out: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for pair in pairs:
        out[pair.sample_id].add((pair.chosen_response_id, pair.rejected_response_id))
    return out


def agreement(
    a: str,
    b: str,
    responses: Sequence[Response],
    judgements: Mapping[str, Mapping[str, Judgement]],
    pairs: Mapping[str, Sequence[PreferencePair]],
) -> tuple[PairAgreement, list[QuestionAgreement]]:
    """How far scorers ``a`` and ``b`` agree on ``responses`` (in their build order)."""
    rows, decisions_a, decisions_b = _question_agreements(a, b, responses, judgements)
    rho, rho_n = _mean([r.spearman for r in rows])
    tau, tau_n = _mean([r.kendall for r in rows])
    equal = sum(x == y for x, y in zip(decisions_a, decisions_b, strict=True))
    summary = PairAgreement(
        a=a,
        b=b,
        questions=len(rows),
        spearman=rho,
        spearman_questions=rho_n,
        kendall=tau,
        kendall_questions=tau_n,
        kappa=cohen_kappa(decisions_a, decisions_b),
        decisions=len(decisions_a),
        decision_agreement=equal / len(decisions_a) if decisions_a else None,
        **_pair_changes(pairs[a], pairs[b]),
    )
    return summary, rows


def _question_agreements(
    a: str, b: str, responses: Sequence[Response], judgements: Mapping[str, Mapping[str, Judgement]]
) -> tuple[list[QuestionAgreement], list[Preference], list[Preference]]:
    """Per question with two answers or more that both scored: the rank correlations, and the pairwise
    preferences of ``a`` and of ``b`` over all such questions."""
    by_question: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for response in responses:
        x, y = _ok(judgements[a].get(response.id)), _ok(judgements[b].get(response.id))
        if x is not None and y is not None:
            by_question[response.sample_id].append((x, y))
    rows, decisions_a, decisions_b = [], [], []
    for sample_id, scored in by_question.items():
        if len(scored) < 2:
            continue
        xs, ys = [s for s, _ in scored], [s for _, s in scored]
        rows.append(
            QuestionAgreement(
                sample_id=sample_id, a=a, b=b, answers=len(scored), spearman=spearman(xs, ys), kendall=kendall(xs, ys)
            )
        )
        decisions_a.extend(pairwise_preferences(xs))
        decisions_b.extend(pairwise_preferences(ys))
    return rows, decisions_a, decisions_b


def _pair_changes(a: Sequence[PreferencePair], b: Sequence[PreferencePair]) -> dict[str, Any]:
    """How many questions got the same pairs from ``a`` and ``b``, and the pairs each made that the other did not."""
    pairs_a, pairs_b = _pairs_by_question(a), _pairs_by_question(b)
    both = set(pairs_a) & set(pairs_b)
    same = sum(pairs_a[q] == pairs_b[q] for q in both)
    return {
        "pair_questions": len(both),
        "same_pairs": same,
        "pair_agreement": same / len(both) if both else None,
        "changed_a_to_b": sum(len(p - pairs_b.get(q, set())) for q, p in pairs_a.items()),
        "changed_b_to_a": sum(len(p - pairs_a.get(q, set())) for q, p in pairs_b.items()),
    }


def all_agreements(
    names: Sequence[str],
    responses: Sequence[Response],
    judgements: Mapping[str, Mapping[str, Judgement]],
    pairs: Mapping[str, Sequence[PreferencePair]],
) -> tuple[list[PairAgreement], list[QuestionAgreement]]:
    """:func:`agreement` for every two of ``names``."""
    summaries, rows = [], []
    for a, b in combinations(names, 2):
        summary, per_question = agreement(a, b, responses, judgements, pairs)
        summaries.append(summary)
        rows.extend(per_question)
    return summaries, rows
