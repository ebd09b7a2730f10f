"""One ``openai`` zoo entry over several OpenAI-compatible servers (``base_urls``)."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from api_mock import MockServer

from mmaip_core import CallOptions, GenerationRequest, PluginConfigError, PluginManager, TransientError, VideoQA
from mmaip_core.config import load_config
from mmaip_core.stages.build import run_build
from mmaip_plugins.zoo.endpoints import EndpointPool

FAST = {"backoff_s": 0.01, "max_backoff_s": 0.05, "timeout_s": 2.0}


@pytest.fixture
def servers(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[MockServer, MockServer]]:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-endpoints")
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with MockServer(latency_s=0.03) as first, MockServer(latency_s=0.03) as second:
        yield first, second


class _Failing(BaseHTTPRequestHandler):
    """A server that answers every request with 503."""

    server: FailingServer
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.server.hits += 1
        data = json.dumps({"error": {"message": "overloaded", "type": "server_error"}}).encode()
        self.send_response(503)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class FailingServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Failing)
        self.hits = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"  # nothing listens there any more: connection refused


@contextmanager
def _broken_endpoint(kind: str) -> Iterator[tuple[str, FailingServer | None]]:
    """The URL of an endpoint that always fails, and the server behind it (None: nothing listens)."""
    if kind == "connection refused":
        yield _closed_port_url(), None
        return
    failing = FailingServer()
    threading.Thread(target=failing.serve_forever, daemon=True).start()
    try:
        yield failing.url, failing
    finally:
        failing.shutdown()
        failing.server_close()


def _requests(count: int) -> list[GenerationRequest]:
    return [
        GenerationRequest(id=f"k{i}", sample=VideoQA(id=f"s{i}", question=f"Question {i}?"), frames=None)
        for i in range(count)
    ]


def _generator(manager: PluginManager, **options: Any) -> Any:
    return manager.create("generator", "openai", {"model": "qwen-vl", "concurrency": 3, **FAST, **options})


def test_calls_are_spread_over_the_endpoints_within_each_one_s_concurrency(
    servers: tuple[MockServer, MockServer], manager: PluginManager
) -> None:
    first, second = servers
    pool = _generator(manager, base_urls=[first.url, second.url])
    assert pool.call_options.concurrency == 6  # the entry's limit: 3 per endpoint
    requests = _requests(40)
    answers = pool.generate(requests, model="m")
    assert all(r.error is None for r in answers)
    assert len(first.requests) + len(second.requests) == 40
    assert len(first.requests) >= 10 and len(second.requests) >= 10
    assert first.max_in_flight <= 3 and second.max_in_flight <= 3
    assert first.max_in_flight + second.max_in_flight > 3  # more at once than one endpoint may take
    single = _generator(manager, base_url=first.url).generate(requests, model="m")
    assert [(r.id, r.text) for r in answers] == [(r.id, r.text) for r in single]


def test_the_fingerprint_does_not_depend_on_the_endpoints(
    servers: tuple[MockServer, MockServer], manager: PluginManager
) -> None:
    first, second = servers
    prints = {
        _generator(manager, base_urls=urls).fingerprint
        for urls in ([first.url, second.url], [second.url, first.url], [first.url], ["http://h3:8000/v1"])
    }
    assert len(prints) == 1
    other_model = _generator(manager, base_urls=[first.url], model="other").fingerprint
    assert other_model not in prints
    assert _generator(manager, base_urls=[first.url], concurrency=9).fingerprint in prints


@pytest.mark.parametrize("broken", ["connection refused", "503 every time"])
def test_a_failing_endpoint_leaves_its_calls_to_the_other(
    servers: tuple[MockServer, MockServer], manager: PluginManager, broken: str
) -> None:
    alive = servers[0]
    with _broken_endpoint(broken) as (url, failing):
        answers = _generator(manager, base_urls=[url, alive.url]).generate(_requests(20), model="m")
    assert [r.error for r in answers] == [None] * 20
    assert len(alive.requests) == 20  # each call succeeded once, there
    if failing is not None:
        assert failing.hits >= 1  # it was tried first (round robin), and its calls were retried on the other


def test_a_build_succeeds_through_the_working_endpoint(
    servers: tuple[MockServer, MockServer], manager: PluginManager, demo_dir: Path, tmp_path: Path
) -> None:
    alive = servers[0]
    config = tmp_path / "run.yaml"
    entry = {"name": "pool", "generator": "openai", "model": "qwen-vl", "max_frames": 1, **FAST}
    config.write_text(
        yaml.safe_dump(
            {
                "samples": {"path": str(demo_dir / "qa.jsonl")},
                "frames": {"num_frames": 2, "cache_dir": str(tmp_path / "frames")},
                "zoo": [{**entry, "base_urls": [_closed_port_url(), alive.url]}],
                "scorer": {"name": "exact-match"},
            }
        )
    )
    summary = run_build(load_config(config, manager), tmp_path / "run", manager)
    assert summary.responses["pool"].get("failed", 0) == 0 and summary.responses["pool"]["done"] == 9


def test_base_url_and_base_urls_exclude_each_other(manager: PluginManager) -> None:
    with pytest.raises(PluginConfigError, match=r"base_url \(one endpoint\) or base_urls \(several\), not both"):
        _generator(manager, base_url="http://h1/v1", base_urls=["http://h2/v1"])
    with pytest.raises(PluginConfigError, match="listed twice"):
        _generator(manager, base_urls=["http://h1/v1", "http://h1/v1"])
    with pytest.raises(PluginConfigError, match="at least one endpoint"):
        _generator(manager, base_urls=[])


def _pool(endpoints: int, concurrency: int = 2) -> EndpointPool:
    return EndpointPool([object] * endpoints, CallOptions(concurrency=concurrency, backoff_s=10, max_backoff_s=10))


def test_ties_go_round_robin_and_the_least_busy_endpoint_is_chosen() -> None:
    pool = _pool(3)
    picks = [pool.pick() for _ in range(4)]
    assert [pool.endpoints.index(e) for e in picks if e is not None] == [0, 1, 2, 0]
    pool.endpoints[0].in_flight, pool.endpoints[1].in_flight = 2, 1
    assert pool.pick() is pool.endpoints[2]
    pool.endpoints[2].in_flight = 1
    assert pool.pick() is pool.endpoints[1]  # 1 and 2 tie at one call; the round robin is past 2


def test_a_failing_endpoint_rests_then_takes_one_probe_and_calls_wait_for_room_elsewhere() -> None:
    async def scenario(pool: EndpointPool) -> None:
        with pytest.raises(TransientError):
            async with pool.lease("call-1"):
                raise TransientError("lost", error_class="APIConnectionError")
        broken, working = pool.endpoints
        assert (broken.failures, broken.in_flight) == (1, 0)
        assert pool.pick() is working
        working.in_flight = 2  # full: a call waits instead of going to the resting endpoint
        assert pool.pick() is None
        broken.rest_until = 0.0  # the rest is over: one call may try it again
        assert pool.pick() is broken
        broken.in_flight = 1
        assert pool.pick() is None  # the probe is under way
        broken.in_flight, working.in_flight = 0, 1
        async with pool.lease("call-2") as endpoint:  # the probe
            assert endpoint is broken and broken.in_flight == 1
        assert (broken.failures, broken.in_flight) == (0, 0)  # one success ends its failures

    asyncio.run(scenario(_pool(2)))


def test_a_call_is_retried_on_another_endpoint_than_the_one_that_failed_it() -> None:
    async def scenario(pool: EndpointPool) -> None:
        first, second = pool.endpoints
        with pytest.raises(TransientError):
            async with pool.lease("call-1") as endpoint:
                assert endpoint is first
                raise TransientError("server error", error_class="InternalServerError")
        first.failures, first.rest_until = 0, 0.0  # healthy again, and idle
        second.in_flight = 1
        async with pool.lease("call-1") as endpoint:
            assert endpoint is second
        async with pool.lease("call-3") as endpoint:
            assert endpoint is first

    asyncio.run(scenario(_pool(2)))


def test_an_attempt_that_runs_out_of_time_counts_as_a_failure_of_its_endpoint() -> None:
    async def scenario(pool: EndpointPool) -> None:
        async def hang() -> None:
            async with pool.lease("call-1"):
                await asyncio.sleep(10)

        with pytest.raises(TimeoutError):
            await asyncio.wait_for(hang(), 0.01)  # as the core's timeout_s does
        first, second = pool.endpoints
        assert (first.failures, first.in_flight) == (1, 0)
        async with pool.lease("call-1") as endpoint:
            assert endpoint is second

    asyncio.run(scenario(_pool(2)))


def test_a_single_failing_endpoint_still_takes_calls() -> None:
    pool = _pool(1)
    (only,) = pool.endpoints
    only.failures, only.rest_until = 3, float("inf")
    assert pool.pick(avoid=only) is only
