"""The Anthropic connection (Claude): options, client, errors, image blocks."""

from __future__ import annotations

import os
from typing import Any

from pydantic import Field

from mmaip_core import CallOptions, Frames, TokenUsage
from mmaip_plugins.apis.common import api_key, transient
from mmaip_plugins.apis.images import anthropic_image_tokens, frame_positions, jpeg_base64

__all__ = [
    "AnthropicFrames",
    "anthropic_client",
    "endpoint",
    "fingerprinted_endpoint",
    "image_blocks",
    "image_tokens",
    "reply_text",
    "translate_error",
    "usage",
]

DEFAULT_BASE_URL = "https://api.anthropic.com"


class AnthropicFrames(CallOptions):
    """Where requests go and how frames are sent. The key is read from ``api_key_env``, never stored."""

    base_url: str | None = Field(default=None, description="Endpoint without /v1 (default: $ANTHROPIC_BASE_URL).")
    api_key_env: str = Field(default="ANTHROPIC_API_KEY", description="Environment variable holding the API key.")
    fingerprint_endpoint: bool = Field(
        default=False,
        description="Make the endpoint address part of the fingerprint, for servers at different addresses that "
        "serve different weights under one model name (default: the same model behind a new address reuses "
        "every stored call).",
    )
    max_frames: int | None = Field(default=None, ge=1, description="Frame budget per request (None: all).")
    jpeg_quality: int = Field(default=85, ge=10, le=100)


def endpoint(options: AnthropicFrames) -> str:
    """The base URL requests go to."""
    return (options.base_url or os.environ.get("ANTHROPIC_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")


def fingerprinted_endpoint(options: AnthropicFrames) -> str | None:
    """The endpoint as a fingerprint holds it: only when ``fingerprint_endpoint`` asks for it."""
    return endpoint(options) if options.fingerprint_endpoint else None


def anthropic_client(options: AnthropicFrames, *, sync: bool = False) -> Any:
    """An ``AsyncAnthropic`` (or, with ``sync``, ``Anthropic``) client; mmaip does the retrying."""
    from anthropic import Anthropic, AsyncAnthropic

    return (Anthropic if sync else AsyncAnthropic)(
        api_key=api_key(options.api_key_env), base_url=endpoint(options), max_retries=0, timeout=options.timeout_s
    )


def translate_error(exc: Exception) -> Exception:
    """SDK errors worth retrying become TransientError (see :func:`~mmaip_plugins.apis.common.transient`)."""
    import anthropic

    return transient(exc, (anthropic.APITimeoutError, anthropic.APIConnectionError), anthropic.APIStatusError)


def image_blocks(frames: Frames, options: AnthropicFrames) -> list[dict[str, Any]]:
    """Base64 JPEG ``image`` content blocks for the frames within the budget, in time order."""
    positions = frame_positions(frames, options.max_frames)
    return [
        {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": data}}
        for data in jpeg_base64(frames, positions, options.jpeg_quality)
    ]


def image_tokens(frames: Frames, options: AnthropicFrames) -> int:
    """Tokens the frames within the budget will be billed as."""
    width, height = frames.manifest.output_size
    return len(frame_positions(frames, options.max_frames)) * anthropic_image_tokens(width, height)


def reply_text(message: Any) -> str:
    """The text of a Messages API reply."""
    return "".join(block.text for block in message.content if getattr(block, "type", "") == "text")


def usage(message: Any) -> TokenUsage | None:
    u = getattr(message, "usage", None)
    if u is None:
        return None
    return TokenUsage(prompt_tokens=u.input_tokens or 0, completion_tokens=u.output_tokens or 0)
