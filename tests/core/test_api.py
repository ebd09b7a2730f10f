"""Meta-tests: the public API is complete and every hook is documented."""

from __future__ import annotations

import inspect

from helpers import ROOT

import mmaip_core
from mmaip_core.plugins import hookspecs
from mmaip_core.plugins.kinds import PLUGIN_KINDS
from mmaip_core.records import RECORDS

DOCS = ROOT / "docs"


def _isort_style(name: str) -> tuple[int, str]:
    """Constants, then classes, then functions and the rest (ruff's RUF022 order)."""
    return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)


def test_root_all_is_sorted_and_resolves() -> None:
    assert mmaip_core.__all__ == sorted(mmaip_core.__all__, key=_isort_style)
    for name in mmaip_core.__all__:
        assert hasattr(mmaip_core, name), name


def test_every_record_and_spec_is_exported() -> None:
    exported = set(mmaip_core.__all__)
    assert set(RECORDS) <= exported
    assert {spec.__name__ for spec in PLUGIN_KINDS.values()} <= exported


def _hooks() -> list[str]:
    return [name for name in hookspecs.__all__ if name.startswith("mmaip_")]


def test_every_hook_is_typed_and_documented() -> None:
    for name in _hooks():
        function = getattr(hookspecs, name)
        doc = inspect.getdoc(function) or ""
        assert "Example::" in doc and ("return" in doc or ":param" in doc), name
        assert "return" in inspect.get_annotations(function), name


def test_every_hook_and_record_is_in_the_docs() -> None:
    plugins_doc = (DOCS / "plugins.md").read_text()
    records_doc = (DOCS / "records.md").read_text()
    for name in _hooks():
        assert f"`{name}(" in plugins_doc, name
    for name in RECORDS:
        assert f"`{name}`" in records_doc, name


def test_records_doc_is_generated_from_the_code() -> None:
    import runpy

    render = runpy.run_path(str(DOCS / "records_doc.py"))["render"]
    assert (DOCS / "records.md").read_text() == render(), "run: python docs/records_doc.py > docs/records.md"
