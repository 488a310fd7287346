"""Writers: who writes an advising answer from knowledge-base facts, and the one place a backend is chosen.

A writer is called once per assistant turn with the plan, the turn index, the student's question, the facts
planned for that turn and the conversation so far, and always returns ``(text, facts)``: the answer and the
facts it was written from (the audit checks the answer against exactly those; a writer that retrieves more,
like the ``openai`` one, returns them too). A writer that cannot answer raises :class:`WriterError` and the
conversation is quarantined with that reason.

``TemplateWriter.compose`` answers ONE question from a list of facts or guidance entries outside any plan:
the answer path's ``compose`` mode uses it to write a cited answer without a model.
"""
from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any, Protocol, Sequence

from ..config import ConfigError

if TYPE_CHECKING:
    from ..kb.schema import Fact
    from .plan import Plan

BACKENDS = ("template", "openai")


class WriterError(Exception):
    """A writer that could not produce an answer (endpoint down, empty reply): the conversation is quarantined."""


class BackendError(ConfigError, ValueError):
    """An unknown synth backend or missing backend options (a configuration error, exit code of ConfigError)."""


class Writer(Protocol):
    """``writer(plan, t, question, facts, history) -> (text, facts used)``; ``source`` names it in the data."""

    source: str

    def __call__(self, plan: "Plan", t: int, question: str, facts: list["Fact"],
                 history: list[tuple[str, str]]) -> tuple[str, list["Fact"]]: ...


class TemplateWriter:
    """The offline writer (:mod:`.template`): deterministic for a seed, every specific copied from a fact.

    ``cite`` maps fact ids to the numbers they carry in a grounded system prompt (retrieval-augmented
    fine-tuning): the answer then cites those numbers, carries no URLs and no Sources list, because at serving
    time the numbered facts are in the prompt and the server appends the sources itself.
    """

    source = "synth-template"

    def __init__(self, seed: int = 0):
        self.seed = seed

    def __call__(self, plan: "Plan", t: int, question: str, facts: list["Fact"],
                 history: list[tuple[str, str]], cite: dict[str, int] | None = None) -> tuple[str, list["Fact"]]:
        from . import template

        rng = random.Random(f"{self.seed}-{plan.index}-{t}-a")
        previous = (plan.topics[t - 1], plan.facts[t - 1], history[-1][1]) if t and history else None
        text = template.answer(rng, plan.topics[t], facts, plan.persona, plan.destination, previous=previous,
                               question=question, cite=cite)
        return text, list(facts)

    def compose(self, question: str, facts: Sequence[Any], numbers: Sequence[int] | None = None,
                sources: bool = True) -> tuple[str, list[Any]]:
        """A cited markdown answer to ``question`` from ``facts`` (facts and/or guidance entries).

        ``numbers`` are the citation numbers of the facts (default 1, 2, …, e.g. the server's source numbers);
        ``sources=False`` leaves out the Sources list for callers that append their own. Every specific comes
        from a fact's statement (or a guidance entry's steps and cautions); nothing is added from memory.
        """
        from . import template

        if not facts:
            raise WriterError("no facts to compose an answer from")
        rng = random.Random(f"{self.seed}-compose-{question}")
        return template.compose(rng, question, list(facts), numbers=numbers, sources=sources), list(facts)


def check_backend(backend: str, opts: dict[str, Any] | None = None) -> None:
    """The one check of a synth backend and its options (the CLI and ``synthesize`` both go through it)."""
    opts = opts or {}
    if backend not in BACKENDS:
        raise BackendError(f"unknown synth backend {backend!r}; use one of {', '.join(BACKENDS)}")
    if backend == "openai" and not (opts.get("base_url") and opts.get("model")):
        raise BackendError("the openai backend needs --base-url and --model (the endpoint and the model it serves)")
