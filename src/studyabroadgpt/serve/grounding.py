"""Retrieval grounding: find the knowledge-base facts for a conversation and put them in front of the model.

The facts are numbered in the system prompt exactly as they will be numbered in the answer's citations and
sources list, so a model that does cite ("[2]") cites the right thing, and one that does not can still be
checked against them by the gate.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

SYSTEM_PROMPT = (
    "You are StudyAbroadGPT, a careful study-abroad advisor. Answer the student's question using the numbered "
    "official facts below. Quote figures exactly as the facts give them and cite the fact after each claim, "
    "like [1]. If the facts do not answer the question, say so and point the student to the official source. "
    "Never invent scholarships, visa rules, test scores or amounts."
)


class SearchHit(Protocol):
    fact: Any
    score: float


class Searcher(Protocol):
    def search(self, query: str, k: int = 5, destination: str | None = None) -> list[SearchHit]: ...


@dataclass
class Source:
    """A retrieved fact with the number it is cited by."""

    n: int
    fact: Any
    score: float = 0.0
    relevance: float | None = None    # the retriever's calibrated relevance in [0, 1], when it gives one
    threshold: float | None = None    # the retriever's calibrated threshold for "relevant"

    def to_dict(self, cited: bool) -> dict[str, Any]:
        f = self.fact
        return {"index": self.n, "id": f.id, "title": f.source_title, "url": str(f.source_url),
                "as_of": f.as_of.isoformat(), "review_after": f.review_after.isoformat(),
                "destination": f.destination, "country": f.country, "topic": f.topic,
                "statement": f.statement, "policy_sensitive": f.policy_sensitive,
                "score": round(float(self.score), 6),
                "relevance": None if self.relevance is None else round(float(self.relevance), 4),
                "kind": getattr(f, "kind", "fact"), "cited": cited}

    def markdown(self) -> str:
        f = self.fact
        return f"[{self.n}] [{f.source_title}]({f.source_url}) — {f.country}, as of {f.as_of.isoformat()}"


def retrieval_query(messages: list[dict[str, str]]) -> str:
    """The last user message, plus the one before it: follow-ups ("and for Canada?") lean on it.

    When the follow-up names a destination, the earlier turn's other destinations are left out: with "How
    many hours can I work on a UK student visa?" kept whole, "And for Canada?" scored every Canadian work
    fact under the relevance threshold (off-campus work 0.03; 0.43 without "UK") and got no fact at all."""
    from ..kb.geo import destination_spans, detect_destinations

    users = [m["content"] for m in messages if m["role"] == "user" and m["content"].strip()]
    if len(users) < 2:
        return "\n".join(users)
    prev, last = users[-2], users[-1]
    asked = set(detect_destinations(last, exclude_origins=True))
    if asked:
        for a, b, code in sorted(destination_spans(prev), reverse=True):
            if code not in asked:
                prev = prev[:a] + prev[b:]
        prev = " ".join(prev.split())
    return f"{prev}\n{last}"


def retrieve(searcher: Searcher, messages: list[dict[str, str]], k: int) -> list[Source]:
    """The relevant facts for the conversation, numbered for citation.

    With a calibrated retriever (``relevant``), only hits at or above its threshold: retrieval always returns
    *something*, and an unrelated fact in front of a small model ends up in its answer, cited.
    """
    query = retrieval_query(messages)
    relevant = getattr(searcher, "relevant", None)
    hits = relevant(query, k=k) if callable(relevant) else searcher.search(query, k=k)
    threshold = getattr(searcher, "threshold", None)
    return [Source(i + 1, h.fact, h.score, getattr(h, "relevance", None), threshold) for i, h in enumerate(hits)]


def facts_block(sources: list[Source]) -> str:
    """One line per fact: ``[n] (Country, topic, as of YYYY-MM-DD) statement``.

    The source's title is not repeated here (the answer's sources list and the gate's caveat carry it,
    ``Source.markdown``): every prompt token no slot has cached is prefill the engine pays per request, and
    the title was ~15 of a fact line's ~90 tokens (SmolLM2's tokenizer, real-style set) — prefill is what bounds
    llama.cpp at 16 clients (docs/serving.md). The country, topic and date stay: without them the default model
    copied fewer of the facts' specifics and wrote more unsourced answers that the gate let through (the lead's
    32 questions, llama.cpp engine, auto: 10 answers served as generated instead of 5, Berlin rents and Swedish
    fees invented). Without the title alone: 20 of the 32 answers identical, 4 served as generated (5 before),
    4 marks "(unverified)" (6 before)."""
    return "\n".join(f"[{s.n}] ({s.fact.country}, {s.fact.topic.replace('_', ' ')}, as of "
                     f"{s.fact.as_of.isoformat()}) {s.fact.statement}" for s in sources)


OUT_OF_SCOPE_PROMPT = (
    "You are StudyAbroadGPT, a careful study-abroad advisor. The knowledge base has no official information "
    "about {names}. Say so plainly in your first sentence, then give only general, practical advice. Do not "
    "state any figure, deadline, score, fee, website address, or the name of any organisation, programme or "
    "scholarship. Tell the student to check the official source: the university's admissions page, or the "
    "country's embassy or immigration website."
)


def grounded_messages(messages: list[dict[str, str]], sources: list[Source],
                      out_of_scope: list[str] | None = None) -> list[dict[str, str]]:
    """The conversation with our grounding system prompt first; a client's own system prompt follows it.

    ``out_of_scope`` (names of uncovered destinations / institutions): no facts, and an instruction to say
    plainly that we have no official information on them."""
    if out_of_scope:
        system = OUT_OF_SCOPE_PROMPT.format(names=", ".join(out_of_scope))
    elif not sources:
        system = (f"{SYSTEM_PROMPT}\n\nNo official fact in the knowledge base matches this question: give "
                  "general advice only, with no figures, addresses or names of organisations or schemes.")
    else:
        system = f"{SYSTEM_PROMPT}\n\nOfficial facts:\n{facts_block(sources)}"
    own = [m["content"] for m in messages if m["role"] == "system"]
    if own:
        system += "\n\n" + "\n\n".join(own)
    return [{"role": "system", "content": system}] + [m for m in messages if m["role"] != "system"]
