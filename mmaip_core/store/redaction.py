"""Credentials out of everything mmaip prints or stores.

:func:`redact_text` finds every URL in a piece of text (an error body, a log line) and removes what would let
someone else use the account: the ``user:password@`` part and the values of query parameters that name a
key, token, secret, password or signature (``?api-key=``, ``?key=``, ``&access_token=``, ``&sig=`` ...).
The values of API keys the plugins read (:func:`add_secret`) are removed wherever they occur. Everything
else in the text is left exactly as it was. :func:`redact` does the same for every string in JSON-like data.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["MASK", "MIN_SECRET_LENGTH", "add_secret", "redact", "redact_text"]

MASK = "***"

#: shorter values are too likely to occur in ordinary text (local servers take any key, e.g. "EMPTY")
MIN_SECRET_LENGTH = 8

# a scheme is short and starts after a non-letter: the search stays linear, and quick, on base64 data
_URL = re.compile(r"(?<![a-z])[a-z][a-z0-9+.-]{0,31}://[^\s\"'<>\\`]*[^\s\"'<>\\`.,;:!?)\]}]", re.IGNORECASE)
_USERINFO = re.compile(r"^([a-z][a-z0-9+.-]*://)[^/?#]*@", re.IGNORECASE)
_PARAM = re.compile(r"([?&;#])([^=&;#]+)=([^&;#]*)")
_SECRET_PARAM = re.compile(
    r"(?:.*(?:key|token|secret|password|passwd|signature|credential)s?|sig|pwd|auth|authorization)", re.IGNORECASE
)

_secrets: set[str] = set()


def add_secret(value: str) -> None:
    """Remove ``value`` (an API key, say) from all text redacted from now on in this process."""
    if len(value) >= MIN_SECRET_LENGTH:
        _secrets.add(value)


def _redact_param(match: re.Match[str]) -> str:
    separator, name, value = match.groups()
    return f"{separator}{name}={MASK}" if value and _SECRET_PARAM.fullmatch(name) else match.group(0)


def _redact_url(match: re.Match[str]) -> str:
    url = _USERINFO.sub(rf"\g<1>{MASK}@", match.group(0), count=1)
    return _PARAM.sub(_redact_param, url)


def redact_text(text: str) -> str:
    """``text`` with credentials removed from every URL in it, and every known secret value masked."""
    if "://" in text:
        text = _URL.sub(_redact_url, text)
    for secret in tuple(_secrets):
        text = text.replace(secret, MASK)
    return text


def redact(value: Any) -> Any:
    """``value`` (JSON-like: dicts, lists, strings, numbers) with :func:`redact_text` applied to every string."""
    if isinstance(value, dict):
        return {k: redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    return value
