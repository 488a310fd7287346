"""The one normalised conversation schema every stage of the pipeline speaks.

Readers map ShareGPT / OpenAI messages / Alpaca records onto it; writers map it back. Roles are normalised to
``system | user | assistant``; everything else a record carries (id, topic, source, provenance…) is kept.
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

Role = Literal["system", "user", "assistant"]

# Aliases seen in the wild (ShareGPT uses human/gpt; some exports use bot/model/chatgpt).
ROLE_ALIASES: dict[str, Role] = {
    "system": "system",
    "user": "user",
    "human": "user",
    "assistant": "assistant",
    "gpt": "assistant",
    "bot": "assistant",
    "model": "assistant",
    "chatgpt": "assistant",
}

SHAREGPT_ROLE: dict[str, str] = {"system": "system", "user": "human", "assistant": "gpt"}


class Turn(BaseModel):
    role: Role
    text: str
    # Fact ids from the knowledge base this (assistant) turn is grounded in; empty for user turns.
    provenance: list[str] = Field(default_factory=list)


class Conversation(BaseModel):
    id: str
    turns: list[Turn]
    topic: str | None = None
    source: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)

    def messages(self) -> list[dict[str, str]]:
        """OpenAI-style messages, the shape chat templates take."""
        return [{"role": t.role, "content": t.text} for t in self.turns]

    def first_user_text(self) -> str:
        return next((t.text for t in self.turns if t.role == "user"), "")

    def to_sharegpt(self) -> dict[str, Any]:
        row: dict[str, Any] = {
            "id": self.id,
            "conversations": [_turn_out(t, "from", "value", SHAREGPT_ROLE[t.role]) for t in self.turns],
        }
        return _with_meta(row, self)

    def to_messages(self) -> dict[str, Any]:
        row: dict[str, Any] = {
            "id": self.id,
            "messages": [_turn_out(t, "role", "content", t.role) for t in self.turns],
        }
        return _with_meta(row, self)


def _turn_out(t: Turn, role_key: str, text_key: str, role: str) -> dict[str, Any]:
    out: dict[str, Any] = {role_key: role, text_key: t.text}
    if t.provenance:
        out["provenance"] = list(t.provenance)
    return out


def _with_meta(row: dict[str, Any], conv: Conversation) -> dict[str, Any]:
    if conv.topic is not None:
        row["topic"] = conv.topic
    if conv.source is not None:
        row["source"] = conv.source
    if conv.metadata:
        row["metadata"] = conv.metadata
    return row
