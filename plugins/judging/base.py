"""What every judge scorer shares, local or behind an API: its fingerprint, the first request about an answer,
reading a reply into a :class:`~mmaip_core.Judgement`, and failures."""

from __future__ import annotations

from typing import Any, ClassVar

from mmaip_core import ErrorInfo, Judgement, ParseStatus, ScoreRequest, TokenUsage, stable_hash
from mmaip_plugins.judging.options import JudgeOptions
from mmaip_plugins.judging.parsing import Parsed, parse_reply
from mmaip_plugins.judging.prompts import build_prompt, prompt_hash

__all__ = ["JudgeBase", "add_usage", "judge_fingerprint"]


def judge_fingerprint(scorer: str, endpoint: str, model: str, options: JudgeOptions, frames: list[Any]) -> str:
    """Fingerprint of a judge: where and which model, the prompt, the parameters, the frame policy.

    Judgements are cached under it: whatever changes it re-asks every judgement of every existing run folder."""
    return stable_hash(
        {
            "scorer": scorer,
            "endpoint": endpoint,
            "model": model,
            "prompt": prompt_hash(options),
            "params": [options.structured, options.temperature, options.max_tokens],
            "frames": [options.vision, *frames],
        }
    )[:16]


def add_usage(spent: TokenUsage, used: TokenUsage | None) -> TokenUsage:
    """The tokens of the calls about one answer so far (a repair resends the conversation)."""
    if used is None:
        return spent
    return TokenUsage(
        prompt_tokens=spent.prompt_tokens + used.prompt_tokens,
        completion_tokens=spent.completion_tokens + used.completion_tokens,
    )


class JudgeBase:
    """What every LLM judge shares: the judge prompt, reading replies into judgements, failures."""

    name: ClassVar[str]

    def __init__(self, options: JudgeOptions, model_id: str, fingerprint: str) -> None:
        self.options = options
        self.scale = options.scale
        self.uses_frames = options.vision
        self.model_id = model_id
        self.structured = options.structured
        self.fingerprint = fingerprint

    def _conversation(self, request: ScoreRequest, system: str, user: str) -> tuple[str, list[dict[str, Any]]]:
        """(system, messages) in the model's format: plain text messages by default."""
        return system, [{"role": "system", "content": system}, {"role": "user", "content": user}]

    def messages(self, request: ScoreRequest, structured: bool) -> tuple[str, list[dict[str, Any]]]:
        """(system, messages) of the first request about ``request``."""
        assert request.response.text is not None
        system, user = build_prompt(self.options, request.sample, request.response.text, structured)
        return self._conversation(request, system, user)

    def _judgement(self, request: ScoreRequest, **fields: Any) -> Judgement:
        return Judgement(
            response_id=request.response.id,
            sample_id=request.sample.id,
            scorer=self.name,
            fingerprint=self.fingerprint,
            scale=self.scale,
            model_id=self.model_id,
            frames=request.frames.manifest.key if self.uses_frames and request.frames else None,
            **fields,
        )

    def read_reply(
        self, request: ScoreRequest, reply: str, usage: TokenUsage, attempts: int, structured: bool
    ) -> tuple[Judgement, Parsed]:
        """The judgement a reply gives (a failed status, never a score, when it cannot be used)."""
        parsed = parse_reply(reply, self.options, structured)
        if parsed.status is ParseStatus.OK:
            fields: dict[str, Any] = {"score": parsed.score, "criteria": parsed.criteria, "rationale": parsed.rationale}
        else:
            fields = {"status": parsed.status, "rationale": parsed.problem}
        return self._judgement(request, raw_reply=reply, attempts=attempts, usage=usage, **fields), parsed

    def failed(self, request: ScoreRequest, error: ErrorInfo) -> Judgement:
        """The judgement of an answer that could not be judged: an error, never a score."""
        return self._judgement(request, status=ParseStatus.ERROR, error=error, attempts=error.attempts)
