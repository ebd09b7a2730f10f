"""What every judge scorer shares, local or behind an API: its fingerprint, the first request about an answer,
reading a reply into a :class:`~mmaip_core.Judgement`, and failures."""

from __future__ import annotations

from typing import Any, ClassVar

from mmaip_core import ErrorInfo, Frames, Judgement, ParseStatus, ScoreRequest, TokenUsage, stable_hash
from mmaip_plugins.apis.images import frame_positions
from mmaip_plugins.judging.options import JudgeOptions
from mmaip_plugins.judging.parsing import Parsed, parse_reply
from mmaip_plugins.judging.prompts import build_prompt, prompt_hash
from mmaip_plugins.judging.protocols import protocol

__all__ = ["JudgeBase", "add_usage", "judge_fingerprint", "seen_frames_key"]


def judge_fingerprint(scorer: str, endpoint: str | None, model: str, options: JudgeOptions, frames: list[Any]) -> str:
    """Fingerprint of a judge: which model (and where, when ``endpoint`` is given), the prompt, the parameters,
    the frame policy.

    Judgements are cached under it: whatever changes it re-asks every judgement of every existing run folder."""
    key: dict[str, Any] = {} if endpoint is None else {"endpoint": endpoint}
    key.update(
        scorer=scorer,
        model=model,
        prompt=prompt_hash(options),
        params=[options.structured, options.temperature, options.max_tokens],
        frames=[options.vision, *frames],
    )
    return stable_hash(key)[:16]


def add_usage(spent: TokenUsage, used: TokenUsage | None) -> TokenUsage:
    """The tokens of the calls about one answer so far (a repair resends the conversation)."""
    if used is None:
        return spent
    return TokenUsage(
        prompt_tokens=spent.prompt_tokens + used.prompt_tokens,
        completion_tokens=spent.completion_tokens + used.completion_tokens,
    )


def seen_frames_key(frames: Frames, max_frames: int | None) -> str:
    """The FrameManifest key of the frames a judge is shown: all of ``frames``, or the ``max_frames`` of them
    its request carries (:func:`~mmaip_plugins.apis.images.frame_positions`)."""
    positions = frame_positions(frames, max_frames)
    if len(positions) == len(frames.manifest.indices):
        return frames.manifest.key
    manifest = frames.manifest
    seen = manifest.model_copy(
        update={
            "indices": [manifest.indices[p] for p in positions],
            "timestamps": [manifest.timestamps[p] for p in positions],
        }
    )
    return seen.key


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
        self.protocol = protocol(options.protocol)
        self.max_frames: int | None = None
        """The most frames one request shows (None: all); the judge's frame key records the ones it saw."""

    def _conversation(self, request: ScoreRequest, system: str, user: str) -> tuple[str, list[dict[str, Any]]]:
        """(system, messages) in the model's format: plain text messages by default."""
        return system, [{"role": "system", "content": system}, {"role": "user", "content": user}]

    def messages(self, request: ScoreRequest, structured: bool) -> tuple[str, list[dict[str, Any]]]:
        """(system, messages) of the first request about ``request``."""
        assert request.response.text is not None
        system, user = build_prompt(
            self.options, request.sample, request.response.text, structured, request.alt_prediction
        )
        return self._conversation(request, system, user)

    def _judgement(self, request: ScoreRequest, **fields: Any) -> Judgement:
        return Judgement(
            response_id=request.response.id,
            sample_id=request.sample.id,
            scorer=self.name,
            fingerprint=self.fingerprint,
            scale=self.scale,
            model_id=self.model_id,
            frames=seen_frames_key(request.frames, self.max_frames) if self.uses_frames and request.frames else None,
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
