"""A local OpenAI-compatible (``/v1/chat/completions``) and Anthropic (``/v1/messages``) server for tests
(127.0.0.1, random port), with scripted failures.

The model name picks the behaviour (several may be combined):

- ``ratelimit``: the first attempt of each request gets 429 with ``retry-after: 0.05``;
- ``flaky``: the first two attempts get 500; ``alwaysfail``: every attempt gets 500;
- ``slow``: the first attempt sleeps 2 s (longer than the tests' timeouts);
- ``garbage``: judge replies cannot be parsed (``garbagefirst``: the first attempt of each request only, for
  verdicts in the Video-ChatGPT format); ``badrange``: judge scores are 9; ``fenced``: Video-ChatGPT-format
  verdicts come in a Markdown code fence;
- ``signed``: generator answers end with `` (<model>)``, so models with different names answer differently;
- ``nojson``: requests asking for structured output (``response_format``/``output_config``) get 400;
- ``echourl``: every error message quotes the request as the server saw it, as some proxies do: its URL,
  with the ``user:password@`` of a Basic Authorization header, and its API key; a request that would have
  succeeded gets 404 instead.

Every answer takes ``latency_s`` (default 0.01 s), or, with ``tail=(fraction, seconds)``, ``seconds`` for a
deterministic ``fraction`` of requests: those whose canonical JSON body hashes below ``fraction`` (so the same
request always gets the same latency, a retry included). Judges (recognised by their system prompt) score 5
when the ground truth occurs in the candidate answer, else 2; verdicts are yes/5 then, else no/1. Generators
answer ``"<question> [<n> images]"``. Every request is recorded with its headers and body (``record_requests``),
and every chat request's model, role (generator, judge or verdict), status and ``time.monotonic()`` start and
end (its reply ready to send) in ``timings``; ``GET /stats`` returns the timings as JSON, for a server running
in another process (CLOCK_MONOTONIC is system-wide on Linux, so they compare with the client's clock).

Run on its own (benchmarks), it prints its base URL and serves until killed, keeping no request bodies::

    python tests/api_mock.py [LATENCY] [--tail FRACTION:SECONDS]     # e.g. 0.05 --tail 0.2:2
"""

from __future__ import annotations

import base64
import email
import email.policy
import hashlib
import json
import re
import threading
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class MockServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self, latency_s: float = 0.01, tail: tuple[float, float] | None = None, record_requests: bool = True
    ) -> None:
        if tail is not None and not (0 <= tail[0] <= 1 and tail[1] >= 0):
            raise ValueError(f"tail must be (fraction in [0, 1], seconds >= 0), not {tail}")
        super().__init__(("127.0.0.1", 0), _Handler)
        self.latency_s = latency_s
        self.tail = tail
        self.record_requests = record_requests
        self.requests: list[dict[str, Any]] = []
        self.timings: list[dict[str, Any]] = []
        self.attempts: dict[str, int] = {}
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()
        self.batches = Batches()
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """Base URL for OpenAI clients."""
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    @property
    def anthropic_url(self) -> str:
        """Base URL for Anthropic clients (no /v1)."""
        return f"http://127.0.0.1:{self.server_address[1]}"

    def latency_for(self, body: dict[str, Any]) -> float:
        """The seconds a request with this body takes: the tail's, if its hash falls in the tail's fraction."""
        if self.tail is None or self.tail[0] <= 0:
            return self.latency_s
        fraction, seconds = self.tail
        return seconds if _unit_hash(body) < fraction else self.latency_s

    def stats(self) -> dict[str, Any]:
        """What ``GET /stats`` returns: the settings, the peak of requests in flight and every chat timing."""
        with self.lock:
            timings = list(self.timings)
        return {
            "latency_s": self.latency_s,
            "tail": list(self.tail) if self.tail else None,
            "max_in_flight": self.max_in_flight,
            "now": time.monotonic(),
            "timings": timings,
        }

    def __enter__(self) -> MockServer:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.shutdown()
        self.server_close()


def _unit_hash(body: dict[str, Any]) -> float:
    """A number in [0, 1) fixed by the body's content (its canonical JSON), not by how a client serialised it."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    return int.from_bytes(hashlib.sha256(canonical).digest()[:8], "big") / 2**64


def _system(anthropic: bool, body: dict[str, Any]) -> str:
    if anthropic:
        return _text(body.get("system", ""))
    return next((_text(m["content"]) for m in body.get("messages", []) if m["role"] == "system"), "")


def _role(system: str) -> str:
    """What a chat request asks for, told by its system prompt: a verdict (evaluation), a judgement or an answer."""
    if "Decide whether the prediction is correct" in system:
        return "verdict"
    if "##INSTRUCTIONS" in system:  # Video-ChatGPT's judge prompts (judge protocols, VCGBench)
        return "official"
    return "judge" if "judge" in system else "generator"


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


Reply = tuple[int, dict[str, Any], dict[str, str]]


def _official_verdict(model: str, user: str, attempt: int) -> str:
    """A reply in the format of the Video-ChatGPT prompts, a Python dict string with a fractional score (as its
    example shows): yes/4.8 when the correct answer occurs in the prediction, else no/1.2 (VCGBench criteria:
    the score only; consistency: 4.8 when the answers to the two questions are the same). ``garbage`` (or
    ``garbagefirst`` on a request's first attempt): an unreadable reply; ``fenced``: in a Markdown fence."""
    if "garbage" in model and ("garbagefirst" not in model or attempt == 1):
        return "Looks plausible to me."
    truth = re.search(r"Correct Answer: (.*)", user)
    answer = re.search(r"Predicted Answer: (.*)", user)
    right = bool(truth and answer and truth.group(1).strip().lower() in answer.group(1).lower())
    first, second = (re.search(rf"Predicted Answer to Question {n}: (.*)", user) for n in (1, 2))
    if first and second:  # VCGBench consistency
        right = first.group(1).strip() == second.group(1).strip()
    content = "{'pred': 'yes', 'score': 4.8}" if right else "{'pred': 'no', 'score': 1.2}"
    if "keys 'score'," in user:  # a VCGBench criterion: a score only
        content = "{'score': 4.8}" if right else "{'score': 1.2}"
    return f"```python\n{content}\n```" if "fenced" in model else content


def _error(anthropic: bool, status: int, kind: str, message: str, headers: dict[str, str] | None = None) -> Reply:
    if anthropic:
        return status, {"type": "error", "error": {"type": kind, "message": message}}, headers or {}
    return status, {"error": {"message": message, "type": kind}}, headers or {}


def _chat(server: MockServer, anthropic: bool, body: dict[str, Any], attempt: int) -> Reply:
    """The reply to one chat request (OpenAI chat completion or Anthropic message)."""
    structured = "output_config" in body if anthropic else "response_format" in body
    model = body["model"]
    time.sleep(server.latency_for(body))
    if "slow" in model and attempt == 1:
        time.sleep(2)
    if "ratelimit" in model and attempt == 1:
        return _error(anthropic, 429, "rate_limit_error", "rate limited", {"retry-after": "0.05"})
    if ("flaky" in model and attempt <= 2) or "alwaysfail" in model:
        return _error(anthropic, 500, "api_error", "server error")
    if "nojson" in model and structured:
        field = "output_config" if anthropic else "response_format"
        return _error(anthropic, 400, "invalid_request_error", f"{field} is not supported")
    messages = body["messages"]
    role = _role(_system(anthropic, body))
    user = _text(next(m["content"] for m in messages if m["role"] == "user"))
    images = sum(_images(m["content"]) for m in messages if m["role"] == "user")
    if role == "official":
        content = _official_verdict(model, user, attempt)
    elif role == "verdict":  # evaluation
        right = _judge_score(user) == 5
        score = 9 if "badrange" in model else (5 if right else 1)
        if "garbage" in model:
            content = "Looks plausible to me."
        elif structured:
            content = json.dumps({"reason": "compared", "pred": "yes" if right else "no", "score": score})
        else:
            content = f"Reason: compared\nPred: {'yes' if right else 'no'}\nScore: {score}"
    elif role == "judge":
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
        content = f"{user.strip()} [{images} images]" + (f" ({model})" if "signed" in model else "")
    prompt_tokens, completion_tokens = 10 + 85 * images, len(content.split())
    if anthropic:
        return (
            200,
            {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [{"type": "text", "text": content}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": {"input_tokens": prompt_tokens, "output_tokens": completion_tokens},
            },
            {},
        )
    return (
        200,
        {
            "id": "cmpl-1",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        },
        {},
    )


def _echo(reply: Reply, anthropic: bool, request: str) -> Reply:
    """The ``echourl`` version of ``reply``: an error quoting ``request``."""
    status, payload, headers = reply
    if status == 200:
        return _error(anthropic, 404, "not_found_error", f"no model behind {request}")
    return _error(anthropic, status, payload["error"]["type"], f"{payload['error']['message']} at {request}", headers)


class _Handler(BaseHTTPRequestHandler):
    server: MockServer
    protocol_version = "HTTP/1.1"  # keep-alive, as real API servers do
    disable_nagle_algorithm = True  # headers and body go out at once (no delayed-ACK stalls)

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None, raw: bytes | None = None) -> None:
        data = raw if raw is not None else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _attempt(self, raw: bytes) -> int:
        key = hashlib.sha256(raw).hexdigest()
        with self.server.lock:
            self.server.attempts[key] = self.server.attempts.get(key, 0) + 1
            return self.server.attempts[key]

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("content-length", 0)))
        server = self.server
        content_type = self.headers.get("content-type", "")
        body = json.loads(raw) if content_type.startswith("application/json") else {}
        with server.lock:
            if server.record_requests:
                server.requests.append(
                    {"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body}
                )
            server.in_flight += 1
            server.max_in_flight = max(server.max_in_flight, server.in_flight)
        try:
            if self.path == "/v1/files":
                return self._send(200, server.batches.upload(raw, content_type))
            if self.path == "/v1/batches":
                return self._send(200, server.batches.create_openai(server, body))
            if self.path == "/v1/messages/batches":
                return self._send(200, server.batches.create_anthropic(server, body, self._base()))
            anthropic = self.path.endswith("/messages")
            start = time.monotonic()
            reply = _chat(server, anthropic, body, self._attempt(raw))
            if "echourl" in body["model"]:
                reply = _echo(reply, anthropic, self._seen())
            self._record(body, anthropic, start, reply[0])  # before the reply: a client reading /stats next sees it
            self._send(*reply)
        finally:
            with server.lock:
                server.in_flight -= 1

    def _record(self, body: dict[str, Any], anthropic: bool, start: float, status: int) -> None:
        timing = {
            "model": body.get("model", ""),
            "role": _role(_system(anthropic, body)),
            "status": status,
            "start": start,
            "end": time.monotonic(),
        }
        with self.server.lock:
            self.server.timings.append(timing)

    def _base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def _seen(self) -> str:
        """This request's URL as the client had it (the user:password of Basic auth included), and its key."""
        kind, _, credential = self.headers.get("authorization", "").partition(" ")
        user = base64.b64decode(credential).decode() + "@" if kind.lower() == "basic" else ""
        key = credential if kind.lower() == "bearer" else self.headers.get("x-api-key", "")
        return f"http://{user}{self.headers['host']}{self.path}" + (f" with key {key}" if key else "")

    def do_GET(self) -> None:
        batches = self.server.batches
        path = self.path.split("?")[0]
        if path == "/stats":
            return self._send(200, self.server.stats())
        parts = path.split("/")
        batch_id = parts[4] if path.startswith("/v1/messages/batches/") else parts[3] if len(parts) > 3 else ""
        if "batches/" in path and batch_id not in batches.objects:
            return self._send(404, {"error": {"message": f"no batch {batch_id}", "type": "not_found_error"}})
        if path.startswith("/v1/files/") and path.endswith("/content"):
            return self._send(200, None, raw=batches.files[path.split("/")[3]])
        if path.startswith("/v1/batches/"):
            return self._send(200, batches.retrieve(path.split("/")[3]))
        if path.startswith("/v1/messages/batches/") and path.endswith("/results"):
            return self._send(200, None, raw=batches.files[path.split("/")[4]])
        if path.startswith("/v1/messages/batches/"):
            return self._send(200, batches.retrieve(path.split("/")[4]))
        self._send(404, {"error": {"message": f"no route {path}"}})


class Batches:
    """The OpenAI Batch and Anthropic Message Batches endpoints: a batch is processed when created and
    reported as running on its first retrieval, finished on the next."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.objects: dict[str, dict[str, Any]] = {}
        self.retrievals: dict[str, int] = {}

    def upload(self, raw: bytes, content_type: str) -> dict[str, Any]:
        message = email.message_from_bytes(
            f"Content-Type: {content_type}\r\n\r\n".encode() + raw, policy=email.policy.HTTP
        )
        data = next(
            part.get_payload(decode=True)
            for part in message.iter_parts()
            if part.get_param("name", header="content-disposition") == "file"
        )
        file_id = f"file-{len(self.files)}"
        self.files[file_id] = data
        return {
            "id": file_id,
            "object": "file",
            "bytes": len(data),
            "created_at": 0,
            "filename": "batch.jsonl",
            "purpose": "batch",
            "status": "processed",
        }

    def create_openai(self, server: MockServer, body: dict[str, Any]) -> dict[str, Any]:
        lines = [json.loads(line) for line in self.files[body["input_file_id"]].splitlines() if line.strip()]
        out = []
        for line in lines:
            status, payload, _ = _chat(server, False, line["body"], 1)
            out.append(
                {
                    "id": f"req-{len(out)}",
                    "custom_id": line["custom_id"],
                    "response": {"status_code": status, "body": payload},
                    "error": None,
                }
            )
        output_id = f"file-{len(self.files)}"
        self.files[output_id] = "".join(json.dumps(o) + "\n" for o in out).encode()
        batch_id = f"batch_{len(self.objects)}"
        self.objects[batch_id] = {
            "id": batch_id,
            "object": "batch",
            "endpoint": body["endpoint"],
            "created_at": 0,
            "completion_window": "24h",
            "input_file_id": body["input_file_id"],
            "output_file_id": output_id,
            "error_file_id": None,
            "status": "completed",
        }
        return {**self.objects[batch_id], "status": "validating", "output_file_id": None}

    def create_anthropic(self, server: MockServer, body: dict[str, Any], base: str) -> dict[str, Any]:
        batch_id = f"msgbatch_{len(self.objects)}"
        out = []
        for entry in body["requests"]:
            status, payload, _ = _chat(server, True, entry["params"], 1)
            result = (
                {"type": "succeeded", "message": payload} if status == 200 else {"type": "errored", "error": payload}
            )
            out.append({"custom_id": entry["custom_id"], "result": result})
        self.files[batch_id] = "".join(json.dumps(o) + "\n" for o in out).encode()
        self.objects[batch_id] = {
            "id": batch_id,
            "type": "message_batch",
            "processing_status": "ended",
            "created_at": "2026-01-01T00:00:00Z",
            "expires_at": "2026-01-02T00:00:00Z",
            "ended_at": "2026-01-01T00:01:00Z",
            "archived_at": None,
            "cancel_initiated_at": None,
            "results_url": f"{base}/v1/messages/batches/{batch_id}/results",
            "request_counts": {"processing": 0, "succeeded": len(out), "errored": 0, "canceled": 0, "expired": 0},
        }
        return {**self.objects[batch_id], "processing_status": "in_progress", "results_url": None}

    def retrieve(self, batch_id: str) -> dict[str, Any]:
        self.retrievals[batch_id] = self.retrievals.get(batch_id, 0) + 1
        final = self.objects[batch_id]
        if self.retrievals[batch_id] > 1:
            return final
        if final["id"].startswith("msgbatch"):
            return {**final, "processing_status": "in_progress", "results_url": None}
        return {**final, "status": "in_progress", "output_file_id": None}


def _tail(text: str) -> tuple[float, float]:
    fraction, _, seconds = text.partition(":")
    return float(fraction), float(seconds)


def main(argv: Sequence[str] | None = None) -> None:
    """Serve until killed, printing the base URL first (bodies are not kept: nothing could read them)."""
    import argparse

    parser = argparse.ArgumentParser(description="Local OpenAI/Anthropic-compatible test server.")
    parser.add_argument("latency", nargs="?", type=float, default=0.01, help="seconds per answer (0.01)")
    parser.add_argument("--tail", type=_tail, default=None, metavar="FRACTION:SECONDS", help="e.g. 0.2:2")
    args = parser.parse_args(argv)
    with MockServer(latency_s=args.latency, tail=args.tail, record_requests=False) as running:
        print(running.url, flush=True)
        running.thread.join()


if __name__ == "__main__":
    main()
