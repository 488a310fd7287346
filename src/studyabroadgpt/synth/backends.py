"""Which writer answers synthesized turns: the one place that knows every backend.

It sits above ``writers`` (the protocol and its errors) and ``llm`` (the OpenAI-compatible writer, which raises
``writers.WriterError``), so neither of those needs to import the other's module back.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .writers import TemplateWriter, Writer, check_backend

if TYPE_CHECKING:
    from ..kb.store import KnowledgeBase


def make_writer(backend: str, kb: "KnowledgeBase", seed: int = 0, **opts: Any) -> Writer:
    """The writer for ``backend``, after :func:`writers.check_backend`."""
    check_backend(backend, opts)
    if backend == "template":
        return TemplateWriter(seed)
    from .llm import OpenAIWriter

    return OpenAIWriter(kb=kb, **opts)
