"""The factuality gate: check a finished answer's specific claims against the retrieved facts and fix it.

* a figure the facts contradict is replaced by the knowledge-base value with its citation **only when the
  fact provably answers the same slot** (destination, subject, level of study / applicant group, period, and
  the figure is the claim's own, not the student's premise): see :mod:`..kb.slots`. Otherwise the claim is
  marked "(unverified)" and the nearest fact is named in the record, never substituted — substituting the
  nearest figure of another rule produced cited, official-looking false rules;
* a sentence whose yes/no (can / cannot, required / not required) contradicts a fact that states the rule is
  replaced by the fact, cited;
* a misattributed name, or a figure impossible on its test's scale, loses its sentence;
* a specific claim no retrieved fact supports is marked "(unverified)";
* a URL that is not a KB source URL is removed; a named body or scheme that neither the KB nor the question
  contains is marked "(unverified)";
* a supported claim without a citation gets one; citation numbers that point at no source are dropped.

Every edit is a :class:`GateChange` recording the fact and the slot it matched; ``describe()`` is the one
human-readable line the answer's note, the stream note and the terminal chat all print.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from .grounding import Source

UNVERIFIED = " (unverified)"
_CITATION = re.compile(r"\s?\[(\d{1,2})\]")

# Changes worth a visible note (adding a missing citation is bookkeeping, not a correction).
NOTABLE = frozenset({"corrected", "corrected_rule", "removed", "marked_unverified", "removed_url",
                     "corrected_premise", "cut_loop", "composed", "out_of_scope"})
# Edits that change what the answer asserts (what "correction precision" is measured on).
CORRECTIONS = frozenset({"corrected", "corrected_rule", "removed"})


class Auditor(Protocol):
    def audit_answer(self, answer: str, question: str = "", facts: list[Any] | None = None) -> Any: ...


@dataclass
class GateChange:
    """One edit the answer path made, with the evidence for it."""

    action: str
    claim: str | None = None
    replacement: str | None = None
    fact_id: str | None = None
    citation: int | None = None
    reason: str | None = None
    slot: dict[str, Any] | None = None
    sentence: str | None = None
    kind: str | None = None
    url: str | None = None
    as_of: str | None = None

    @property
    def notable(self) -> bool:
        return self.action in NOTABLE

    def describe(self) -> str:
        """One line for a person: what changed and why."""
        cite = f" [{self.citation}]" if self.citation else ""
        a = self.action
        if a == "corrected":
            return f"“{self.claim}” corrected to the official {self.replacement}{cite}"
        if a == "corrected_rule":
            return f"“{_short(self.claim)}” replaced by the official rule{cite}: {self.reason}"
        if a == "corrected_premise":
            return f"the question assumes “{_short(self.claim)}”: {self.replacement}{cite}"
        if a == "removed":
            return f"removed “{_short(self.claim)}”: {self.reason or 'contradicts the official sources'}"
        if a == "marked_unverified":
            return f"marked “{_short(self.claim)}” unverified" + (f": {self.reason}" if self.reason else "")
        if a == "removed_url":
            return f"removed the address {self.claim}: {self.reason}"
        if a == "cut_loop":
            return f"cut a repetition loop (“{_short(self.claim, 50)}” repeated)"
        if a == "added_caveat":
            return f"added a caveat pointing to {self.url} (as of {self.as_of})"
        if a == "added_key_fact":
            return f"added the key official fact{cite}"
        if a == "composed":
            return f"served the composed answer from the official facts: {self.reason}"
        if a == "out_of_scope":
            return f"no official information in the knowledge base: {self.reason}"
        if a == "cited":
            return f"cited “{self.claim}”{cite}"
        if a == "dropped_citation":
            return f"dropped citation [{self.citation}], which points at no source"
        return a

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


def _short(text: str | None, n: int = 80) -> str:
    t = re.sub(r"\s+", " ", text or "").strip()
    return t if len(t) <= n else t[:n - 1].rstrip() + "…"


@dataclass
class GateResult:
    text: str
    changes: list[GateChange] = field(default_factory=list)
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


def _cited_in(text: str) -> set[int]:
    return {int(m.group(1)) for m in _CITATION.finditer(text)}


def _sentence(text: str, pos: int) -> tuple[int, int]:
    from ..kb.claims import sentence_bounds

    return sentence_bounds(text, pos)


def context_destination(question: str, sources: list[Source]) -> str | None:
    from ..kb.geo import detect_destinations

    named = detect_destinations(question)
    if named:
        return named[0]
    dests = {s.fact.destination for s in sources}
    return next(iter(dests)) if len(dests) == 1 else None


def run_gate(auditor: Auditor, answer: str, question: str, sources: list[Source], kb: Any = None) -> GateResult:
    """Audit ``answer`` against ``sources`` and return the corrected text with the list of changes."""
    from ..kb import slots

    number = {s.fact.id: s.n for s in sources}
    by_id = {s.fact.id: s.fact for s in sources}
    result = auditor.audit_answer(answer, question=question, facts=[s.fact for s in sources])
    # Apply edits from the end of the text backwards so earlier spans stay valid; skip overlapping claims.
    claims = sorted((c for c in result.claims if c.span is not None), key=lambda c: c.span[0], reverse=True)
    text, changes, floor = answer, [], len(answer) + 1
    for claim in claims:
        start, end = claim.span
        if end > floor or start < 0 or end > len(text):
            continue
        cite = number.get(claim.fact_id) if claim.fact_id else None
        status = str(claim.status)
        if status in ("contradicted", "unsupported") and slots.from_question(claim, question):
            continue  # the student's own figure ("my one-year master's"): theirs to state, not ours to fix
        if status == "contradicted":
            expected = describe_expected(getattr(claim, "expected", None))
            fact = by_id.get(claim.fact_id) if claim.fact_id else None
            if expected and fact is not None and str(claim.kind) != "entity":
                s0, _ = _sentence(text, start)
                sentence = text[s0:_sentence(text, start)[1]]
                c_slot = slots.slot_of(sentence, start - s0, end - s0, claim.destination, context=question)
                f_slot, key = slots.fact_value_slot(fact, expected)
                match = slots.same_slot(c_slot, f_slot)
                if match.ok:
                    replacement = f"{expected} [{cite}]" if cite else expected
                    text = text[:start] + replacement + text[end:]
                    changes.append(GateChange("corrected", claim.text, expected, claim.fact_id, cite,
                                              reason="same slot", slot={**match.to_dict(), "value_key": key}))
                else:
                    # Not provably the same rule: say we cannot vouch for it, and name the nearest fact so a
                    # reader can check, but never put that fact's figure in the student's answer.
                    if text[end:end + len(UNVERIFIED)] != UNVERIFIED:
                        text = text[:end] + UNVERIFIED + text[end:]
                    changes.append(GateChange("marked_unverified", claim.text, fact_id=claim.fact_id,
                                              reason=f"not corrected: {match.reason}",
                                              slot={**match.to_dict(), "value_key": key}))
            else:
                # A misattributed name, or a figure the audit can only call impossible (no fact to take the
                # right value from): its sentence goes.
                left, right = _sentence(text, start)
                changes.append(GateChange("removed", claim.text, sentence=text[left:right].strip(),
                                          reason=expected, fact_id=claim.fact_id, citation=cite,
                                          kind=str(claim.kind)))
                text = text[:left] + text[right:].lstrip(" ")
            floor = start
        elif status == "unsupported":
            if text[end:end + len(UNVERIFIED)] != UNVERIFIED:
                text = text[:end] + UNVERIFIED + text[end:]
                changes.append(GateChange("marked_unverified", claim.text, kind=str(claim.kind),
                                          reason="no retrieved official fact states it"))
            floor = start
        elif status == "supported" and cite:
            left, right = _sentence(text, start)
            if cite not in _cited_in(text[left:right]):
                text = text[:end] + f" [{cite}]" + text[end:]
                changes.append(GateChange("cited", claim.text, fact_id=claim.fact_id, citation=cite))
            floor = start
    changes.reverse()  # report in reading order
    text, rule_changes = correct_rules(text, question, sources)
    changes += rule_changes
    kb = kb if kb is not None else getattr(auditor, "kb", None)
    if kb is not None:
        from .checks import mark_unverified_entities, remove_foreign_urls

        text, url_changes = remove_foreign_urls(text, kb)
        text, entity_changes = mark_unverified_entities(text, question, kb)
        changes += [GateChange(**c) for c in url_changes + entity_changes]
    text, dropped = drop_unknown_citations(text, {s.n for s in sources})
    changes += [GateChange("dropped_citation", citation=n) for n in dropped]
    return GateResult(text, changes, bool(getattr(result, "policy_sensitive", False)))


def correct_rules(text: str, question: str, sources: list[Source]) -> tuple[str, list[GateChange]]:
    """Sentences whose yes/no contradicts a retrieved fact that states the rule are replaced by the fact."""
    from ..kb.geo import detect_destinations
    from ..kb.slots import level_in, polarity_conflict, rule_of

    fallback = context_destination(question, sources)
    fact_rules = []
    for s in sources:
        rule = rule_of(s.fact.statement, s.fact.destination)
        if rule is not None:
            fact_rules.append((s, rule))
    if not fact_rules:
        return text, []
    edits = []
    pos = 0
    while pos < len(text):
        a, b = _sentence(text, pos)
        sentence = text[a:b]
        if sentence.strip():
            named = detect_destinations(sentence)
            claim = rule_of(sentence, named[0] if named else fallback)
            if claim is not None:
                if claim.level is None:  # the question says who is asking ("during my taught master's")
                    claim = type(claim)(claim.subject, claim.positive, claim.only, level_in(question),
                                        claim.destination)
                for s, rule in fact_rules:
                    why = polarity_conflict(claim, rule)
                    if why:
                        edits.append((a, b, s, rule, claim, why))
                        break
        pos = max(b + 1, a + 1)
    changes = []
    for a, b, s, rule, claim, why in reversed(edits):
        replacement = f"{s.fact.statement} [{s.n}]"
        changes.append(GateChange("corrected_rule", text[a:b].strip(), s.fact.statement, s.fact.id, s.n,
                                  reason=why, slot={"rule": rule.subject, "claim": claim.to_dict(),
                                                    "fact": rule.to_dict()}))
        text = text[:a] + replacement + text[b:]
    changes.reverse()
    return text, changes


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
