"""The local API server itself: its latency tail and the timings it reports on GET /stats."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from typing import Any

import pytest
from api_mock import MockServer
from helpers import TESTS


def _body(i: int, system: str = "You are a helpful assistant.") -> dict[str, Any]:
    return {
        "model": f"m{i % 3}",
        "messages": [{"role": "system", "content": system}, {"role": "user", "content": f"Question {i}?"}],
        "seed": i,
    }


def _post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{url}/chat/completions", json.dumps(body).encode(), {"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as reply:
        result: dict[str, Any] = json.load(reply)
        return result


def _stats(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url.removesuffix("/v1") + "/stats", timeout=10) as reply:
        result: dict[str, Any] = json.load(reply)
        return result


def test_the_tail_takes_about_its_fraction_of_requests_and_always_the_same_ones() -> None:
    server = MockServer(latency_s=0.05, tail=(0.2, 2.0))
    try:
        latencies = [server.latency_for(_body(i)) for i in range(4000)]
        assert set(latencies) == {0.05, 2.0}
        assert 0.18 < latencies.count(2.0) / len(latencies) < 0.22
        assert [server.latency_for(_body(i)) for i in range(4000)] == latencies
        reordered = {"seed": 7, "messages": _body(7)["messages"], "model": "m1"}  # same content, other key order
        assert server.latency_for(reordered) == latencies[7]
    finally:
        server.server_close()


def test_without_a_tail_every_request_takes_the_latency() -> None:
    server = MockServer(latency_s=0.03)
    try:
        assert {server.latency_for(_body(i)) for i in range(100)} == {0.03}
    finally:
        server.server_close()


@pytest.mark.parametrize("tail", [(1.5, 1.0), (-0.1, 1.0), (0.5, -1.0)])
def test_a_tail_out_of_range_is_refused(tail: tuple[float, float]) -> None:
    with pytest.raises(ValueError, match="tail"):
        MockServer(tail=tail)


def test_stats_report_each_request_with_its_role_and_tail_latency() -> None:
    with MockServer(latency_s=0.0, tail=(0.5, 0.2)) as server:
        bodies = [_body(i) for i in range(6)] + [_body(9, "You are an impartial judge.")]
        for body in bodies:
            _post(server.url, body)
        stats = _stats(server.url)
    timings = stats["timings"]
    assert [t["model"] for t in timings] == [b["model"] for b in bodies]
    assert [t["role"] for t in timings] == ["generator"] * 6 + ["judge"]
    assert {t["status"] for t in timings} == {200}
    for body, timing in zip(bodies, timings, strict=True):
        slow = server.latency_for(body) == 0.2
        assert (timing["end"] - timing["start"] >= 0.2) == slow
    assert stats["tail"] == [0.5, 0.2] and stats["now"] >= timings[-1]["end"]


def test_the_script_takes_a_tail_and_serves_stats() -> None:
    script = subprocess.Popen(
        [sys.executable, str(TESTS / "api_mock.py"), "0", "--tail", "1:0.1"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert script.stdout is not None
        url = script.stdout.readline().strip()
        _post(url, _body(1))
        stats = _stats(url)
    finally:
        script.kill()
        script.wait()
    assert stats["latency_s"] == 0 and stats["tail"] == [1, 0.1]
    (timing,) = stats["timings"]
    assert timing["end"] - timing["start"] >= 0.1


def test_signed_models_answer_differently() -> None:
    with MockServer(latency_s=0.0) as server:
        answers = {model: _post(server.url, {**_body(1), "model": model}) for model in ("signed-a", "signed-b", "m")}
    texts = {model: reply["choices"][0]["message"]["content"] for model, reply in answers.items()}
    assert texts == {
        "signed-a": "Question 1? [0 images] (signed-a)",
        "signed-b": "Question 1? [0 images] (signed-b)",
        "m": "Question 1? [0 images]",
    }
