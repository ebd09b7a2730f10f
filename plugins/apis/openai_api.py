"""The OpenAI-compatible connection (OpenAI, vLLM, SGLang, ...): options, client, errors, image parts."""

from __future__ import annotations

import os
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field

from mmaip_core import CallOptions, Frames, TokenUsage
from mmaip_plugins.apis.common import api_key, transient
from mmaip_plugins.apis.images import frame_positions, jpeg_base64, openai_image_tokens

__all__ = [
    "OpenAIConnection",
    "OpenAIFrames",
    "endpoint",
    "fingerprinted_endpoint",
    "image_parts",
    "image_tokens",
    "openai_client",
    "translate_error",
    "usage",
]

DEFAULT_BASE_URL = "https://api.openai.com/v1"


class OpenAIConnection(CallOptions):
    """Where requests go. The key is read from the environment variable ``api_key_env``; it is never
    stored in a config, a record or a log."""

    base_url: str | None = Field(
        default=None, description="Endpoint, e.g. http://localhost:8000/v1 for vLLM (default: $OPENAI_BASE_URL)."
    )
    api_key_env: str = Field(default="OPENAI_API_KEY", description="Environment variable holding the API key.")
    fingerprint_endpoint: bool = Field(
        default=False,
        description="Make the endpoint address part of the fingerprint, for servers at different addresses that "
        "serve different weights under one model name (default: the same model behind a new address reuses "
        "every stored call).",
    )


class OpenAIFrames(OpenAIConnection):
    """How frames are sent: as JPEG image parts."""

    max_frames: int | None = Field(default=None, ge=1, description="Frame budget per request (None: all).")
    detail: Literal["low", "high", "auto"] = Field(default="low", description="OpenAI image detail level.")
    jpeg_quality: int = Field(default=85, ge=10, le=100)


def endpoint(options: OpenAIConnection) -> str:
    """The base URL requests go to, without any credentials it may carry."""
    url = urlsplit(options.base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL)
    netloc = (url.hostname or "") + (f":{url.port}" if url.port else "")
    return urlunsplit((url.scheme, netloc, url.path.rstrip("/"), "", ""))


def fingerprinted_endpoint(options: OpenAIConnection) -> str | None:
    """The endpoint as a fingerprint holds it: only when ``fingerprint_endpoint`` asks for it."""
    return endpoint(options) if options.fingerprint_endpoint else None


def openai_client(options: OpenAIConnection, *, sync: bool = False) -> Any:
    """An ``AsyncOpenAI`` (or, with ``sync``, ``OpenAI``) client; the key comes from ``options.api_key_env``."""
    from openai import AsyncOpenAI, OpenAI

    return (OpenAI if sync else AsyncOpenAI)(
        api_key=api_key(options.api_key_env),
        base_url=options.base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL,
        max_retries=0,  # mmaip retries (mmaip_core.calls.runner), knowing what is already stored
        timeout=options.timeout_s,
    )


def translate_error(exc: Exception) -> Exception:
    """SDK errors worth retrying become TransientError (see :func:`~mmaip_plugins.apis.common.transient`)."""
    import openai

    return transient(exc, (openai.APITimeoutError, openai.APIConnectionError), openai.APIStatusError)


def image_parts(frames: Frames, options: OpenAIFrames) -> list[dict[str, Any]]:
    """``image_url`` content parts for the frames within the budget, in time order."""
    positions = frame_positions(frames, options.max_frames)
    return [
        {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{data}", "detail": options.detail}}
        for data in jpeg_base64(frames, positions, options.jpeg_quality)
    ]


def image_tokens(frames: Frames, options: OpenAIFrames) -> int:
    """Tokens the frames within the budget will be billed as."""
    width, height = frames.manifest.output_size
    return len(frame_positions(frames, options.max_frames)) * openai_image_tokens(width, height, options.detail)


def usage(completion: Any) -> TokenUsage | None:
    """Token counts of a chat completion, when the server reports them."""
    u = getattr(completion, "usage", None)
    if u is None:
        return None
    return TokenUsage(prompt_tokens=u.prompt_tokens or 0, completion_tokens=u.completion_tokens or 0)
