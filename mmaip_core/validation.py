"""Turn pydantic validation errors into ``location: message`` lines a user can act on."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ValidationError

from mmaip_core.errors import did_you_mean

__all__ = ["render_validation_error"]


def _loc(parts: Sequence[int | str], prefix: str) -> str:
    text = ".".join(str(p) for p in parts)
    return ".".join(p for p in (prefix, text) if p) or "(top level)"


def render_validation_error(exc: ValidationError, model: type[BaseModel] | None = None, prefix: str = "") -> list[str]:
    """One line per error. Unknown keys name the closest key ``model`` allows and list them all."""
    keys = sorted(model.model_fields) if model is not None else []
    allowed = ", ".join(keys)
    lines = []
    for err in exc.errors():
        loc = _loc(err["loc"], prefix)
        if err["type"] == "extra_forbidden":
            key = err["loc"][-1] if err["loc"] else "?"
            top = bool(keys) and len(err["loc"]) == 1
            hint = f"; allowed keys: {allowed}.{did_you_mean(str(key), keys)}" if top else ""
            lines.append(f"{loc}: unknown key '{key}'{hint}")
        elif err["type"] == "missing":
            lines.append(f"{loc}: required key is missing")
        else:
            lines.append(f"{loc}: {err['msg']} (got {err.get('input')!r})")
    return lines
