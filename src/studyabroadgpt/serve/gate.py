"""The factuality gate: check a finished answer's specific claims against the retrieved facts and fix it.

* a claim the facts contradict is replaced by the knowledge-base value with its citation (or, when the audit
  has no value to put in its place, its sentence is removed);
* a specific claim no retrieved fact supports is marked "(unverified)";
* a supported claim without a citation gets one;
* citation numbers that point at no source are dropped (small models invent them).

The audit itself (claim extraction, matching values and entities) lives in ``kb.audit``; this module only
turns its verdicts into edits and a record of what changed.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Protocol

from .grounding import Source

UNVERIFIED = " (unverified)"
_CITATION = re.compile(r"\s?\[(\d{1,2})\]")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n")


class Auditor(Protocol):
    def audit_answer(self, answer: str, question: str = "", facts: list[Any] | None = None) -> Any: ...


@dataclass
class GateResult:
    text: str
    changes: list[dict[str, Any]] = field(default_factory=list)
    policy_sensitive: bool = False


def describe_expected(expected: Any) -> str | None:
    """The audit's expected value as text ('GBP 1,483 per month'); it may be a Value, a string or None."""
    if expected is None:
        return None
    if isinstance(expected, str):
        return expected.strip() or None
    if hasattr(expected, "kind"):
        from ..kb.store import describe_value

        return describe_value(expected)
    return str(expected)


def _sentence_bounds(text: str, start: int, end: int) -> tuple[int, int]:
    left = 0
    for m in _SENTENCE_END.finditer(text, 0, start):
        left = m.end()
    m = _SENTENCE_END.search(text, end)
    return left, (m.start() if m else len(text))


def _cited_in(text: str) -> set[int]:
    return {int(m.group(1)) for m in _CITATION.finditer(text)}


def run_gate(auditor: Auditor, answer: str, question: str, sources: list[Source]) -> GateResult:
    """Audit ``answer`` against ``sources`` and return the corrected text with the list of changes."""
    number = {s.fact.id: s.n for s in sources}
    result = auditor.audit_answer(answer, question=question, facts=[s.fact for s in sources])
    # Apply edits from the end of the text backwards so earlier spans stay valid; skip overlapping claims.
    claims = sorted((c for c in result.claims if c.span is not None), key=lambda c: c.span[0], reverse=True)
    text, changes, floor = answer, [], len(answer) + 1
    for claim in claims:
        start, end = claim.span
        if end > floor or start < 0 or end > len(text):
            continue
        cite = number.get(claim.fact_id) if claim.fact_id else None
        if claim.status == "contradicted":
            expected = describe_expected(getattr(claim, "expected", None))
            # A figure with a KB value is corrected in place; a misattributed name, or a figure the audit can
            # only call impossible (no fact to take the right value from), cannot be: its sentence goes.
            if expected and claim.fact_id and claim.kind != "entity":
                replacement = f"{expected} [{cite}]" if cite else expected
                text = text[:start] + replacement + text[end:]
                changes.append({"action": "corrected", "claim": claim.text, "replacement": expected,
                                "fact_id": claim.fact_id, "citation": cite})
            else:
                left, right = _sentence_bounds(text, start, end)
                changes.append({"action": "removed", "claim": claim.text, "sentence": text[left:right].strip(),
                                "reason": expected, "fact_id": claim.fact_id, "citation": cite})
                text = text[:left] + text[right:].lstrip(" ")
                end = left
            floor = start
        elif claim.status == "unsupported":
            if not text[end:end + len(UNVERIFIED)] == UNVERIFIED:
                text = text[:end] + UNVERIFIED + text[end:]
                changes.append({"action": "marked_unverified", "claim": claim.text})
            floor = start
        elif claim.status == "supported" and cite:
            left, right = _sentence_bounds(text, start, end)
            if cite not in _cited_in(text[left:right]):
                text = text[:end] + f" [{cite}]" + text[end:]
                changes.append({"action": "cited", "claim": claim.text, "fact_id": claim.fact_id,
                                "citation": cite})
            floor = start
    text, dropped = drop_unknown_citations(text, {s.n for s in sources})
    changes.reverse()  # report in reading order
    changes += [{"action": "dropped_citation", "citation": n} for n in dropped]
    return GateResult(text, changes, bool(getattr(result, "policy_sensitive", False)))


def drop_unknown_citations(text: str, known: set[int]) -> tuple[str, list[int]]:
    dropped: list[int] = []

    def keep(m: re.Match) -> str:
        if int(m.group(1)) in known:
            return m.group(0)
        dropped.append(int(m.group(1)))
        return ""

    return _CITATION.sub(keep, text), dropped


def cited_numbers(text: str) -> set[int]:
    return _cited_in(text)
