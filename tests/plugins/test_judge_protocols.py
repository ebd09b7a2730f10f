"""Judge protocols (video-chatgpt, lmms-eval, vision, mmaip): the replies real judges give, read as each
protocol's published script reads them; their prompts, verbatim; prompt templates; one evaluation through the
local server per protocol rule (retry until read, imputation)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import scripted_plugins
import yaml
from api_mock import MockServer

from mmaip_core import ConfigError, EvalRecord, ParseStatus, PluginManager, ScoreScale, VideoQA
from mmaip_core.config import load_config
from mmaip_core.stages.evaluate import run_evaluation
from mmaip_core.store.jsonl import read_jsonl
from mmaip_plugins.judging import CORRECT, JudgeOptions, build_prompt, parse_reply, prompt_hash
from mmaip_plugins.judging.protocols import PROTOCOLS, VCG_QA_SYSTEM

FAST = {"backoff_s": 0.01, "max_backoff_s": 0.05, "timeout_s": 5}
SCALE = ScoreScale(min=0, max=5)


def _read(protocol: str, reply: str) -> tuple[ParseStatus, str | None, float | None]:
    options = JudgeOptions(task="verdict", protocol=protocol, scale=SCALE, structured=protocol == "mmaip")
    parsed = parse_reply(reply, options, options.structured)
    pred = None if parsed.status is not ParseStatus.OK else ("yes" if parsed.criteria[CORRECT] else "no")
    return parsed.status, pred, parsed.score


OK, FAIL, RANGE = ParseStatus.OK, ParseStatus.PARSE_FAILURE, ParseStatus.OUT_OF_RANGE

# reply -> (video-chatgpt, lmms-eval, mmaip); vision reads as video-chatgpt
REPLIES = {
    "{'pred': 'yes', 'score': 4}": ((OK, "yes", 4), (OK, "yes", 4), (OK, "yes", 4)),
    "{'pred': 'yes', 'score': 4.8}": ((OK, "yes", 4), (OK, "yes", 4), (RANGE, None, None)),
    '{"pred": "no", "score": 1}': ((OK, "no", 1), (OK, "no", 1), (OK, "no", 1)),
    '```json\n{"pred": "yes", "score": 5}\n```': ((FAIL, None, None), (OK, "yes", 5), (OK, "yes", 5)),
    "Sure! {'pred': 'Yes.', 'score': 3}": ((FAIL, None, None), (OK, "yes", 3), (FAIL, None, None)),
    "{'pred': 'yes.', 'score': 2}": ((OK, "yes", 2), (OK, "yes", 2), (FAIL, None, None)),
    "{'pred': 'No', 'score': 0}": ((OK, "no", 0), (OK, "no", 0), (OK, "no", 0)),
    "{'pred': 'yes', 'score': '4'}": ((OK, "yes", 4), (OK, "yes", 4), (OK, "yes", 4)),
    "{'pred': 'yes', 'score': '4.5'}": ((FAIL, None, None), (FAIL, None, None), (RANGE, None, None)),
    "{'pred': 'maybe', 'score': 3}": ((FAIL, None, None), (FAIL, None, None), (FAIL, None, None)),
    "{'pred': 'yes', 'score': 7}": ((RANGE, None, None), (RANGE, None, None), (RANGE, None, None)),
    "The answer looks right to me.": ((FAIL, None, None), (FAIL, None, None), (FAIL, None, None)),
}


@pytest.mark.parametrize("reply", list(REPLIES))
def test_each_protocol_reads_replies_as_its_script_does(reply: str) -> None:
    vcg, lmms, mmaip = REPLIES[reply]
    assert _read("video-chatgpt", reply) == vcg
    assert _read("vision", reply) == vcg
    assert _read("lmms-eval", reply) == lmms
    assert _read("mmaip", reply) == mmaip


def test_the_published_prompts_are_asked_verbatim() -> None:
    sample = VideoQA(id="q", question="what colour is the ball", answer="red")
    options = JudgeOptions(task="verdict", protocol="video-chatgpt", scale=SCALE)
    system, user = build_prompt(options, sample, "It is <b>red</b>.", structured=False)
    assert system == VCG_QA_SYSTEM and system.startswith("You are an intelligent chatbot designed for evaluating")
    assert "Here's how you can accomplish the task:------##INSTRUCTIONS: - Focus on" in system
    assert user.startswith("Please evaluate the following video-based question-answer pair:\n\nQuestion: what")
    assert "Correct Answer: red\nPredicted Answer: It is <b>red</b>.\n\n" in user
    assert user.endswith("your response should look like this: {'pred': 'yes', 'score': 4.8}.")
    vision_system, _ = build_prompt(options.model_copy(update={"protocol": "vision"}), sample, "x", False)
    assert vision_system.startswith(VCG_QA_SYSTEM) and "frames" in vision_system
    assert PROTOCOLS["lmms-eval"].judge == {
        "model": "gpt-4o-2024-11-20",
        "temperature": 0.0,
        "max_tokens": 64,
        "structured": False,
        "max_repairs": 0,
    }


def test_protocols_and_templates_change_the_fingerprint_and_mmaip_does_not() -> None:
    base = JudgeOptions(task="verdict", scale=SCALE)
    assert base.protocol == "mmaip"
    hashes = {prompt_hash(base.model_copy(update={"protocol": p})) for p in PROTOCOLS}
    assert len(hashes) == len(PROTOCOLS) == 9
    template = {"user": "Q: {question}\nTruth: {answer}\nSaid: {prediction}"}
    templated = JudgeOptions(task="verdict", scale=SCALE, prompt_template=template)
    assert prompt_hash(templated) != prompt_hash(base)


def test_a_prompt_template_fills_named_fields_and_keeps_the_reply_format() -> None:
    sample = VideoQA(id="q", question="Why?", answer="rain", caption="a wet street")
    template = {"user": "Q: {question} | truth: {answer} | caption: {caption} | said: {prediction} | {low}-{high}"}
    options = JudgeOptions(task="verdict", scale=SCALE, prompt_template=template)
    system, user = build_prompt(options, sample, "it rained", structured=True)
    assert (
        user
        == "Q: Why? | truth: rain | caption: a wet street | said: <candidate_answer>\nit rained\n</candidate_answer> | 0-5"
    )
    assert '"pred": "yes" or "no"' in system, "the protocol's system message keeps its reply format"
    vcg = JudgeOptions(task="verdict", scale=SCALE, protocol="video-chatgpt", prompt_template=template)
    assert "said: it rained |" in build_prompt(vcg, sample, "it rained", structured=False)[1]


def test_unknown_template_fields_are_a_config_error_naming_them(manager: PluginManager, tmp_path: Path) -> None:
    path = tmp_path / "eval.yaml"
    template = {"user": "{question} {truth} {pred}", "system": "{answr}"}
    path.write_text(
        yaml.safe_dump(
            {
                "benchmarks": [{"name": "b", "path": "qa.jsonl"}],
                "models": [{"name": "m", "generator": "smoke"}],
                "evaluators": [{"name": "text-judge", "prompt_template": template}],
            }
        )
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path, manager)
    text = str(caught.value)
    assert "unknown template fields: pred, truth" in text and "unknown template fields: answr" in text


def _evaluate(tmp_path: Path, demo_dir: Path, manager: PluginManager, evaluators: list[dict[str, object]]) -> Path:
    manager.register(scripted_plugins, "scripted")  # a second registration is skipped with a warning
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "eval.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "frames": {"num_frames": 2, "cache_dir": str(tmp_path / "frames")},
                "benchmarks": [{"name": "demo", "path": str(demo_dir / "qa.jsonl")}],
                "models": [{"name": "good", "generator": "scripted"}],
                "evaluators": evaluators,
            }
        )
    )
    out = tmp_path / "eval"
    run_evaluation(load_config(path, manager), out, manager)
    return out


def test_video_chatgpt_asks_again_until_read_and_keeps_the_integer_part(
    server: MockServer, manager: PluginManager, demo_dir: Path, tmp_path: Path
) -> None:
    judge = {"name": "openai-judge", "model": "garbagefirst-fenced-no", **FAST}
    evaluator = {"name": "text-judge", "protocol": "video-chatgpt", "judge": judge}
    with pytest.raises(Exception, match="none of the 9 verdicts is usable"):
        _evaluate(tmp_path, demo_dir, manager, [evaluator])  # fenced replies: the script cannot read them
    judge["model"] = "garbagefirst"
    out = _evaluate(tmp_path / "b", demo_dir, manager, [evaluator])
    verdicts = list(read_jsonl(out / "verdicts.jsonl", EvalRecord))
    assert {(v.status, v.correct, v.score) for v in verdicts} == {(ParseStatus.OK, True, 4.0)}
    assert {v.model_id for v in verdicts} == {"garbagefirst"}
    bodies = [r["body"] for r in server.requests if r["body"]["model"] == "garbagefirst"]
    distinct = {str(b["messages"]) for b in bodies}
    assert len(bodies) == 2 * len(distinct), "asked twice: the unreadable first reply, then the same request again"
    assert all(len(b["messages"]) == 2 and "response_format" not in b for b in bodies), "no repair turn, no JSON"
    assert all(b["temperature"] == 1.0 for b in bodies), "the script's model default temperature"


def test_lmms_eval_imputes_no_and_zero_and_reports_it(
    server: MockServer, manager: PluginManager, demo_dir: Path, tmp_path: Path
) -> None:
    evaluator = {
        "name": "text-judge",
        "protocol": "lmms-eval",
        "judge": {"name": "openai-judge", "model": "garbage-lmms", **FAST},
    }
    out = _evaluate(tmp_path, demo_dir, manager, [evaluator])
    verdicts = list(read_jsonl(out / "verdicts.jsonl", EvalRecord))
    assert {(v.status, v.correct, v.score, v.imputed) for v in verdicts} == {(ParseStatus.OK, False, 0.0, True)}
    assert all("imputed as no, 0" in (v.rationale or "") for v in verdicts)
    bodies = [r["body"] for r in server.requests]
    assert len(bodies) == len({str(b["messages"]) for b in bodies}), "lmms-eval asks once"
    assert {(b["temperature"], b["max_tokens"]) for b in bodies} == {(0.0, 64)}
    errors = (out / "errors.jsonl").read_text().splitlines()
    assert len(errors) == 9 and all('"imputed"' in line for line in errors)


def test_a_protocol_fixes_whether_the_judge_sees_frames(manager: PluginManager, demo_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="protocol 'video-chatgpt' is for text-judge"):
        _evaluate(tmp_path, demo_dir, manager, [{"name": "vision-judge", "protocol": "video-chatgpt"}])


def test_the_vision_protocol_shows_the_frames(
    server: MockServer, manager: PluginManager, demo_dir: Path, tmp_path: Path
) -> None:
    judge = {"name": "openai-judge", **FAST}
    out = _evaluate(tmp_path, demo_dir, manager, [{"name": "vision-judge", "protocol": "vision", "judge": judge}])
    verdicts = list(read_jsonl(out / "verdicts.jsonl", EvalRecord))
    assert {(v.correct, v.score, v.model_id) for v in verdicts} == {(True, 4.0, "gpt-4o-2024-08-06")}
    images = [sum(p.get("type") == "image_url" for p in r["body"]["messages"][1]["content"]) for r in server.requests]
    assert images == [2] * 9


def test_the_documented_protocol_configs_load_and_build(manager: PluginManager, tmp_path: Path) -> None:
    text = (Path(__file__).parents[2] / "docs" / "evaluation.md").read_text()
    section = text[text.index("## Judge protocols") : text.index("## Benchmarks:")]
    blocks = re.findall(r"```yaml\n(.*?)```", section, re.S)
    assert len(blocks) == 7
    for i, block in enumerate(blocks):
        data = yaml.safe_load(block)
        data.setdefault("benchmarks", [{"name": "b", "path": "qa.jsonl"}])
        data.setdefault("models", [{"name": "m", "generator": "smoke"}])
        path = tmp_path / f"doc{i}.yaml"
        path.write_text(yaml.safe_dump(data))
        for entry in load_config(path, manager).evaluators:
            evaluator = manager.create("evaluator", entry.plugin, entry.options)
            assert evaluator.fingerprint, entry.name


def test_a_protocol_is_for_verdicts_only() -> None:
    with pytest.raises(ValueError, match="protocol 'lmms-eval' is a way of asking verdicts"):
        JudgeOptions(protocol="lmms-eval")  # a build's scorer rates answers
