"""Judge protocols: named, versioned presets that reproduce how published evaluations ask and read a judge.

A protocol fixes the prompt, the reply format and how it is read (integer scores, the yes test), what happens
to a reply that cannot be read (asked again, or imputed), and the judge settings the published numbers were made
with (model, temperature, token limit), which a config may still override. Sources, quoted where used:

- ``video-chatgpt``: mbzuai-oryx/Video-ChatGPT@659e04b2, ``quantitative_evaluation/evaluate_activitynet_qa.py``
  (the QA judge used for MSVD-QA, MSRVTT-QA, TGIF-QA and ActivityNet-QA).
- ``lmms-eval``: EvolvingLMMs-Lab/lmms-eval@75571cfe, ``lmms_eval/tasks/activitynetqa/utils.py``
  (``get_eval``, ``parse_score``, ``activitynetqa_process_results``, ``activitynetqa_aggregate_*``).
- ``vision``: the paper's vision-grounded scheme (arXiv 2411.16201, section 4c; its prompt is not published):
  the Video-ChatGPT QA judge, shown the frames, with a pinned model at temperature 0.
- ``vcgbench-correctness``, ``-detail``, ``-context``, ``-temporal``, ``-consistency``: the judges of
  Video-ChatGPT's generative benchmark (:mod:`~mmaip_plugins.judging.vcgbench`), one 0-5 score each, no yes/no;
  consistency judges a model's answers to two phrasings of the question together.
- ``mmaip``: mmaip's own verdict prompt (:mod:`~mmaip_plugins.judging.prompts`): JSON with a reason,
  repaired while unreadable. The default, so configs written before protocols keep their verdicts.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from mmaip_plugins.judging.vcgbench import CRITERIA

__all__ = ["PROTOCOLS", "JudgeProtocol", "ProtocolName", "protocol"]

ProtocolName = Literal[
    "mmaip",
    "video-chatgpt",
    "lmms-eval",
    "vision",
    "vcgbench-correctness",
    "vcgbench-detail",
    "vcgbench-context",
    "vcgbench-temporal",
    "vcgbench-consistency",
]

# evaluate_activitynet_qa.py, annotate(): the system message, verbatim (its string pieces are joined without
# separators in the source, hence "task:------##INSTRUCTIONS: - Focus").
VCG_QA_SYSTEM = (
    "You are an intelligent chatbot designed for evaluating the correctness of generative outputs for "
    "question-answer pairs. Your task is to compare the predicted answer with the correct answer and determine if "
    "they match meaningfully. Here's how you can accomplish the task:------##INSTRUCTIONS: "
    "- Focus on the meaningful match between the predicted answer and the correct answer.\n"
    "- Consider synonyms or paraphrases as valid matches.\n"
    "- Evaluate the correctness of the prediction compared to the answer."
)
# ... and the user message, verbatim ('is  a string' with two spaces and the 4.8 example are the source's).
VCG_QA_USER = (
    "Please evaluate the following video-based question-answer pair:\n\n"
    "Question: {question}\n"
    "Correct Answer: {answer}\n"
    "Predicted Answer: {prediction}\n\n"
    "Provide your evaluation only as a yes/no and score where the score is an integer value between 0 and 5, with "
    "5 indicating the highest meaningful match. Please generate the response in the form of a Python dictionary "
    "string with keys 'pred' and 'score', where value of 'pred' is  a string of 'yes' or 'no' and value of 'score' "
    "is in INTEGER, not STRING.DO NOT PROVIDE ANY OTHER OUTPUT TEXT OR EXPLANATION. Only provide the Python "
    "dictionary string. For example, your response should look like this: {{'pred': 'yes', 'score': 4.8}}."
)
# The vision protocol: the same messages, the system one told that frames come with the question.
VISION_SYSTEM = (
    VCG_QA_SYSTEM + "\n- You are also shown frames sampled from the video: use them to judge whether the predicted "
    "answer is right about the video, also where it says more than the short correct answer."
)


class JudgeProtocol(BaseModel):
    """How a judge is asked and read, as one published evaluation does it."""

    model_config = ConfigDict(frozen=True)

    name: ProtocolName
    version: int
    source: str
    system: str | None = None
    """System message template; None: mmaip's own prompts."""
    user: str | None = None
    """User message template with {question}, {answer}, {prediction}."""
    reply: Literal["json-or-text", "python-dict", "first-dict"] = "json-or-text"
    """python-dict: the whole reply is read with ``ast.literal_eval``; first-dict: the first ``{...}`` in it is.
    Both then use the scripts' yes test: ``"yes" in pred.lower()`` is yes, else ``"no" in pred.lower()`` is no."""
    integer_part: bool = False
    """Scores keep their integer part (``int(score)``, as the official scripts do) instead of being refused."""
    reask: Literal["repair", "fresh"] = "repair"
    """After an unreadable reply: a repair turn saying what was wrong, or the same request again from scratch."""
    impute: bool = False
    """An unreadable verdict counts as 'no' with score 0 (lmms-eval) instead of being left out."""
    vision: bool | None = None
    """Whether the judge sees the frames: True or False for protocols that fix it, None for either."""
    pass_mark: float | None = None
    """Score-only protocols (no yes/no in the reply): a score of at least this counts as correct in the ratio
    mmaip reports beside the mean score. None: the reply has a 'pred'."""
    judge: dict[str, Any] = {}
    """Judge options of the published numbers (model, temperature, ...): defaults a config may override."""

    @property
    def label(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def second_answer(self) -> bool:
        """Whether the judge compares the model's answers to two phrasings of the question (its user message
        shows ``{prediction2}``, the answer to the sample's ``alt_question``): a sample without one is an error."""
        return "{prediction2}" in (self.user or "")


VCG_QA = "mbzuai-oryx/Video-ChatGPT@659e04b2 quantitative_evaluation/evaluate_activitynet_qa.py"
LMMS_QA = "EvolvingLMMs-Lab/lmms-eval@75571cfe lmms_eval/tasks/activitynetqa/utils.py"

PROTOCOLS: dict[str, JudgeProtocol] = {
    "mmaip": JudgeProtocol(name="mmaip", version=1, source="mmaip_plugins.judging.prompts (verdict)"),
    # the script calls openai.ChatCompletion.create(model="gpt-3.5-turbo", messages=...) with no temperature
    # (the API default, 1) and no token limit, reads the reply with ast.literal_eval, keeps int(score), and loops
    # "while True" over the files not yet written: an unreadable reply is asked again until it is read.
    "video-chatgpt": JudgeProtocol(
        name="video-chatgpt",
        version=1,
        source=VCG_QA,
        system=VCG_QA_SYSTEM,
        user=VCG_QA_USER,
        reply="python-dict",
        integer_part=True,
        reask="fresh",
        vision=False,
        judge={"model": "gpt-3.5-turbo", "temperature": 1.0, "structured": False, "max_repairs": 5},
    ),
    # get_eval(question, answer, pred, 64): model MODEL_VERSION (default gpt-4o-2024-11-20), "temperature": 0,
    # "max_tokens": 64, 5 attempts on HTTP errors; parse_score reads "{" + review.split("{")[1].split("}")[0] + "}"
    # with ast.literal_eval and int(score); a review that fails is scored ["no", 0] (the except clause of
    # activitynetqa_process_results), and aggregation counts it like any other.
    "lmms-eval": JudgeProtocol(
        name="lmms-eval",
        version=1,
        source=LMMS_QA,
        system=VCG_QA_SYSTEM,
        user=VCG_QA_USER,
        reply="first-dict",
        integer_part=True,
        reask="fresh",
        impute=True,
        vision=False,
        judge={
            "model": "gpt-4o-2024-11-20",
            "temperature": 0.0,
            "max_tokens": 64,
            "structured": False,
            "max_repairs": 0,
        },
    ),
    "vision": JudgeProtocol(
        name="vision",
        version=1,
        source=f"arXiv 2411.16201 section 4c, on {VCG_QA}",
        system=VISION_SYSTEM,
        user=VCG_QA_USER,
        reply="python-dict",
        integer_part=True,
        reask="fresh",
        vision=True,
        judge={"model": "gpt-4o-2024-08-06", "temperature": 0.0, "structured": False, "max_repairs": 5},
    ),
}


# evaluate_benchmark_{1..5}_*.py: the same call, reading and loop as the QA script, a {'score': N} reply.
VCGBENCH = "mbzuai-oryx/Video-ChatGPT@659e04b2 quantitative_evaluation/evaluate_benchmark_{}.py"
for _criterion, _file in [
    ("correctness", "1_correctness"),
    ("detail", "2_detailed_orientation"),
    ("context", "3_context"),
    ("temporal", "4_temporal"),
    ("consistency", "5_consistency"),
]:
    _name = f"vcgbench-{_criterion}"
    PROTOCOLS[_name] = PROTOCOLS["video-chatgpt"].model_copy(
        update={
            "name": _name,
            "source": VCGBENCH.format(_file),
            "system": CRITERIA[_criterion][0],
            "user": CRITERIA[_criterion][1],
            "pass_mark": 3.0,
        }
    )


def protocol(name: str) -> JudgeProtocol:
    """The protocol called ``name`` (validated by the options' Literal, so always known)."""
    return PROTOCOLS[name]
