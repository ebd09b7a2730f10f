from __future__ import annotations

import pytest
from helpers import eval_record

from mmaip_core import EvalRecord, ParseStatus
from mmaip_core.analysis.metrics import paired_difference, summarize


def _record(
    sample: str,
    video: str,
    correct: bool | None,
    score: float | None,
    status: ParseStatus = ParseStatus.OK,
    model: str = "m",
) -> EvalRecord:
    return eval_record(sample_id=sample, video=video, model=model, correct=correct, score=score, status=status)


RECORDS = [
    _record("a1", "A", True, 5),
    _record("a2", "A", False, 1),
    _record("b1", "B", True, 4),
    _record("c1", "C", None, None, ParseStatus.PARSE_FAILURE),
    _record("d1", "D", None, None, ParseStatus.ERROR),
]


def test_point_estimates_and_counts_match_hand_computation() -> None:
    summary = summarize(RECORDS)
    assert (summary.n, summary.videos, summary.parse_failures, summary.errors) == (3, 2, 1, 1)
    assert summary.ratio.value == pytest.approx(2 / 3)
    assert summary.score.value == pytest.approx(10 / 3)


def test_the_bootstrap_resamples_videos_not_questions() -> None:
    # Two clusters: resampled ratios are 0.5 (A,A), 2/3 (A,B or B,A) or 1.0 (B,B), a quarter each at the
    # ends, so the 95% interval is exactly [0.5, 1.0]; scores: [3.0, 4.0].
    summary = summarize(RECORDS, resamples=4000)
    assert (summary.ratio.low, summary.ratio.high) == (0.5, 1.0)
    assert (summary.score.low, summary.score.high) == (3.0, 4.0)
    one_video = summarize([_record("x", "V", True, 3), _record("y", "V", False, 1)])
    assert (one_video.ratio.low, one_video.ratio.value, one_video.ratio.high) == (0.5, 0.5, 0.5)


def test_no_usable_record() -> None:
    summary = summarize([_record("c1", "C", None, None, ParseStatus.PARSE_FAILURE)])
    assert summary.n == 0 and summary.ratio.value is None and summary.parse_failures == 1


def test_paired_difference_on_shared_questions() -> None:
    other = [
        _record("a1", "A", False, 2, model="o"),
        _record("a2", "A", False, 1, model="o"),
        _record("b1", "B", None, None, ParseStatus.PARSE_FAILURE, model="o"),
    ]
    diff = paired_difference(RECORDS, other, resamples=500)
    assert diff.n == 2  # b1 has no usable verdict for the other model
    assert diff.ratio.value == pytest.approx(0.5) and diff.score.value == pytest.approx(1.5)
    assert diff.ratio.low == diff.ratio.high == pytest.approx(0.5)  # one video: no spread
