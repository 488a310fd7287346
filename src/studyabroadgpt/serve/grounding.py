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

    def to_dict(self, cited: bool) -> dict[str, Any]:
        f = self.fact
        return {"index": self.n, "id": f.id, "title": f.source_title, "url": str(f.source_url),
                "as_of": f.as_of.isoformat(), "review_after": f.review_after.isoformat(),
                "destination": f.destination, "country": f.country, "topic": f.topic,
                "statement": f.statement, "policy_sensitive": f.policy_sensitive,
                "score": round(float(self.score), 6), "cited": cited}

    def markdown(self) -> str:
        f = self.fact
        return f"[{self.n}] [{f.source_title}]({f.source_url}) — {f.country}, as of {f.as_of.isoformat()}"


def retrieval_query(messages: list[dict[str, str]]) -> str:
    """The last user message, plus the one before it: follow-ups ("and for Canada?") lean on it."""
    users = [m["content"] for m in messages if m["role"] == "user" and m["content"].strip()]
    return "\n".join(users[-2:])


def retrieve(searcher: Searcher, messages: list[dict[str, str]], k: int) -> list[Source]:
    hits = searcher.search(retrieval_query(messages), k=k)
    return [Source(i + 1, h.fact, h.score) for i, h in enumerate(hits)]


def facts_block(sources: list[Source]) -> str:
    lines = []
    for s in sources:
        f = s.fact
        lines.append(f"[{s.n}] ({f.country}, {f.topic.replace('_', ' ')}, as of {f.as_of.isoformat()}) "
                     f"{f.statement} Source: {f.source_title}.")
    return "\n".join(lines)


def grounded_messages(messages: list[dict[str, str]], sources: list[Source]) -> list[dict[str, str]]:
    """The conversation with our grounding system prompt first; a client's own system prompt follows it."""
    system = f"{SYSTEM_PROMPT}\n\nOfficial facts:\n{facts_block(sources)}"
    own = [m["content"] for m in messages if m["role"] == "system"]
    if own:
        system += "\n\n" + "\n\n".join(own)
    return [{"role": "system", "content": system}] + [m for m in messages if m["role"] != "system"]
