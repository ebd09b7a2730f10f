"""The LLM judge shared by the judge scorers (``openai-judge``, ``anthropic-judge``, ``hf-judge``) and, through
them, the ``vision-judge`` and ``text-judge`` evaluators. One job a module:

- ``options``: :class:`JudgeOptions`, what a judge is asked (rate or verdict, criteria, scale, vision, repairs).
- ``prompts``: the two prompt families, ``rate`` (the build's scoring function, after the paper) and ``verdict``
  (the evaluation, Video-ChatGPT style), the JSON Schema of their replies, and the hash of the templates.
- ``parsing``: reading a reply (JSON or text) into :class:`Parsed`, and the repair turn after an unusable one.
- ``base``: :class:`JudgeBase`, what every judge shares (fingerprint, prompt, reply to judgement, failures).
- ``api``: :class:`ApiJudge`, a judge behind an API (repairs, plain-text fallback, estimate, batch results).
"""

from mmaip_plugins.judging.api import ApiJudge, StructuredOutputRefused, batch_results
from mmaip_plugins.judging.base import JudgeBase, add_usage, judge_fingerprint
from mmaip_plugins.judging.options import DEFAULT_CRITERIA, JudgeOptions
from mmaip_plugins.judging.parsing import CORRECT, Parsed, parse_reply, repair_message, repair_turn
from mmaip_plugins.judging.prompts import build_prompt, prompt_hash, reply_schema

__all__ = [
    "CORRECT",
    "DEFAULT_CRITERIA",
    "ApiJudge",
    "JudgeBase",
    "JudgeOptions",
    "Parsed",
    "StructuredOutputRefused",
    "add_usage",
    "batch_results",
    "build_prompt",
    "judge_fingerprint",
    "parse_reply",
    "prompt_hash",
    "repair_message",
    "repair_turn",
    "reply_schema",
]
