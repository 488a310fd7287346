"""Approved and corrected answers → a curated phase-2 training set (ShareGPT JSONL with provenance).

The published recipe's second phase trained on "manually curated" conversations; here they are the answers an
adviser approved or corrected. Each conversation carries the grounding system prompt the server built for it
(the same numbered facts, taken from the current KB by id), so a grounded fine-tune learns to answer from the
facts in front of it, and metadata saying who reviewed it, when, and against which KB version.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..data.io import write_conversations
from ..data.schema import Conversation, Turn
from .store import LogStore


def _system_prompt(sources: list[dict[str, Any]], kb: Any | None) -> str | None:
    if kb is None or not sources:
        return None
    from ..serve.grounding import Source, grounded_messages

    by_id = kb.by_id if hasattr(kb, "by_id") else {f.id: f for f in kb.facts}
    rebuilt = [Source(int(s["index"]), by_id[s["id"]], float(s.get("score") or 0.0)) for s in sources
               if s.get("id") in by_id and s.get("index") is not None]
    if len(rebuilt) != len(sources):
        return None  # a fact was removed from the KB since: the numbered citations would no longer line up
    return grounded_messages([], rebuilt)[0]["content"]


def phase2_conversations(store: LogStore, kb: Any | None = None, grounded: bool = True) -> list[Conversation]:
    convs: list[Conversation] = []
    for turn, decision in store.reviewed():
        answer = decision.corrected_answer if decision.action == "edit" else turn.answer
        turns: list[Turn] = []
        system = _system_prompt(turn.sources or [], kb) if grounded else None
        if system:
            turns.append(Turn(role="system", text=system))
        for m in turn.history or []:
            turns.append(Turn(role=m["role"], text=m["content"]))
        turns.append(Turn(role="user", text=turn.question))
        cited = [s["id"] for s in turn.sources or [] if s.get("cited")]
        turns.append(Turn(role="assistant", text=answer, provenance=cited))
        convs.append(Conversation(
            id=f"review-{turn.id}", turns=turns, topic=(turn.topics or [None])[0], source="adviser-review",
            metadata={"reviewer": decision.reviewer, "reviewed_at": decision.created_at.date().isoformat(),
                      "review_action": "corrected" if decision.action == "edit" else "approved",
                      "kb_version": decision.kb_version or turn.kb_version, "model_id": turn.model_id,
                      "adapter_id": turn.adapter_id, "turn_id": turn.id, "answer_mode": turn.answer_mode,
                      "asked_at": turn.created_at.date().isoformat()}))
    return convs


def export_phase2(store: LogStore, out: str | Path, kb: Any | None = None, grounded: bool = True) -> tuple[Path, int]:
    convs = phase2_conversations(store, kb, grounded)
    return write_conversations(convs, out, fmt="sharegpt"), len(convs)
