"""Credentials out of free text: every URL's user:password and secret query parameters, known key values."""

from __future__ import annotations

import pytest

from mmaip_core.store import redaction
from mmaip_core.store.redaction import add_secret, redact, redact_text


@pytest.fixture(autouse=True)
def _no_known_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keys registered by other tests (API plugins register theirs) do not mask text here."""
    monkeypatch.setattr(redaction, "_secrets", set())


def test_user_and_password_are_removed() -> None:
    assert redact_text("http://user:hunter2@127.0.0.1:8000/v1") == "http://***@127.0.0.1:8000/v1"
    assert redact_text("https://ghp_token@github.com/o/r.git") == "https://***@github.com/o/r.git"
    assert redact_text("http://u:p@ss@host/x?a=b@c") == "http://***@host/x?a=b@c"


@pytest.mark.parametrize(
    "name",
    [
        "api-key",
        "api_key",
        "key",
        "apikey",
        "API-KEY",
        "token",
        "access_token",
        "secret",
        "client_secret",
        "password",
        "passwd",
        "pwd",
        "sig",
        "signature",
        "X-Amz-Signature",
        "X-Amz-Credential",
        "X-Amz-Security-Token",
        "auth",
    ],
)
def test_every_spelling_of_a_secret_query_parameter_is_masked(name: str) -> None:
    url = f"https://host/v1/chat?api-version=2024-06-01&{name}=S3CR3T&model=x"
    assert redact_text(url) == f"https://host/v1/chat?api-version=2024-06-01&{name}=***&model=x"
    assert redact_text(f"http://host/v1?{name}=S3CR3T") == f"http://host/v1?{name}=***"


def test_urls_inside_longer_text_are_found_and_the_rest_kept() -> None:
    text = (
        "Error code: 404 - {'error': {'message': 'no model behind http://user:pw@127.0.0.1:9/v1/?api-key=K1chat/c', "
        "'type': 'not_found_error'}} (see https://docs.example.org/errors?token=K2). Retry at wss://h/s#access_token=K3"
    )
    assert redact_text(text) == (
        "Error code: 404 - {'error': {'message': 'no model behind http://***@127.0.0.1:9/v1/?api-key=***', "
        "'type': 'not_found_error'}} (see https://docs.example.org/errors?token=***). Retry at wss://h/s#access_token=***"
    )
    line = 'INFO httpx: HTTP Request: POST http://a:b@h:1/v1?key=K "HTTP/1.1 200 OK"'
    assert redact_text(line) == 'INFO httpx: HTTP Request: POST http://***@h:1/v1?key=*** "HTTP/1.1 200 OK"'


@pytest.mark.parametrize(
    "text",
    [
        "",
        "no URL here, just key=value and user:pass@host without a scheme",
        "https://api.openai.com/v1",
        "http://127.0.0.1:8000/v1/chat/completions?api-version=2024&model=gpt-4o&stream=true#top",
        "http://host/search?q=a%20b+c&page=2&key=",  # an empty value hides nothing
        "mailto:someone@example.org, file:///tmp/a.mp4 and s3://bucket/key.mp4",
        "email me at a@b.org: 'http://h/p', \"https://h/q\"",
    ],
)
def test_text_without_credentials_is_unchanged(text: str) -> None:
    assert redact_text(text) == text


def test_known_secret_values_are_masked_anywhere() -> None:
    add_secret("sk-live-0123456789abcdef")
    add_secret("EMPTY")  # too short to tell from ordinary words: not masked
    text = "Incorrect API key provided: sk-live-0123456789abcdef. EMPTY responses are fine."
    assert redact_text(text) == "Incorrect API key provided: ***. EMPTY responses are fine."


def test_redact_walks_json_data() -> None:
    config = {
        "zoo": [{"base_url": "http://u:p@h/v1?api_key=k", "n": 2, "models": ["http://h/v1?sig=x", None]}],
        "note": "from http://h?token=t",
    }
    assert redact(config) == {
        "zoo": [{"base_url": "http://***@h/v1?api_key=***", "n": 2, "models": ["http://h/v1?sig=***", None]}],
        "note": "from http://h?token=***",
    }


def test_long_bodies_take_linear_time() -> None:
    import base64
    import random
    import time

    blob = base64.b64encode(random.Random(0).randbytes(1_500_000)).decode()  # 2 MB, e.g. a request echoed back
    start = time.perf_counter()
    redacted = redact_text(f"at http://u:p@h/v1?key=k: {blob} (http://h?token=t)")
    assert redacted == f"at http://***@h/v1?key=***: {blob} (http://h?token=***)"
    assert time.perf_counter() - start < 5  # a search that restarts at every letter takes hours here
