"""The ``hf-judge`` scorer: a local Hugging Face VLM as judge (any model the ``hf`` generator runs), with the
prompt and reply parsing of the API judges."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import Field

from mmaip_core import ErrorInfo, HubOrFolder, Judgement, ParseStatus, ScoreRequest, TokenUsage
from mmaip_plugins.judging import JudgeBase, JudgeOptions, add_usage, judge_fingerprint, repair_turn
from mmaip_plugins.zoo.hf import GenerationParams, HFGenerator, HFOptions

__all__ = ["HFJudge", "HFJudgeOptions"]


class HFJudgeOptions(JudgeOptions):
    model: Annotated[str, HubOrFolder()] = Field(description="Hub id or local folder of the judge model.")
    revision: str | None = None
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    device: str = Field(default="auto", description="cpu, cuda, ... or auto.")
    device_map: str | None = None
    batch_size: int = Field(default=4, ge=1, le=1024, description="Answers judged per generate() call.")
    frames_as: Literal["video", "images"] = "video"
    structured: bool = Field(
        default=False, description="Ask for JSON (no constrained decoding locally); default: 'Score: N' text."
    )


class HFJudge(JudgeBase):
    """Greedy decoding; unusable replies are re-asked (with what was wrong) at most ``max_repairs`` times,
    in batches, then recorded without a score."""

    name = "hf-judge"

    def __init__(self, options: HFJudgeOptions) -> None:
        model_id = options.model + (f"@{options.revision}" if options.revision else "")
        super().__init__(
            options, model_id, judge_fingerprint(self.name, "local", model_id, options, [options.frames_as])
        )
        params = GenerationParams(temperature=0.0, max_new_tokens=options.max_tokens)
        self.generator = HFGenerator(
            HFOptions(
                model=options.model,
                revision=options.revision,
                dtype=options.dtype,
                device=options.device,
                device_map=options.device_map,
                batch_size=options.batch_size,
                frames_as=options.frames_as,
                params=params,
            )
        )

    def score(self, requests: Sequence[ScoreRequest]) -> list[Judgement]:
        done: dict[int, Judgement] = {}
        chats: dict[int, list[dict[str, Any]]] = {}
        spent: dict[int, TokenUsage] = {}
        for i, request in enumerate(requests):
            if request.response.text is None:
                done[i] = self.failed(request, ErrorInfo(error_class="InputError", message="the response has no text"))
            else:
                chats[i] = self.messages(request, self.structured)[1]
                spent[i] = TokenUsage()
        for attempt in range(1, self.options.max_repairs + 2):
            pending = [i for i in chats if i not in done]
            for start in range(0, len(pending), self.generator.batch_size):
                batch = pending[start : start + self.generator.batch_size]
                frames = [requests[i].frames if self.uses_frames else None for i in batch]
                replies = self.generator.complete(
                    [(chats[i], f) for i, f in zip(batch, frames, strict=True)], seed_key=batch
                )
                for i, (reply, used) in zip(batch, replies, strict=True):
                    spent[i] = add_usage(spent[i], used)
                    judgement, parsed = self.read_reply(requests[i], reply, spent[i], attempt, self.structured)
                    if parsed.status is ParseStatus.OK or attempt == self.options.max_repairs + 1:
                        done[i] = judgement
                    else:
                        chats[i] = [*chats[i], *repair_turn(reply, parsed, self.structured)]
        return [done[i] for i in range(len(requests))]
