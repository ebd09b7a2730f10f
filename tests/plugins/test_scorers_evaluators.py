from __future__ import annotations

import pytest
from api_mock import MockServer
from helpers import response, sample

from mmaip_core import EvalRequest, ParseStatus, PluginManager, ScoreRequest
from mmaip_plugins.matching import contains, normalise, token_f1


def test_normalisation() -> None:
    assert normalise("The  Red circle!") == "red circle"
    assert token_f1("a red circle", "red") == pytest.approx(2 * (1 / 2) * 1 / (1 / 2 + 1))
    assert token_f1("", "red") == 0.0
    assert contains("It is red.", "Red") and not contains("It is reddish", "red")


@pytest.mark.parametrize(
    ("partial", "answer", "expected"),
    [
        ("f1", "Red.", 5.0),
        ("f1", "it is red", 1 + 4 * 0.5),
        ("f1", "blue", 1.0),
        ("contains", "it is red", 5.0),
        ("none", "it is red", 1.0),
    ],
)
def test_exact_match_scorer(manager: PluginManager, partial: str, answer: str, expected: float) -> None:
    scorer = manager.create("scorer", "exact-match", {"partial": partial})
    (judgement,) = scorer.score([ScoreRequest(sample=sample(), response=response(answer, "r1"))])
    assert judgement.status is ParseStatus.OK
    assert judgement.score == pytest.approx(expected)
    assert judgement.fingerprint == scorer.fingerprint


def test_scorer_fingerprint_depends_on_options(manager: PluginManager) -> None:
    a = manager.create("scorer", "exact-match", {"partial": "f1"})
    b = manager.create("scorer", "exact-match", {"partial": "none"})
    assert a.fingerprint != b.fingerprint


def test_missing_inputs_never_become_scores(manager: PluginManager) -> None:
    scorer = manager.create("scorer", "exact-match")
    judgements = scorer.score(
        [
            ScoreRequest(sample=sample(answer=None), response=response("red", "r1")),
            ScoreRequest(sample=sample(), response=response(None, "r2")),
        ]
    )
    assert [(j.status, j.score) for j in judgements] == [(ParseStatus.ERROR, None)] * 2
    assert judgements[0].error and "no ground truth" in judgements[0].error.message


def test_exact_match_evaluator(manager: PluginManager) -> None:
    evaluator = manager.create("evaluator", "exact-match")
    records = evaluator.evaluate(
        [
            EvalRequest(sample=sample(), benchmark="demo", model="m", prediction="It is red."),
            EvalRequest(sample=sample(), benchmark="demo", model="m", prediction="a blue one"),
            EvalRequest(sample=sample(answer=None), benchmark="demo", model="m", prediction="red"),
        ]
    )
    assert [(r.correct, r.score, r.status) for r in records] == [
        (True, 5.0, ParseStatus.OK),
        (False, 0.0, ParseStatus.OK),
        (None, None, ParseStatus.ERROR),
    ]
    strict = manager.create("evaluator", "exact-match", {"match": "exact"})
    (record,) = strict.evaluate([EvalRequest(sample=sample(), benchmark="demo", model="m", prediction="It is red.")])
    assert record.correct is False and record.score == pytest.approx(5 * token_f1("It is red.", "red"))


def test_ensemble_combines_members_and_records_each(manager: PluginManager) -> None:
    members = [
        {"name": "exact-match", "partial": "none"},
        {"name": "exact-match", "partial": "f1", "scale": {"min": 0, "max": 10}},
    ]
    requests = [ScoreRequest(sample(), response("it is red", "r1")), ScoreRequest(sample(), response("red", "r2"))]
    mean = manager.create("scorer", "ensemble", {"members": members}).score(requests)
    # member 0: 1 on 1-5 (0.0); member 1: f1 0.5 on 0-10 (0.5) -> mean 0.25 -> 1 + 0.25 * 4
    assert mean[0].score == pytest.approx(2.0) and mean[0].criteria == {"0:exact-match": 1.0, "1:exact-match": 5.0}
    assert mean[1].score == pytest.approx(5.0)
    weighted = manager.create("scorer", "ensemble", {"members": members, "combine": "weighted", "weights": [3, 1]})
    assert weighted.score(requests[:1])[0].score == pytest.approx(1 + 4 * (0.5 * 1 / 4))


def test_ensemble_never_scores_when_a_member_fails(manager: PluginManager) -> None:
    from mmaip_core import PluginConfigError

    members = [{"name": "exact-match"}, {"name": "reference"}]
    ensemble = manager.create("scorer", "ensemble", {"members": members})
    (j,) = ensemble.score([ScoreRequest(sample(answer=None), response("red", "r1"))])
    assert (j.status, j.score) == (ParseStatus.ERROR, None) and j.error and "member 0:exact-match" in j.error.message
    with pytest.raises(PluginConfigError, match="weighted needs 2 non-negative weights"):
        manager.create("scorer", "ensemble", {"members": members, "combine": "weighted", "weights": [1]})


def test_ensemble_prices_its_members_with_the_run_prices(server: MockServer, manager: PluginManager) -> None:
    from mmaip_core.calls.pricing import Price, PriceTable

    members = [{"name": "openai-judge", "model": "house-judge", "max_attempts": 1}, {"name": "exact-match"}]
    requests = [ScoreRequest(sample(), response("red", "r1"))]
    listed = manager.create("scorer", "ensemble", {"members": members}).score(requests)
    assert listed[0].cost_usd == 0.0  # the built-in list does not know the model
    prices = PriceTable({"house-judge": Price(input=1000.0, output=0.0)})
    (judged,) = manager.create("scorer", "ensemble", {"members": members}, prices=prices).score(requests)
    assert judged.status is ParseStatus.OK
    assert judged.cost_usd == pytest.approx(10 * 1000.0 / 1e6)  # the local server reports 10 prompt tokens
