"""The OpenAI-compatible connection (OpenAI, vLLM, SGLang, ...): options, client, errors, image parts."""

from __future__ import annotations

import asyncio
import os
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field

from mmaip_core import CallOptions, Frames, TokenUsage, TransientError, UserError
from mmaip_plugins.apis.images import frame_positions, jpeg_base64

__all__ = ["ClientCache", "OpenAIConnection", "OpenAIFrames", "endpoint", "image_parts", "translate_error", "usage"]

DEFAULT_BASE_URL = "https://api.openai.com/v1"


class OpenAIConnection(CallOptions):
    """Where requests go. The key is read from the environment variable ``api_key_env``; it is never
    stored in a config, a record or a log."""

    base_url: str | None = Field(
        default=None, description="Endpoint, e.g. http://localhost:8000/v1 for vLLM (default: $OPENAI_BASE_URL)."
    )
    api_key_env: str = Field(default="OPENAI_API_KEY", description="Environment variable holding the API key.")


class OpenAIFrames(OpenAIConnection):
    """How frames are sent: as JPEG image parts."""

    max_frames: int | None = Field(default=None, ge=1, description="Frame budget per request (None: all).")
    detail: Literal["low", "high", "auto"] = Field(default="low", description="OpenAI image detail level.")
    jpeg_quality: int = Field(default=85, ge=10, le=100)


def endpoint(options: OpenAIConnection) -> str:
    """The base URL requests go to, without any credentials it may carry (it is part of fingerprints)."""
    url = urlsplit(options.base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL)
    netloc = (url.hostname or "") + (f":{url.port}" if url.port else "")
    return urlunsplit((url.scheme, netloc, url.path.rstrip("/"), "", ""))


class ClientCache:
    """One ``AsyncOpenAI`` client per event loop (an async client cannot outlive its loop)."""

    def __init__(self, options: OpenAIConnection) -> None:
        self.options = options
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: Any = None

    def get(self) -> Any:
        from openai import AsyncOpenAI

        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            key = os.environ.get(self.options.api_key_env)
            if not key:
                raise UserError(
                    f"the environment variable {self.options.api_key_env} (the API key) is not set; "
                    "for a local server without keys set it to any value"
                )
            self._client = AsyncOpenAI(
                api_key=key,
                base_url=self.options.base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL,
                max_retries=0,  # mmaip retries (mmaip_core.calls), knowing what is already stored
                timeout=self.options.timeout_s,
            )
            self._loop = loop
        return self._client


def translate_error(exc: Exception) -> Exception:
    """SDK errors worth retrying (429, 408/409, 5xx, timeouts, lost connections) become TransientError."""
    import openai

    if isinstance(exc, openai.APITimeoutError | openai.APIConnectionError):
        return TransientError(str(exc), error_class=type(exc).__name__)
    if isinstance(exc, openai.APIStatusError) and (exc.status_code in (408, 409, 429) or exc.status_code >= 500):
        header = exc.response.headers.get("retry-after")
        try:
            retry_after = float(header) if header is not None else None
        except ValueError:
            retry_after = None
        return TransientError(str(exc), error_class=type(exc).__name__, retry_after=retry_after)
    return exc


def image_parts(frames: Frames, options: OpenAIFrames) -> list[dict[str, Any]]:
    """``image_url`` content parts for the frames within the budget, in time order."""
    positions = frame_positions(frames, options.max_frames)
    return [
        {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{data}", "detail": options.detail}}
        for data in jpeg_base64(frames, positions, options.jpeg_quality)
    ]


def usage(completion: Any) -> TokenUsage | None:
    """Token counts of a chat completion, when the server reports them."""
    u = getattr(completion, "usage", None)
    if u is None:
        return None
    return TokenUsage(prompt_tokens=u.prompt_tokens or 0, completion_tokens=u.completion_tokens or 0)
