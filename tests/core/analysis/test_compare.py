"""compare-scorers: every figure against hand-computed values on a small fixture, and the command on a
build with three scorers (offline reference, the third-party example, an API judge on a local server)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import scripted_plugins
import yaml
from api_mock import MockServer
from helpers import MMAIP

from mmaip_core import Judgement, ParseStatus, PluginManager, PreferencePair, Response
from mmaip_core.analysis.compare.stats import agreement, human_agreement, scorer_stats
from mmaip_core.config import load_config
from mmaip_core.stages.build import run_build

TEXTS = {
    "r1": "red",
    "r2": "it is red",
    "r3": "blue maybe",
    "r4": "left",
    "r5": "it goes left now",
    "r6": "up",
    "r7": "??? unsure",
}
QUESTION = {"r1": "q1", "r2": "q1", "r3": "q1", "r4": "q2", "r5": "q2", "r6": "q2", "r7": "q2"}
SCORES: dict[str, dict[str, float | str]] = {
    "A": {"r1": 1, "r2": 4, "r3": 5, "r4": 5, "r5": 3, "r6": 1, "r7": 2},
    "B": {"r1": 4, "r2": 5, "r3": 2, "r4": 5, "r5": 3, "r6": 1, "r7": "parse"},
    "C": {"r1": 1, "r2": 1, "r3": 1, "r4": 2, "r5": 4, "r6": 3, "r7": "error"},
}
PAIRS = {
    "A": [("q1", "r3", "r1"), ("q2", "r4", "r6")],
    "B": [("q1", "r2", "r3"), ("q2", "r4", "r6")],
    "C": [("q2", "r5", "r4")],
}


def _response(rid: str) -> Response:
    return Response(
        id=rid, sample_id=QUESTION[rid], model="m", model_id="m", generator="x", params={}, text=TEXTS[rid], frames="f"
    )


def _judgement(rid: str, value: float | str, latency: float | None = None) -> Judgement:
    common = {
        "response_id": rid,
        "sample_id": QUESTION.get(rid, "h"),
        "scorer": "s",
        "fingerprint": "fp",
        "latency_s": latency,
    }
    if value == "parse":
        return Judgement(**common, status=ParseStatus.PARSE_FAILURE, raw_reply="great")
    if value == "error":
        return Judgement(**common, status=ParseStatus.ERROR)
    return Judgement(**common, score=float(value))


def _pair(question: str, chosen: str, rejected: str) -> PreferencePair:
    return PreferencePair(
        id=f"{chosen}-{rejected}",
        sample_id=question,
        video="v",
        question="?",
        prompt="?",
        chosen=TEXTS[chosen],
        rejected=TEXTS[rejected],
        chosen_score=2,
        rejected_score=1,
        chosen_model="m",
        rejected_model="m",
        chosen_response_id=chosen,
        rejected_response_id=rejected,
        strategy="best-worst",
        margin=1,
        label_source="ai:fp",
        frames="f",
    )


RESPONSES = [_response(r) for r in TEXTS]
JUDGEMENTS = {name: {rid: _judgement(rid, v) for rid, v in scores.items()} for name, scores in SCORES.items()}
MADE = {name: [_pair(*p) for p in pairs] for name, pairs in PAIRS.items()}


def test_agreement_of_two_scorers_by_hand() -> None:
    summary, rows = agreement("A", "B", RESPONSES, JUDGEMENTS, MADE)
    # q1: A (1,4,5) vs B (4,5,2): ranks (1,2,3) vs (2,3,1): rho = 1 - 6*6/(3*8) = -0.5; tau = (1 - 2)/3
    # q2 (r7 unreadable for B, left out): A (5,3,1) vs B (5,3,1): rho = tau = 1
    assert [(r.sample_id, r.answers) for r in rows] == [("q1", 3), ("q2", 3)]
    assert rows[0].spearman == pytest.approx(-0.5) and rows[0].kendall == pytest.approx(-1 / 3)
    assert rows[1].spearman == pytest.approx(1.0) and rows[1].kendall == pytest.approx(1.0)
    assert summary.spearman == pytest.approx(0.25) and summary.kendall == pytest.approx(1 / 3)
    # decisions (first/second/tie of answers (1,2), (1,3), (2,3)): A = s s s f f f, B = s f f f f f
    # p_o = 4/6; p_e = 3/6 * 1/6 + 3/6 * 5/6 = 1/2; kappa = (4/6 - 1/2) / (1/2) = 1/3
    assert summary.decisions == 6 and summary.decision_agreement == pytest.approx(4 / 6)
    assert summary.kappa == pytest.approx(1 / 3)
    # pairs: q1 differ, q2 equal
    assert (summary.pair_questions, summary.same_pairs, summary.pair_agreement) == (2, 1, 0.5)
    assert (summary.changed_a_to_b, summary.changed_b_to_a) == (1, 1)


def test_agreement_with_a_constant_scorer_by_hand() -> None:
    summary, rows = agreement("A", "C", RESPONSES, JUDGEMENTS, MADE)
    # q1: C gives 1, 1, 1: no rank correlation; q2: A (5,3,1) vs C (2,4,3): ranks (3,2,1) vs (1,3,2)
    assert rows[0].spearman is None and rows[0].kendall is None
    assert rows[1].spearman == pytest.approx(-0.5) and rows[1].kendall == pytest.approx(-1 / 3)
    assert (summary.spearman_questions, summary.kendall_questions) == (1, 1)
    assert summary.spearman == pytest.approx(-0.5)
    # A = s s s f f f, C = t t t s s f: p_o = 1/6; p_e = 1/2 * 2/6 + 1/2 * 1/6 = 1/4; kappa = (1/6 - 1/4) / (3/4)
    assert summary.kappa == pytest.approx(-1 / 9)
    # C made no pair for q1 (all tie): one question with pairs from both, and they differ
    assert (summary.pair_questions, summary.same_pairs, summary.changed_a_to_b, summary.changed_b_to_a) == (1, 0, 2, 1)


def test_scorer_figures_by_hand() -> None:
    timed = {
        rid: j.model_copy(update={"latency_s": 0.5 if rid in ("r1", "r2") else None})
        for rid, j in JUDGEMENTS["A"].items()
    }
    stats = scorer_stats("A", "plugin-a", "fp", RESPONSES, timed, MADE["A"], reused=3, new=4, cost_usd=0.5)
    assert (stats.judged, stats.ok, stats.parse_failures, stats.errors, stats.pairs) == (7, 7, 0, 0, 2)
    assert stats.cost_per_pair_usd == 0.25 and stats.mean_latency_s == 0.5
    # lengths (words) 1 3 2 1 4 1 2 and scores 1 4 5 5 3 1 2, ranked with ties averaged
    length_ranks, score_ranks = [2, 6, 4.5, 2, 7, 2, 4.5], [1.5, 5, 6.5, 6.5, 4, 1.5, 3]
    assert stats.length_bias.spearman == pytest.approx(np.corrcoef(length_ranks, score_ranks)[0, 1])
    assert stats.length_bias.pearson == pytest.approx(np.corrcoef([1, 3, 2, 1, 4, 1, 2], [1, 4, 5, 5, 3, 1, 2])[0, 1])
    assert "not applicable" in stats.position_bias
    b = scorer_stats("B", "plugin-b", "fp", RESPONSES, JUDGEMENTS["B"], MADE["B"], reused=0, new=7, cost_usd=0.0)
    assert (b.judged, b.ok, b.parse_failures, b.parse_failure_rate) == (7, 6, 1, pytest.approx(1 / 7))
    assert b.cost_per_pair_usd == 0.0 and b.mean_latency_s is None
    c = scorer_stats("C", "plugin-c", "fp", RESPONSES, JUDGEMENTS["C"], MADE["C"], reused=0, new=7, cost_usd=0.0)
    assert (c.parse_failures, c.errors, c.parse_failure_rate) == (0, 1, 0.0)


def test_human_agreement_by_hand() -> None:
    outcomes = [
        (_judgement("h1c", 5), _judgement("h1r", 1)),  # agrees
        (_judgement("h2c", 1), _judgement("h2r", 5)),  # disagrees
        (_judgement("h3c", 3), _judgement("h3r", 3)),  # tie
        (_judgement("h4c", "parse"), _judgement("h4r", 2)),  # unscored
        (None, None),  # unscored
    ]
    h = human_agreement(outcomes)
    assert (h.pairs, h.agree, h.disagree, h.ties, h.unscored) == (5, 1, 1, 1, 2)
    assert h.rate == pytest.approx(1 / 3)


@pytest.fixture
def build_dir(manager: PluginManager, demo_dir: Path, tmp_path: Path) -> Path:
    """A build of 9 questions, 3 answers each: the truth (1 word), the truth in 5 words, a wrong 2-word answer."""
    manager.register(scripted_plugins, "scripted")
    config = tmp_path / "build.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "samples": {"path": str(demo_dir / "qa.jsonl")},
                "frames": {"num_frames": 2, "cache_dir": str(tmp_path / "frames")},
                "zoo": [
                    {
                        "name": "zoo",
                        "generator": "scripted",
                        "answers": ["{truth}", "it is {truth} I think", "no idea"],
                        "n": 3,
                    }
                ],
                "scorer": {"name": "reference"},
            }
        )
    )
    out = tmp_path / "build"
    run_build(load_config(config, manager), out, manager)
    return out


def test_compare_scorers_command(build_dir: Path, tmp_path: Path, example_plugin_env: dict[str, str]) -> None:
    questions = [json.loads(line) for line in (build_dir / "samples.jsonl").open()]
    human = tmp_path / "human.jsonl"  # the truth preferred over "no idea"; the last pair's video is not in the build
    human.write_text(
        "".join(
            json.dumps(
                {
                    "id": f"h{i}",
                    "video": q["video"],
                    "question": q["question"],
                    "chosen": q["answer"],
                    "rejected": "no idea",
                }
            )
            + "\n"
            for i, q in enumerate(questions[:3])
        )
        + json.dumps({"id": "other", "video": "elsewhere.mp4", "prompt": "Is it?", "chosen": "yes", "rejected": "no"})
        + "\n"
    )
    scorers = tmp_path / "scorers.yaml"
    scorers.write_text(
        yaml.safe_dump(
            {
                "gpt4o": {"name": "openai-judge", "model": "gpt-4o", "timeout_s": 5},
                "shorter": {"name": "shorter", "target_words": 1},
            }
        )
    )
    out = tmp_path / "compare"
    command = [
        MMAIP,
        "compare-scorers",
        str(build_dir),
        "--scorers",
        "reference,shorter,gpt4o",
        "--scorer-config",
        str(scorers),
        "--human",
        str(human),
        "--out",
        str(out),
    ]
    with MockServer() as server:
        env = {**example_plugin_env, "OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": server.url, "HF_HUB_OFFLINE": "1"}
        result = subprocess.run(command, capture_output=True, text=True, env=env)
        assert result.returncode == 0, result.stderr
        calls = len(server.requests)
        again = subprocess.run(command, capture_output=True, text=True, env=env)
        assert again.returncode == 0, again.stderr
        assert len(server.requests) == calls, "a rerun asks the judge nothing"
    # 27 build answers and the 2 answers of the pair outside the build: the other human answers are
    # the build's own texts for the same questions, asked once
    assert calls == 27 + 2
    comparison = json.loads((out / "comparison.json").read_text())
    stats = {s["name"]: s for s in comparison["scorers"]}
    assert set(stats) == {"reference", "shorter", "gpt4o"} and comparison["answers"] == 27
    assert stats["reference"]["reused"] >= 27, "the build's own judgements are reused"
    judge = stats["gpt4o"]
    assert judge["judged"] == 27 and judge["parse_failures"] == 0 and judge["cost_usd"] > 0
    assert judge["mean_latency_s"] > 0 and judge["pairs"] == 9
    # the mock judge gives 5 to answers containing the truth and 2 otherwise; shorter prefers fewer words
    for name in ("reference", "gpt4o", "shorter"):
        assert stats[name]["human"]["agree"] == 3, name
    # the pair outside the build has no ground truth: reference cannot score it, the others tie
    assert (
        stats["reference"]["human"]["unscored"],
        stats["gpt4o"]["human"]["ties"],
        stats["shorter"]["human"]["ties"],
    ) == (1, 1, 1)
    rows = {(a["a"], a["b"]): a for a in comparison["agreement"]}
    assert set(rows) == {("reference", "shorter"), ("reference", "gpt4o"), ("shorter", "gpt4o")}
    # per question, gpt4o (5, 5, 2) against shorter (truth > wrong > long): ranks (2.5, 2.5, 1) vs (3, 1, 2): rho = tau = 0
    assert rows[("shorter", "gpt4o")]["spearman"] == pytest.approx(0.0, abs=1e-9)
    assert rows[("shorter", "gpt4o")]["kendall"] == pytest.approx(0.0, abs=1e-9)
    assert len(comparison["per_question"]) == 3 * 9
    # the judge and best-worst choose (truth, no idea); shorter chooses (truth, long): every pair changes
    assert rows[("shorter", "gpt4o")]["same_pairs"] == 0 and rows[("shorter", "gpt4o")]["changed_a_to_b"] == 9
    report = (out / "report.md").read_text()
    for heading in ("## Scorers", "## Agreement", "## Agreement with human preferences", "agreement.png", "bias.png"):
        assert heading in report
    assert (out / "agreement.png").stat().st_size > 0 and (out / "bias.png").stat().st_size > 0
    assert len((out / "judgements.jsonl").read_text().splitlines()) == 3 * (27 + 8)


def test_bad_scorers_are_named(manager: PluginManager, tmp_path: Path) -> None:
    from mmaip_core import ConfigError
    from mmaip_core.analysis.compare import resolve_scorers
    from mmaip_core.config import RunConfig

    build = RunConfig.model_validate({"scorer": {"name": "reference", "floor": 0.5}})
    options = tmp_path / "scorers.yaml"
    options.write_text(yaml.safe_dump({"judge": {"name": "openai-judge", "temperature": "hot"}}))
    with pytest.raises(ConfigError) as caught:
        resolve_scorers(["reference", "judge", "nosuch"], options, build, manager)
    problems = "\n".join(caught.value.problems)
    assert "judge: scorer 'openai-judge': temperature" in problems and "nosuch: " in problems
    assert "exact-match" in problems or "did you mean" in problems.lower() or "unknown" in problems.lower()
    with pytest.raises(ConfigError, match="at least two scorers"):
        resolve_scorers(["reference"], None, build, manager)
    resolved = resolve_scorers(["reference", "exact-match"], None, build, manager)
    assert resolved["reference"].options == {"floor": 0.5}, "the build's own scorer keeps its options"
