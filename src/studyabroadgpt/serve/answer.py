"""One advising turn end to end, shared by the server and the terminal chat:
``prepare`` (retrieve, build the grounded prompt) → the generator → ``finish`` (gate, citations, caveat,
sources list)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .gate import Auditor, cited_numbers, drop_unknown_citations, run_gate
from .grounding import Searcher, Source, grounded_messages, retrieve

# Changes worth a visible note (adding a missing citation is bookkeeping, not a correction).
NOTABLE = {"corrected", "removed", "marked_unverified", "added_caveat"}


@dataclass
class Turn:
    messages: list[dict[str, str]]
    model_messages: list[dict[str, str]]
    question: str
    sources: list[Source] = field(default_factory=list)
    rag: bool = False
    gate: bool = False


@dataclass
class Final:
    content: str          # the answer as it should be shown: corrected, cited, caveated, with sources
    tail: str             # what a stream appends after the raw model text (note, caveat, sources)
    sources: list[dict[str, Any]]
    gate: dict[str, Any]


class Answerer:
    def __init__(self, searcher: Searcher | None, auditor: Auditor | None, top_k: int = 4):
        self.searcher, self.auditor, self.top_k = searcher, auditor, top_k

    @classmethod
    def from_kb(cls, kb_path: str | None = None, top_k: int = 4, gate: bool = True) -> "Answerer":
        """Grounding over the shipped knowledge base (or ``kb_path``), with the claim auditor as gate."""
        from ..kb.search import Retriever
        from ..kb.store import load_kb

        searcher = Retriever.default() if kb_path is None else Retriever.from_kb(load_kb(kb_path))
        auditor = None
        if gate:
            from ..kb.audit import Auditor as KBAuditor

            auditor = KBAuditor.default() if kb_path is None else KBAuditor(searcher.kb, searcher)
        # One search now loads the sentence encoder, so the first student does not wait for it.
        searcher.search("student visa", k=1)
        return cls(searcher, auditor, top_k)

    def prepare(self, messages: list[dict[str, str]], rag: bool = True, gate: bool = True) -> Turn:
        question = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
        if not rag or self.searcher is None:
            return Turn(messages, list(messages), question)
        sources = retrieve(self.searcher, messages, self.top_k)
        return Turn(messages, grounded_messages(messages, sources), question, sources, rag=True,
                    gate=gate and self.auditor is not None)

    def finish(self, turn: Turn, raw: str) -> Final:
        answer = raw.strip()
        if not turn.rag:
            return Final(answer, "", [], {"enabled": False, "changed": False, "changes": [], "note": None})
        changes: list[dict[str, Any]] = []
        policy = False
        if turn.gate:
            result = run_gate(self.auditor, answer, turn.question, turn.sources)
            answer, changes, policy = result.text, result.changes, result.policy_sensitive
        else:
            answer, dropped = drop_unknown_citations(answer, {s.n for s in turn.sources})
        cited = cited_numbers(answer)
        extra: list[str] = []
        top = turn.sources[0] if turn.sources else None
        if top is not None and top.n not in cited and _on_topic(turn.question, top.fact):
            # The answer does not use the most relevant fact (small models often drift to a side issue):
            # state it ourselves, cited, so a grounded answer always carries the official fact it needs.
            extra.append(f"**From the official source:** {top.fact.statement} [{top.n}]")
            changes.append({"action": "added_key_fact", "fact_id": top.fact.id, "citation": top.n})
            cited.add(top.n)
        caveat = ""
        if turn.gate:
            caveat, caveat_change = _caveat(turn.sources, cited, policy)
            if caveat_change:
                changes.append(caveat_change)
                cited.add(caveat_change["citation"])
        note = _note(changes)
        sources_md = _sources_markdown(turn.sources, cited)
        appendix = [p for p in (*extra, caveat, sources_md) if p]
        content = "\n\n".join([answer, *([note] if note else []), *appendix]).strip()
        tail = "\n\n" + "\n\n".join([*([_stream_note(changes)] if _stream_note(changes) else []), *appendix])
        gate = {"enabled": turn.gate, "changed": any(c["action"] in NOTABLE for c in changes),
                "changes": changes, "note": note, "content": content}
        return Final(content, tail, [s.to_dict(s.n in cited) for s in turn.sources], gate)


def _on_topic(question: str, fact: Any) -> bool:
    """Whether the question shares a content word with the fact (retrieval always returns *something*)."""
    from ..kb.search import tokenize

    return bool(set(tokenize(question)) & set(tokenize(fact.search_text())))


def _caveat(sources: list[Source], cited: set[int], policy: bool) -> tuple[str, dict[str, Any] | None]:
    """Policy-sensitive answers (visa, funds, health cover, work rights...) end by naming the official source
    and the date our information dates from: these rules change without notice."""
    sensitive = [s for s in sources if s.fact.policy_sensitive]
    chosen = next((s for s in sensitive if s.n in cited), None)
    if chosen is None and policy and sources:  # the audit saw visa/funds/work talk in the question or answer
        chosen = sensitive[0] if sensitive else sources[0]
    if chosen is None:
        return "", None
    f = chosen.fact
    text = (f"_Rules on {f.topic.replace('_', ' ')} change often. Check the official source before you act: "
            f"[{f.source_title}]({f.source_url}) (our information is as of {f.as_of.isoformat()}) [{chosen.n}]._")
    return text, {"action": "added_caveat", "fact_id": f.id, "citation": chosen.n, "as_of": f.as_of.isoformat(),
                  "url": str(f.source_url)}


def _note(changes: list[dict[str, Any]]) -> str:
    counts = {a: sum(c["action"] == a for c in changes) for a in ("corrected", "removed", "marked_unverified")}
    parts = []
    if counts["corrected"]:
        parts.append(f"{counts['corrected']} figure(s) corrected to the official value")
    if counts["removed"]:
        parts.append(f"{counts['removed']} claim(s) contradicting the official sources removed")
    if counts["marked_unverified"]:
        parts.append(f"{counts['marked_unverified']} claim(s) marked (unverified)")
    return f"> **Fact check:** {'; '.join(parts)}." if parts else ""


def _stream_note(changes: list[dict[str, Any]]) -> str:
    """For streamed text, which cannot be edited once sent, the note spells out each correction."""
    lines = []
    for c in changes:
        if c["action"] == "corrected":
            cite = f" [{c['citation']}]" if c.get("citation") else ""
            lines.append(f"> - \"{c['claim']}\" is wrong: the official figure is {c['replacement']}{cite}.")
        elif c["action"] == "removed":
            lines.append(f"> - \"{c['claim']}\" contradicts the official sources; disregard it.")
        elif c["action"] == "marked_unverified":
            lines.append(f"> - \"{c['claim']}\" is unverified: no official source here confirms it.")
    return "> **Fact check:**\n" + "\n".join(lines) if lines else ""


def _sources_markdown(sources: list[Source], cited: set[int]) -> str:
    shown = [s for s in sources if s.n in cited]
    if not shown:
        return ""
    return "**Sources**\n\n" + "\n".join(f"{s.markdown()}  " for s in shown)
