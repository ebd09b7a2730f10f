"""A local OpenAI-compatible (``/v1/chat/completions``) and Anthropic (``/v1/messages``) server for tests
(127.0.0.1, random port), with scripted failures.

The model name picks the behaviour (several may be combined):

- ``ratelimit``: the first attempt of each request gets 429 with ``retry-after: 0.05``;
- ``flaky``: the first two attempts get 500; ``alwaysfail``: every attempt gets 500;
- ``slow``: the first attempt sleeps 2 s (longer than the tests' timeouts);
- ``garbage``: judge replies cannot be parsed; ``badrange``: judge scores are 9;
- ``nojson``: requests asking for structured output (``response_format``/``output_config``) get 400.

Every answer takes ``latency_s`` (default 0.01 s). Judges (recognised by their system prompt) score 5 when the ground truth occurs in the candidate answer, else
2. Generators answer ``"<question> [<n> images]"``. Every request is recorded with its headers and body.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class MockServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, latency_s: float = 0.01) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.latency_s = latency_s
        self.requests: list[dict[str, Any]] = []
        self.attempts: dict[str, int] = {}
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """Base URL for OpenAI clients."""
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    @property
    def anthropic_url(self) -> str:
        """Base URL for Anthropic clients (no /v1)."""
        return f"http://127.0.0.1:{self.server_address[1]}"

    def __enter__(self) -> MockServer:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.shutdown()
        self.server_close()


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "\n".join(part.get("text", "") for part in content if part.get("type") == "text")


def _images(content: Any) -> int:
    return 0 if isinstance(content, str) else sum(1 for part in content if part.get("type") in ("image_url", "image"))


def _judge_score(user: str) -> int:
    truth = re.search(r"Ground-truth answer: (.*)", user)
    answer = re.search(r"<candidate_answer>\n(.*)\n</candidate_answer>", user, re.S)
    if truth and answer and truth.group(1).strip().lower() in answer.group(1).lower():
        return 5
    return 2


class _Handler(BaseHTTPRequestHandler):
    server: MockServer
    protocol_version = "HTTP/1.1"  # keep-alive, as real API servers do
    disable_nagle_algorithm = True  # headers and body go out at once (no delayed-ACK stalls)

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("content-length", 0)))
        body = json.loads(raw)
        server = self.server
        key = hashlib.sha256(raw).hexdigest()
        with server.lock:
            server.requests.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body})
            attempt = server.attempts[key] = server.attempts.get(key, 0) + 1
            server.in_flight += 1
            server.max_in_flight = max(server.max_in_flight, server.in_flight)
        try:
            self._answer(body, attempt)
        finally:
            with server.lock:
                server.in_flight -= 1

    def _error(self, anthropic: bool, status: int, kind: str, message: str, headers: dict[str, str] | None = None) -> None:
        payload = {"type": "error", "error": {"type": kind, "message": message}} if anthropic else {
            "error": {"message": message, "type": kind}
        }
        self._send(status, payload, headers)

    def _answer(self, body: dict[str, Any], attempt: int) -> None:
        anthropic = self.path.endswith("/messages")
        structured = "output_config" in body if anthropic else "response_format" in body
        model = body["model"]
        time.sleep(self.server.latency_s)
        if "slow" in model and attempt == 1:
            time.sleep(2)
        if "ratelimit" in model and attempt == 1:
            return self._error(anthropic, 429, "rate_limit_error", "rate limited", {"retry-after": "0.05"})
        if ("flaky" in model and attempt <= 2) or "alwaysfail" in model:
            return self._error(anthropic, 500, "api_error", "server error")
        if "nojson" in model and structured:
            field = "output_config" if anthropic else "response_format"
            return self._error(anthropic, 400, "invalid_request_error", f"{field} is not supported")
        messages = body["messages"]
        system = body.get("system", "") if anthropic else next(
            (_text(m["content"]) for m in messages if m["role"] == "system"), ""
        )
        user = _text(next(m["content"] for m in messages if m["role"] == "user"))
        images = sum(_images(m["content"]) for m in messages if m["role"] == "user")
        if "judge" in system:
            score = 9 if "badrange" in model else _judge_score(user)
            if "garbage" in model:
                content = "I think it is a fine answer."
            elif structured:
                fmt = body["output_config"]["format"] if anthropic else body["response_format"]["json_schema"]
                criteria = fmt["schema"]["properties"]["criteria"]["required"]
                content = json.dumps({"rationale": "compared", "criteria": dict.fromkeys(criteria, score), "score": score})
            else:
                content = f"Explanation: compared with the ground truth\nAccuracy: {score}\nScore: {score}"
        else:
            content = f"{user.strip()} [{images} images]"
        prompt_tokens, completion_tokens = 10 + 85 * images, len(content.split())
        if anthropic:
            return self._send(200, {
                "id": "msg_1", "type": "message", "role": "assistant", "model": model,
                "content": [{"type": "text", "text": content}], "stop_reason": "end_turn", "stop_sequence": None,
                "usage": {"input_tokens": prompt_tokens, "output_tokens": completion_tokens},
            })
        self._send(200, {
            "id": "cmpl-1", "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
        })


if __name__ == "__main__":  # run on its own (benchmarks): prints the base URL, serves until killed
    import sys

    with MockServer(latency_s=float(sys.argv[1]) if len(sys.argv) > 1 else 0.01) as running:
        print(running.url, flush=True)
        running.thread.join()
