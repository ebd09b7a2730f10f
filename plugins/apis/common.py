"""Pieces every API connection needs: the key from the environment, one client per event loop,
the server's Retry-After advice, error messages without credentials."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from mmaip_core import ErrorInfo, TransientError, UserError
from mmaip_core.store.redaction import add_secret, redact_text

__all__ = ["ClientCache", "api_key", "batch_error", "retry_after", "split_batches", "transient"]


def api_key(variable: str) -> str:
    """The API key in environment variable ``variable``; a clear error when it is not set. The key is
    redacted from every error message and log line from now on."""
    key = os.environ.get(variable)
    if not key:
        raise UserError(
            f"the environment variable {variable} (the API key) is not set; for a local server without keys "
            "set it to any value"
        )
    add_secret(key)
    return key


def retry_after(response: Any) -> float | None:
    """Seconds from a response's ``retry-after`` header, when it carries a number."""
    header = response.headers.get("retry-after") if response is not None else None
    try:
        return float(header) if header is not None else None
    except ValueError:
        return None


def transient(exc: Exception, no_answer: tuple[type[Exception], ...], status_error: type[Exception]) -> Exception:
    """``exc`` as a TransientError when retrying may help: no answer (timeout, lost connection), or an HTTP
    status of 408, 409, 429 or 5xx (529: overloaded), its message without credentials; any other error is
    returned as it is (:mod:`mmaip_core.calls.runner` redacts the message it stores)."""
    if isinstance(exc, no_answer):
        return TransientError(redact_text(str(exc)), error_class=type(exc).__name__)
    status = getattr(exc, "status_code", 0) if isinstance(exc, status_error) else 0
    if status in (408, 409, 429) or status >= 500:
        response = getattr(exc, "response", None)
        return TransientError(redact_text(str(exc)), error_class=type(exc).__name__, retry_after=retry_after(response))
    return exc


def batch_error(detail: str) -> ErrorInfo:
    """The error of a batch row that failed: the provider's ``detail`` without credentials, shortened."""
    return ErrorInfo(error_class="BatchError", message=redact_text(detail)[:500])


class ClientCache:
    """One async SDK client per event loop: an async client cannot outlive the loop it was made in, and
    each :func:`mmaip_core.run_calls` runs its own loop."""

    def __init__(self, factory: Callable[[], Any]) -> None:
        self.factory = factory
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: Any = None

    def get(self) -> Any:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            self._client, self._loop = self.factory(), loop
        return self._client

    async def aclose(self) -> None:
        """Close the client of the running loop (its connections cannot outlive the loop)."""
        if self._client is not None and self._loop is asyncio.get_running_loop():
            await self._client.close()
        self._client = self._loop = None


ItemT = TypeVar("ItemT")


def split_batches(
    items: Sequence[tuple[ItemT, bytes]], max_count: int, max_bytes: int
) -> Iterator[list[tuple[ItemT, bytes]]]:
    """Consecutive chunks of (item, encoded request) within a provider's count and size limits."""
    chunk: list[tuple[ItemT, bytes]] = []
    size = 0
    for item, data in items:
        if chunk and (len(chunk) >= max_count or size + len(data) > max_bytes):
            yield chunk
            chunk, size = [], 0
        chunk.append((item, data))
        size += len(data)
    if chunk:
        yield chunk
