"""The ``multiple-choice`` evaluator: the option letter of the prediction against the correct one.

The letter is the one after an answer phrase ("the answer is C", "Answer: (C)", as lmms-eval's extraction ranks
first), else extracted as VLMEvalKit's ``can_infer`` does (vlmeval/utils/matching_util.py): a letter that stands
alone once the punctuation ``.()[],:;!*#{}`` is blanked out, when exactly one option's letter does so (and not when
"A" stands among more than three words, where it may be an article); else the one option whose text the
prediction contains. A prediction with no letter is wrong (as lmms-eval and VLMEvalKit without a judge count it),
unreadable (``unmatched: unreadable``), or, with a ``judge``, judged: the judge (any judge scorer, as for
``text-judge``) is asked whether the prediction means the correct option.

Options come from the sample's ``metadata["options"]`` (the multiple-choice readers put them there), else from
the question's lines ``A. text`` / ``(A) text``; the ground truth is a letter or an option's text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import Field

from mmaip_core import (
    EvalRecord,
    EvalRequest,
    ParseStatus,
    PluginContext,
    PluginOptions,
    PluginSection,
    ScoreScale,
    stable_hash,
)
from mmaip_plugins.evaluators.judges import JudgeEvaluator, JudgeEvaluatorOptions, text_judge
from mmaip_plugins.evaluators.records import NO_TRUTH, eval_record

__all__ = ["MultipleChoiceEvaluator", "MultipleChoiceOptions", "extract_letter", "options_of"]

LETTERS = "ABCDEFGHIJ"
EXTRACTION = "answer-phrase+vlmevalkit-can-infer"
"""The extraction rule, part of the fingerprint: a change of the rule changes every verdict's key."""
_PUNCTUATION = re.compile(r"[.()\[\],:;!*#{}]")
_ANSWER_PHRASE = re.compile(r"(?i:\banswer\s*(?:is\s*:?|:)\s*)\(?([A-J])\)?(?![A-Za-z])")  # the letter: capital
_OPTION_LINE = re.compile(r"^\s*\(?([A-J])[.)]\s+(.+?)\s*$", re.MULTILINE)


class MultipleChoiceOptions(PluginOptions):
    judge: Annotated[dict[str, Any] | None, PluginSection("scorer")] = Field(
        default=None,
        description="A judge scorer (name and options, e.g. {name: openai-judge, model: gpt-4o-mini}) asked about "
        "predictions without a letter; none: they are handled by `unmatched`.",
    )
    unmatched: Literal["wrong", "unreadable"] = Field(
        default="wrong",
        description="Without a judge, a prediction with no letter is wrong (lmms-eval, VLMEvalKit) or unreadable "
        "(counted apart, never imputed).",
    )
    scale: ScoreScale = Field(
        default_factory=lambda: ScoreScale(min=0, max=1), description="Score range: max when correct, min when not."
    )


def options_of(request: EvalRequest) -> list[str]:
    """The option texts of the question, letter A first: the sample's metadata, else the question's lines."""
    options = request.sample.metadata.get("options")
    if isinstance(options, list) and options:
        return [str(o) for o in options]
    lines = _OPTION_LINE.findall(request.sample.question)
    letters = "".join(letter for letter, _ in lines)
    return [text for _, text in lines] if LETTERS.startswith(letters) else []


def extract_letter(prediction: str, options: Sequence[str]) -> str | None:
    """The option letter ``prediction`` gives, by VLMEvalKit's rules (see the module); None when there is none."""
    letters = LETTERS[: len(options)]
    phrase = _ANSWER_PHRASE.search(prediction)
    if phrase and phrase.group(1) in letters:
        return phrase.group(1)
    words = _PUNCTUATION.sub(" ", prediction).split()
    found = [letter for letter in letters if letter in words]
    if len(found) == 1 and not ("A" in words and len(words) > 3):
        return found[0]
    low = prediction.lower()
    texts = [letter for letter, text in zip(letters, options, strict=False) if text.lower() in low]
    return texts[0] if len(texts) == 1 else None


def _truth(answer: str | None, options: Sequence[str]) -> str | None:
    """The correct letter: the ground truth as a letter, or the letter of the option it spells out."""
    if answer is None:
        return None
    text = answer.strip()
    if len(text) == 1 and text.upper() in LETTERS[: len(options)]:
        return text.upper()
    matches = [LETTERS[i] for i, option in enumerate(options) if option.strip().lower() == text.lower()]
    return matches[0] if len(matches) == 1 else None


class MultipleChoiceEvaluator:
    """Correct when the extracted letter is the correct one; score = scale max or min."""

    name = "multiple-choice"
    uses_frames = False

    def __init__(self, options: MultipleChoiceOptions, judge: JudgeEvaluator | None) -> None:
        self.options, self.judge, self.scale = options, judge, options.scale
        self.fingerprint = stable_hash(
            {
                "evaluator": self.name,
                "extraction": EXTRACTION,
                **options.model_dump(mode="json", exclude={"judge"}),
                "judge": judge.fingerprint if judge else None,
            }
        )[:16]

    def _record(self, request: EvalRequest, **verdict: Any) -> EvalRecord:
        return eval_record(request, self.name, self.fingerprint, self.scale, **verdict)

    def _verdict(self, correct: bool, rationale: str) -> dict[str, Any]:
        return {"correct": correct, "score": self.scale.max if correct else self.scale.min, "rationale": rationale}

    def evaluate(self, requests: Sequence[EvalRequest]) -> list[EvalRecord]:
        records: list[EvalRecord | None] = []
        to_judge: list[tuple[int, EvalRequest]] = []
        for request in requests:
            options = options_of(request)
            truth = _truth(request.sample.answer, options)
            if truth is None:
                why = NO_TRUTH if request.sample.answer is None else "no option is the truth"
                records.append(self._record(request, status=ParseStatus.ERROR, rationale=why))
                continue
            letter = extract_letter(request.prediction, options)
            if letter is not None:
                records.append(self._record(request, **self._verdict(letter == truth, f"extracted {letter}")))
            elif self.judge is not None:
                answer = f"{truth}. {options[LETTERS.index(truth)]}"
                to_judge.append((len(records), _with_answer(request, answer)))
                records.append(None)
            elif self.options.unmatched == "wrong":
                records.append(self._record(request, **self._verdict(False, "no option letter in the prediction")))
            else:
                records.append(self._record(request, status=ParseStatus.PARSE_FAILURE, rationale="no option letter"))
        if to_judge:
            assert self.judge is not None
            judged = self.judge.evaluate([r for _, r in to_judge])
            for (i, _), verdict in zip(to_judge, judged, strict=True):
                records[i] = self._judged(requests[i], verdict)
        return [r for r in records if r is not None]

    def _judged(self, request: EvalRequest, judged: EvalRecord) -> EvalRecord:
        """The judge's verdict on a prediction without a letter, on this evaluator's scale."""
        common = {"raw_reply": judged.raw_reply, "model_id": judged.model_id, "usage": judged.usage}
        if judged.status is not ParseStatus.OK or judged.correct is None:
            return self._record(request, status=judged.status, rationale=f"judge: {judged.rationale}", **common)
        return self._record(request, **self._verdict(judged.correct, f"no letter; judge: {judged.rationale}"), **common)


def _with_answer(request: EvalRequest, answer: str) -> EvalRequest:
    """``request`` with the correct option spelled out as the ground truth (what the judge compares against)."""
    sample = request.sample.model_copy(update={"answer": answer})
    return EvalRequest(sample=sample, benchmark=request.benchmark, model=request.model, prediction=request.prediction)


def multiple_choice(options: MultipleChoiceOptions, context: PluginContext) -> MultipleChoiceEvaluator:
    """The evaluator, with its judge (a text judge over ``options.judge``) when one is configured."""
    judge = None if options.judge is None else text_judge(JudgeEvaluatorOptions(judge=options.judge), context)
    return MultipleChoiceEvaluator(options, judge)
