from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from mmaip_core import (
    RECORDS,
    AnnotatedResponse,
    ErrorInfo,
    EvalRecord,
    FrameManifest,
    ItemError,
    Judgement,
    ParseStatus,
    PluginInfo,
    PreferencePair,
    Response,
    RoundRecord,
    RoundResult,
    RunManifest,
    ScoreScale,
    TokenUsage,
    TrainManifest,
    TrainPair,
    UnknownRecordError,
    VideoQA,
)
from mmaip_core.records import record_schema

MANIFEST = FrameManifest(
    video="v.mp4",
    video_sha256="a" * 64,
    sampler="uniform",
    sampler_params={"num_frames": 2},
    indices=[0, 9],
    timestamps=[0.0, 0.3],
    backend="pyav",
    fallback_from="decord",
    fallback_reason="boom",
    source_fps=30.0,
    source_num_frames=10,
    source_size=(64, 48),
    output_size=(32, 24),
    max_side=32,
)

ROUND_RESULT = RoundResult(
    steps=2,
    pairs=3,
    curves={"loss": [0.69, 0.6], "margin": [0.0, 0.2]},
    vision_encodes=2,
    reference_forwards=6,
    skipped=[ItemError(stage="train", item="p9", error_class="TooLong", message="needs 900 tokens")],
)

EXAMPLES = {
    "VideoQA": VideoQA(
        id="1", video="v.mp4", question="q?", answer="a", caption="c", source="demo", metadata={"split": "train"}
    ),
    "FrameManifest": MANIFEST,
    "Response": Response(
        id="r1",
        sample_id="1",
        model="m",
        model_id="org/m",
        generator="hf",
        params={"temperature": 0.7},
        text="an answer",
        usage=TokenUsage(prompt_tokens=3, completion_tokens=2),
        latency_s=0.5,
        frames=MANIFEST.key,
    ),
    "Judgement": Judgement(
        response_id="r1",
        sample_id="1",
        scorer="exact-match",
        fingerprint="fp",
        score=4.0,
        criteria={"accuracy": 4.0},
        rationale="ok",
        raw_reply="Score: 4",
        frames=MANIFEST.key,
    ),
    "AnnotatedResponse": AnnotatedResponse(
        response=Response(
            id="r2",
            sample_id="1",
            model="m",
            model_id="m",
            generator="openai",
            params={},
            frames=MANIFEST.key,
            error=ErrorInfo(error_class="APITimeoutError", message="timed out", attempts=4),
        ),
        judgements=[],
    ),
    "PreferencePair": PreferencePair(
        id="p1",
        sample_id="1",
        video="v.mp4",
        question="q?",
        prompt="q?",
        chosen="a",
        rejected="b",
        chosen_score=5,
        rejected_score=1,
        chosen_model="m1",
        rejected_model="m2",
        chosen_response_id="r1",
        rejected_response_id="r2",
        strategy="best-worst",
        margin=4,
        label_source="ai:fp",
        frames=MANIFEST.key,
    ),
    "EvalRecord": EvalRecord(
        sample_id="1",
        benchmark="demo",
        model="m",
        evaluator="exact-match",
        fingerprint="fp",
        question="q?",
        answer="a",
        prediction="a",
        correct=True,
        score=5,
        frames=MANIFEST.key,
        judge_frames=MANIFEST.key,
    ),
    "RunManifest": RunManifest(
        mmaip_version="0.1.0",
        python="3.11",
        platform="linux",
        packages={"torch": "2.14.1", "decord": None},
        plugins=[PluginInfo(kind="scorer", name="x", package="p", module="m", description="d")],
        config={"frames": {"sampler": "uniform"}},
        command=["mmaip", "build"],
    ),
    "ItemError": ItemError(stage="train", item="p1", error_class="TooLong", message="needs 900 tokens"),
    "TrainPair": TrainPair(id="p1", video="v.mp4", prompt="q?", chosen="a", rejected="b"),
    "RoundResult": ROUND_RESULT,
    "RoundRecord": RoundRecord(
        round=1,
        reference="out/base",
        policy="out/round-1/policy",
        strong="out/round-1/strong",
        alpha=0.3,
        anchor="out/base",
        reference_policy="extrapolated",
        next_reference="out/round-1/strong",
        next_reference_weights={"strong": 1.0},
        pairs_file="out/round-1/pairs.jsonl",
        result=ROUND_RESULT,
    ),
    "TrainManifest": TrainManifest(base="out/base", trainer="video-dpo", trainer_fingerprint="fp", rounds_planned=2),
}


def test_every_record_has_an_example() -> None:
    assert set(EXAMPLES) == set(RECORDS)


@pytest.mark.parametrize("name", sorted(RECORDS))
def test_json_round_trip(name: str) -> None:
    record = EXAMPLES[name]
    text = record.model_dump_json()
    again = RECORDS[name].model_validate_json(text)
    assert again == record
    assert json.loads(again.model_dump_json()) == json.loads(text)


@pytest.mark.parametrize("name", sorted(RECORDS))
def test_schema_is_json_schema(name: str) -> None:
    schema = record_schema(name.lower())
    assert schema["title"] == name
    assert "properties" in schema and schema["type"] == "object"


def test_unknown_record_lists_names_and_suggests() -> None:
    with pytest.raises(UnknownRecordError) as info:
        record_schema("Judgment")
    assert "Did you mean 'Judgement'?" in str(info.value)
    assert "PreferencePair" in str(info.value)


def test_unknown_fields_are_rejected() -> None:
    with pytest.raises(ValidationError, match="extra"):
        VideoQA(id="1", video="v", question="q", colour="red")  # type: ignore[call-arg]


def test_manifest_key_ignores_backend_but_not_pixels() -> None:
    other_backend = MANIFEST.model_copy(update={"backend": "decord", "fallback_from": None})
    assert other_backend.key == MANIFEST.key
    assert MANIFEST.model_copy(update={"indices": [0, 8]}).key != MANIFEST.key
    assert MANIFEST.model_copy(update={"video_sha256": "b" * 64}).key != MANIFEST.key
    assert MANIFEST.model_copy(update={"output_size": (64, 48)}).key != MANIFEST.key


def test_parse_failure_never_carries_a_score() -> None:
    common = {"response_id": "r", "sample_id": "s", "scorer": "j", "fingerprint": "f"}
    with pytest.raises(ValidationError, match="must not carry a score"):
        Judgement(**common, status=ParseStatus.PARSE_FAILURE, score=3, raw_reply="???")
    failed = Judgement(**common, status=ParseStatus.PARSE_FAILURE, raw_reply="???")
    assert failed.score is None
    with pytest.raises(ValidationError, match="needs a score"):
        Judgement(**common)
    with pytest.raises(ValidationError, match="outside the scale"):
        Judgement(**common, score=6, scale=ScoreScale(min=1, max=5))


def test_pair_requires_a_strict_preference() -> None:
    data = EXAMPLES["PreferencePair"].model_dump()
    with pytest.raises(ValidationError, match="must exceed"):
        PreferencePair.model_validate({**data, "chosen_score": 3, "rejected_score": 3})
    with pytest.raises(ValidationError, match="same response"):
        PreferencePair.model_validate({**data, "rejected_response_id": data["chosen_response_id"]})


def test_response_has_text_or_error() -> None:
    data = EXAMPLES["Response"].model_dump()
    with pytest.raises(ValidationError, match="either text or an error"):
        Response.model_validate({**data, "text": None})
    failed = Response.model_validate(
        {**data, "text": None, "error": ErrorInfo(error_class="RateLimitError", message="429", attempts=3)}
    )
    assert failed.error is not None and failed.error.attempts == 3


def test_eval_record_verdict_only_when_ok() -> None:
    data = EXAMPLES["EvalRecord"].model_dump()
    with pytest.raises(ValidationError, match="carries no verdict"):
        EvalRecord.model_validate({**data, "status": "parse_failure"})
    record = EvalRecord.model_validate({**data, "status": "parse_failure", "correct": None, "score": None})
    assert record.status is ParseStatus.PARSE_FAILURE


def test_scale_must_be_ordered() -> None:
    with pytest.raises(ValidationError, match="below max"):
        ScoreScale(min=5, max=1)
