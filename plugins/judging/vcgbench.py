"""The judge prompts of Video-ChatGPT's generative performance benchmark (VCGBench), verbatim from
mbzuai-oryx/Video-ChatGPT@659e04b2 ``quantitative_evaluation/evaluate_benchmark_{1_correctness,
2_detailed_orientation,3_context,4_temporal,5_consistency}.py`` (``annotate()``; the source's string pieces are
joined without separators, hence "task:------##INSTRUCTIONS: - ..." and "STRING.DO NOT"; its example
``{''score': 4.8}`` is kept as written). Each asks for one integer score from 0 to 5 as a Python dictionary
string; the scripts read it with ``ast.literal_eval``, keep ``int(score)`` and report the mean over all questions.

Consistency shows the model's answers to two phrasings of a question ({prediction}, {prediction2}); the script
fills both question lines with the first phrasing (``main()``: ``question2 = sample['Q1']``), and so does this
template, so that its scores sit beside the published ones."""

from __future__ import annotations

__all__ = ["CRITERIA"]

_TAIL = (
    "Please generate the response in the form of a Python dictionary string with keys 'score', where its value "
    "is {what} in INTEGER, not STRING.DO NOT PROVIDE ANY OTHER OUTPUT TEXT OR EXPLANATION. Only provide the "
    "Python dictionary string. For example, your response should look like this: {{{{''score': 4.8}}}}."
)
_PAIR = (
    "Please evaluate the following video-based question-answer pair:\n\n"
    "Question: {{question}}\n"
    "Correct Answer: {{answer}}\n"
    "Predicted Answer: {{prediction}}\n\n"
    "Provide your evaluation only as a {name} score where the {name} score is an integer value between 0 and 5, "
    "with 5 indicating the highest level of {level}. "
)


def _user(name: str, level: str, what: str) -> str:
    """The user message template (fields {question}, {answer}, {prediction}) of one criterion."""
    return _PAIR.format(name=name, level=level) + _TAIL.format(what=what)


def _system(subject: str, task: str, instructions: list[str]) -> str:
    return (
        f"You are an intelligent chatbot designed for evaluating the {subject} of generative outputs for "
        f"video-based question-answer pairs. Your task is to compare the predicted answer with the correct answer "
        f"and {task}. Here's how you can accomplish the task:------##INSTRUCTIONS: "
        + "\n".join(f"- {line}" for line in instructions)
    )


CRITERIA: dict[str, tuple[str, str]] = {
    "correctness": (
        _system(
            "factual accuracy",
            "determine if they are factually consistent",
            [
                "Focus on the factual consistency between the predicted answer and the correct answer. The "
                "predicted answer should not contain any misinterpretations or misinformation.",
                "The predicted answer must be factually accurate and align with the video content.",
                "Consider synonyms or paraphrases as valid matches.",
                "Evaluate the factual accuracy of the prediction compared to the answer.",
            ],
        ),
        _user("factual accuracy", "factual consistency", "the factual accuracy score"),
    ),
    "detail": (
        _system(
            "detail orientation",
            "determine its level of detail, considering both completeness and specificity",
            [
                "Check if the predicted answer covers all major points from the video. The response should not "
                "leave out any key aspects.",
                "Evaluate whether the predicted answer includes specific details rather than just generic points. "
                "It should provide comprehensive information that is tied to specific elements of the video.",
                "Consider synonyms or paraphrases as valid matches.",
                "Provide a single evaluation score that reflects the level of detail orientation of the "
                "prediction, considering both completeness and specificity.",
            ],
        ),
        _user("detail orientation", "detail orientation", "the detail orientation score"),
    ),
    "context": (
        _system(
            "contextual understanding",
            "determine if the generated response aligns with the overall context of the video content",
            [
                "Evaluate whether the predicted answer aligns with the overall context of the video content. It "
                "should not provide information that is out of context or misaligned.",
                "The predicted answer must capture the main themes and sentiments of the video.",
                "Consider synonyms or paraphrases as valid matches.",
                "Provide your evaluation of the contextual understanding of the prediction compared to the answer.",
            ],
        ),
        _user("contextual understanding", "contextual understanding", "contextual understanding score"),
    ),
    "temporal": (
        _system(
            "temporal understanding",
            "determine if they correctly reflect the temporal sequence of events in the video content",
            [
                "Focus on the temporal consistency between the predicted answer and the correct answer. The "
                "predicted answer should correctly reflect the sequence of events or details as they are "
                "presented in the video content.",
                "Consider synonyms or paraphrases as valid matches, but only if the temporal order is maintained.",
                "Evaluate the temporal accuracy of the prediction compared to the answer.",
            ],
        ),
        _user("temporal accuracy", "temporal consistency", "the temporal accuracy score"),
    ),
    "consistency": (
        "You are an intelligent chatbot designed for evaluating the consistency of generative outputs for similar "
        "video-based question-answer pairs. You will be given two very similar questions, a common answer common to "
        "both the questions and predicted answers for the two questions .Your task is to compare the predicted "
        "answers for two very similar question, with a common correct answer and determine if they are consistent. "
        "Here's how you can accomplish the task:------##INSTRUCTIONS: "
        "- Focus on the consistency between the two predicted answers and the correct answer. Both predicted answers "
        "should correspond to the correct answer and to each other, and should not contain any contradictions or "
        "significant differences in the conveyed information.\n"
        "- Both predicted answers must be consistent with each other and the correct answer, in terms of the "
        "information they provide about the video content.\n"
        "- Consider synonyms or paraphrases as valid matches, but only if they maintain the consistency in the "
        "conveyed information.\n"
        "- Evaluate the consistency of the two predicted answers compared to the correct answer.",
        "Please evaluate the following video-based question-answer pair:\n\n"
        "Question 1: {question}\n"
        "Question 2: {question}\n"
        "Correct Answer: {answer}\n"
        "Predicted Answer to Question 1: {prediction}\n"
        "Predicted Answer to Question 2: {prediction2}\n\n"
        "Provide your evaluation only as a consistency score where the consistency score is an integer value "
        "between 0 and 5, with 5 indicating the highest level of consistency. "
        + _TAIL.format(what="the consistency score"),
    ),
}
"""criterion -> (system message, user message template)."""
