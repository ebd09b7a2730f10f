"""Reading a judge's reply, and what the judge is told when a reply cannot be used.

Parsing never invents a score: a reply without a readable score is a parse failure, a score outside the scale
(or not an integer) is out of range; both carry the problem and no score, and the judge is re-asked with it
(:func:`repair_turn`). Replies are JSON when the judge was asked for structured output, else text lines
('Score: N'; with a verdict, 'Pred: yes|no').
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, field
from typing import Any

from mmaip_core import ParseStatus
from mmaip_plugins.judging.options import JudgeOptions
from mmaip_plugins.judging.protocols import JudgeProtocol, protocol

__all__ = ["CORRECT", "Parsed", "parse_reply", "repair_message", "repair_turn"]

CORRECT = "correct"
"""The criterion a verdict is returned as: 1.0 for 'yes' (the prediction is correct), 0.0 for 'no'."""

_FENCE = r"^\s*```(?:json)?\s*|\s*```\s*$"
_NUMBER = r"-?\d+(?:\.\d+)?"
_SCORE_LINE = rf"^\s*\**score\**\s*:\s*\**\s*({_NUMBER})"
_PRED_LINE = r"^\s*\**pred\**\s*:\s*\**\s*(yes|no)\b"


@dataclass(frozen=True)
class Parsed:
    """A reply read: status ok with a score, or why it cannot be used."""

    status: ParseStatus
    score: float | None = None
    criteria: dict[str, float] = field(default_factory=dict)
    rationale: str | None = None
    problem: str | None = None


def _failure(problem: str) -> Parsed:
    return Parsed(ParseStatus.PARSE_FAILURE, problem=problem)


def _number(value: Any) -> float | None:
    """A JSON value as a score: a number or a numeric string; None for anything else (booleans too)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+(\.\d+)?\s*", value):
        return float(value)
    return None


def _load_json(reply: str) -> Any:
    """The JSON value of a reply, a Markdown code fence around it removed; a Python dict string (the reply format
    the Video-ChatGPT prompt asks for, e.g. ``{'pred': 'yes', 'score': 4}``) is read too. Raises JSONDecodeError."""
    text = re.sub(_FENCE, "", reply)
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        literal = _literal(text.strip())
        if isinstance(literal, dict):
            return literal
        raise


def _literal(text: str) -> Any:
    """``ast.literal_eval(text)``, as the official Video-ChatGPT and lmms-eval scripts read replies; None when it
    cannot be read."""
    try:
        return ast.literal_eval(text)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None


def _last(pattern: str, reply: str) -> str | None:
    """The group of the last line of ``reply`` that matches ``pattern`` (case-insensitive), if any does."""
    found: list[str] = re.findall(pattern, reply, flags=re.I | re.M)
    return found[-1] if found else None


def _labelled(label: str, reply: str) -> str | None:
    """The text after the first '<label>:' of a reply, e.g. the rationale after 'Explanation:'."""
    match = re.search(rf"{label}\s*:\s*(.+)", reply, flags=re.I)
    return match.group(1).strip() if match else None


def _check(score: float, criteria: dict[str, float], rationale: str | None, options: JudgeOptions) -> Parsed:
    """Ok when the score and every criterion are integers on the scale, else out of range."""
    for name, value in {"score": score, **criteria}.items():
        if not options.scale.contains(value) or not float(value).is_integer():
            bounds = f"{int(options.scale.min)}-{int(options.scale.max)}"
            return Parsed(ParseStatus.OUT_OF_RANGE, problem=f"{name} {value:g} is not an integer in {bounds}")
    return Parsed(ParseStatus.OK, score=score, criteria=criteria, rationale=rationale)


def _parse_json(reply: str, options: JudgeOptions) -> Parsed:
    try:
        data = _load_json(reply)
    except json.JSONDecodeError:
        return _failure("the reply is not JSON")
    score = _number(data.get("score")) if isinstance(data, dict) else None
    if score is None:
        return _failure("the reply has no numeric 'score'")
    raw = data.get("criteria")
    raw_criteria = raw if isinstance(raw, dict) else {}
    criteria = {c: _number(raw_criteria.get(c)) for c in options.criteria}
    missing = [c for c, v in criteria.items() if v is None]
    if missing:
        return _failure(f"criteria without a numeric score: {', '.join(missing)}")
    rationale = data.get("rationale") if isinstance(data.get("rationale"), str) else None
    return _check(score, {c: v for c, v in criteria.items() if v is not None}, rationale, options)


def _parse_text(reply: str, options: JudgeOptions) -> Parsed:
    score = _last(_SCORE_LINE, reply)
    if score is None:
        return _failure("the reply has no 'Score: <integer>' line")
    criteria = {}
    for c in options.criteria:
        found = _last(rf"^\s*\**{re.escape(c)}\**\s*:\s*({_NUMBER})", reply)
        if found is not None:
            criteria[c] = float(found)
    return _check(float(score), criteria, _labelled("explanation", reply), options)


def _verdict_json(reply: str) -> tuple[str, float | None, str | None]:
    """(pred, score, reason) of a JSON verdict; raises JSONDecodeError."""
    data = _load_json(reply)
    data = data if isinstance(data, dict) else {}
    reason = data.get("reason") if isinstance(data.get("reason"), str) else None
    return str(data.get("pred", "")).strip().lower(), _number(data.get("score")), reason


def _verdict_text(reply: str) -> tuple[str, float | None, str | None]:
    """(pred, score, reason) of a text verdict ('Reason: ...', 'Pred: yes|no', 'Score: N'), or of a JSON or
    Python dict reply given where text was asked for."""
    try:
        return _verdict_json(reply)
    except json.JSONDecodeError:
        pass
    pred, score = _last(_PRED_LINE, reply), _last(_SCORE_LINE, reply)
    return (pred or "").lower(), float(score) if score is not None else None, _labelled("reason", reply)


def _parse_verdict(reply: str, options: JudgeOptions, structured: bool) -> Parsed:
    """A yes/no verdict and a score; the verdict is returned as criterion :data:`CORRECT` (1 or 0)."""
    try:
        pred, score, reason = _verdict_json(reply) if structured else _verdict_text(reply)
    except json.JSONDecodeError:
        return _failure("the reply is not JSON")
    if pred not in ("yes", "no") or score is None:
        return _failure("the reply has no 'pred' of yes or no and a numeric 'score'")
    checked = _check(score, {}, reason, options)
    if checked.status is not ParseStatus.OK:
        return checked
    return Parsed(ParseStatus.OK, score=score, criteria={CORRECT: 1.0 if pred == "yes" else 0.0}, rationale=reason)


def _official_dict(reply: str, proto: JudgeProtocol) -> dict[Any, Any] | None:
    """The dict a published protocol's script reads from a reply: the whole reply (Video-ChatGPT:
    ``ast.literal_eval(response_message)``) or its first ``{...}`` (lmms-eval's ``parse_score``:
    ``"{" + review.split("{")[1].split("}")[0] + "}"``); None when there is none."""
    if proto.reply == "first-dict":
        if "{" not in reply:
            return None
        reply = "{" + reply.split("{")[1].split("}")[0] + "}"
    data = _literal(reply)
    return data if isinstance(data, dict) else None


def _integer_part(value: Any) -> float | None:
    """``int(score)``, as the scripts aggregate: 4.8 -> 4, '4' -> 4; None where ``int`` fails ('4.8', None)."""
    try:
        return float(int(value))
    except (TypeError, ValueError, OverflowError):
        return None


def _substring_yes(pred: Any) -> str | None:
    """The scripts' yes test: ``"yes" in pred.lower()`` is yes, else ``"no" in pred.lower()`` is no."""
    if not isinstance(pred, str):
        return None
    return "yes" if "yes" in pred.lower() else "no" if "no" in pred.lower() else None


def _parse_official(reply: str, options: JudgeOptions, proto: JudgeProtocol) -> Parsed:
    """A verdict read as a published protocol's script reads it. A pred with neither yes nor no, or a score
    outside the scale, is unreadable here (the scripts would count the score and skip the pred)."""
    data = _official_dict(reply, proto)
    if data is None:
        return _failure(f"the reply is not a Python dictionary string ({proto.label})")
    score = _integer_part(data.get("score")) if proto.integer_part else _number(data.get("score"))
    if proto.pass_mark is None:
        pred = _substring_yes(data.get("pred"))
    else:  # a score-only criterion (VCGBench)
        pred = None if score is None else "yes" if score >= proto.pass_mark else "no"
    if pred is None or score is None:
        return _failure("the reply has no 'pred' of yes or no and a numeric 'score'")
    checked = _check(score, {}, None, options)
    if checked.status is not ParseStatus.OK:
        return checked
    return Parsed(ParseStatus.OK, score=score, criteria={CORRECT: 1.0 if pred == "yes" else 0.0})


def parse_reply(reply: str, options: JudgeOptions, structured: bool) -> Parsed:
    """Read a judge reply: JSON when ``structured``, else text ('Score: N'; with a verdict, 'Pred: yes|no');
    a verdict under a published protocol as that protocol's script reads it."""
    if options.task == "verdict":
        proto = protocol(options.protocol)
        if proto.reply != "json-or-text":
            return _parse_official(reply, options, proto)
        return _parse_verdict(reply, options, structured)
    return _parse_json(reply, options) if structured else _parse_text(reply, options)


def repair_turn(reply: str, parsed: Parsed, structured: bool) -> list[dict[str, Any]]:
    """The messages that follow an unusable reply: the reply itself, then what was wrong with it."""
    return [{"role": "assistant", "content": reply}, {"role": "user", "content": repair_message(parsed, structured)}]


def repair_message(parsed: Parsed, structured: bool) -> str:
    """What the judge is told after an unusable reply."""
    wanted = (
        "JSON only, in the format given" if structured else "the exact format given, ending with 'Score: <integer>'"
    )
    return f"Your reply could not be used: {parsed.problem}. Reply again with {wanted}."
