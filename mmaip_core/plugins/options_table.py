"""A plugin's options as rows a person reads: name, type, default and description, nested option models
flattened into dotted names (``params.temperature``). ``mmaip plugins NAME`` prints them and
``docs/plugin-options.md`` is generated from them, so the help, the docs and the validation share one source:
the plugin's options model."""

from __future__ import annotations

import json
import re
from typing import Any, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo

__all__ = ["OptionRow", "option_rows"]


class OptionRow(BaseModel):
    """One option of a plugin."""

    name: str
    type: str
    required: bool
    default: str = ""
    description: str = ""


def _type(annotation: Any) -> str:
    """``int | None``, ``list[str]``, ``Literal['a', 'b']`` without module prefixes or Annotated markers."""
    if get_origin(annotation) is not None and hasattr(annotation, "__metadata__"):  # Annotated[T, ...]
        annotation = get_args(annotation)[0]
    text = (
        annotation.__name__ if get_origin(annotation) is None and hasattr(annotation, "__name__") else str(annotation)
    )
    text = re.sub(r"\b(?:[A-Za-z_]\w*\.)+([A-Za-z_]\w*)", r"\1", text.replace("typing.", ""))
    return text.replace("NoneType", "None")


_NONE = object()


def _default(field: FieldInfo) -> Any:
    """The field's default as JSON-able data; ``_NONE`` for a required field."""
    if field.is_required():
        return _NONE
    value = field.default_factory() if field.default_factory is not None else field.default  # type: ignore[call-arg]
    return value.model_dump(mode="json") if isinstance(value, BaseModel) else value


def _nested(annotation: Any) -> type[BaseModel] | None:
    """The options model of a field that holds one (``params: GenerationParams``), else None."""
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def option_rows(model: type[BaseModel], prefix: str = "", defaults: dict[str, Any] | None = None) -> list[OptionRow]:
    """Every option of ``model`` in declaration order; a field holding another options model is followed by its
    own options, named ``field.option``, with the defaults the field's own default gives them. ``defaults``
    overrides the model's defaults (those of the enclosing field)."""
    rows: list[OptionRow] = []
    for name, field in model.model_fields.items():
        default = (defaults or {}).get(name, _default(field))
        nested = _nested(field.annotation)
        shown = "" if default is _NONE or nested is not None else json.dumps(default, default=str)
        rows.append(
            OptionRow(
                name=prefix + name,
                type=_type(field.annotation),
                required=default is _NONE,
                default=shown,
                description=" ".join((field.description or "").split()),
            )
        )
        if nested is not None:
            rows.extend(option_rows(nested, f"{prefix}{name}.", default if isinstance(default, dict) else None))
    return rows
