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
NOTABLE = frozenset({"corrected", "corrected_rule", "removed", "removed_rule", "marked_unverified", "removed_url",
                     "corrected_premise", "unverified_premise", "cut_loop", "composed", "out_of_scope",
                     "degenerate", "removed_title", "removed_off_topic", "removed_unverified"})
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
        if a == "unverified_premise":
            return f"the question assumes “{_short(self.claim)}”, which our sources do not settle{cite}"
        if a == "degenerate":
            return f"the model's text degenerated ({self.reason})"
        if a == "removed":
            return f"removed “{_short(self.claim)}”: {self.reason or 'contradicts the official sources'}"
        if a == "removed_rule":
            return f"removed “{_short(self.claim)}”: {self.reason}"
        if a == "removed_unverified":
            return f"removed “{_short(self.sentence or self.claim)}”: {self.reason}"
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
        if a in ("removed_title", "removed_off_topic"):
            return f"removed “{_short(self.claim)}”: {self.reason}"
        if a == "trimmed":
            return f"left out the unfinished last sentence “{_short(self.claim, 50)}”: the model reached the token limit"
        if a == "dropped_citation":
            return f"dropped citation [{self.citation}]: {self.reason or 'it points at no source'}"
        return a

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in asdict(self).items() if v is not None}
        d["text"] = self.describe()
        return d


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


def _mark(text: str, end: int) -> str:
    """``text`` with "(unverified)" after position ``end`` (once)."""
    return text if text[end:end + len(UNVERIFIED)] == UNVERIFIED else text[:end] + UNVERIFIED + text[end:]


def _cited_in(text: str) -> set[int]:
    return {int(m.group(1)) for m in _CITATION.finditer(text)}


def _sentence(text: str, pos: int) -> tuple[int, int]:
    """The sentence around ``pos`` (``kb.claims.sentence_bounds``, the audit's own notion of a sentence).

    Asked one character in: a sentence break is only seen with the next sentence's first character in view,
    so at a sentence's first character ``sentence_bounds`` would still answer the sentence before it."""
    from ..kb.claims import sentence_bounds

    return sentence_bounds(text, min(pos + 1, len(text)))


def sentences(text: str) -> list[tuple[int, int]]:
    """Bounds of every sentence / bullet / line of ``text``, in reading order."""
    out: list[tuple[int, int]] = []
    pos = 0
    while pos < len(text):
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            break
        a, b = _sentence(text, pos)
        if out and (a, b) == out[-1] or b <= pos:
            b = max(b, pos + 1)
        else:
            out.append((a, b))
        pos = b
    return out


def context_destination(question: str, sources: list[Source], context: str = "") -> str | None:
    """The destination a sentence that names none is about: the question's, else the earlier turns' (the
    follow-up "What if I do a PhD instead?" asks about the UK of "Can I bring my wife to the UK ...?"), else
    that of the retrieved facts when they agree."""
    from ..kb.geo import detect_destinations

    named = detect_destinations(question, exclude_origins=True) or detect_destinations(context, exclude_origins=True)
    if named:
        return named[0]
    dests = {s.fact.destination for s in sources}
    return next(iter(dests)) if len(dests) == 1 else None


def _fact_elsewhere(claim: Any, text: str, question: str, sources: list[Source], context: str) -> str | None:
    """Why the fact that supports ``claim`` is no source for it: it is about another destination than the
    claim's sentence (or, naming none, the conversation); None when it may be."""
    from ..kb.geo import detect_destinations
    from ..kb.schema import DESTINATIONS

    fact = next((s.fact for s in sources if s.fact.id == claim.fact_id), None)
    if fact is None or getattr(fact, "destination", "any") in (None, "any"):
        return None
    s0, s1 = _sentence(text, claim.span[0])
    named = detect_destinations(text[s0:s1], exclude_origins=True)
    where = named or [d for d in [context_destination(question, [], context)] if d]
    if not where or fact.destination in where:
        return None
    return (f"the official fact {fact.id} gives this figure for {DESTINATIONS.get(fact.destination, fact.destination)}, "
            f"not {DESTINATIONS.get(where[0], where[0])}")


# A citation the model wrote after a sentence its fact does not say: "This takes around one year [2] after high
# school graduation" on a scholarship fact (session 5). Below this share of the sentence's content words in the
# cited fact, the citation goes (the claims in it are then checked like any uncited ones).
CITATION_SUPPORT = 0.2
_CITED_SENTENCE_MIN_WORDS = 4


# Words a figure brings with it: they are the claim, not what the sentence says about it.
_FIGURE_WORDS = frozenset("hour hours day days week weeks month months year years per term semester".split())


def _says(sentence: str, fact: Any) -> tuple[bool, float]:
    """Whether ``fact`` is about what ``sentence`` says (CITATION_SUPPORT of its content words besides places,
    figures and their units); a sentence under _CITED_SENTENCE_MIN_WORDS such words is given the benefit."""
    from .checks import _content_words, _place_words

    words = {w for w in _content_words(_CITATION.sub(" ", sentence)) - _place_words() - _FIGURE_WORDS
             if not any(ch.isdigit() for ch in w)}
    if len(words) < _CITED_SENTENCE_MIN_WORDS:
        return True, 1.0
    share = len(words & _content_words(fact.search_text())) / len(words)
    return share >= CITATION_SUPPORT, share


def drop_unsupported_citations(text: str, sources: list[Source]) -> tuple[str, list[GateChange]]:
    """``text`` without the "[n]" markers whose fact shares under CITATION_SUPPORT of their sentence's words."""
    by_n = {s.n: s.fact for s in sources}
    drops: list[tuple[int, int, int, str]] = []
    bounds = sentences(text)
    for i, (a, b) in enumerate(bounds):
        sentence = text[a:b]
        for m in _CITATION.finditer(sentence):
            fact = by_n.get(int(m.group(1)))
            if fact is None:
                continue  # pointing at no source: drop_unknown_citations' job
            # "... school fees. [1]" ends the sentence before it (the next one starts at "[")
            said = text[bounds[i - 1][0]:bounds[i - 1][1]] if i and not sentence[:m.start()].strip(" [],0123456789") \
                else sentence
            ok, share = _says(said, fact)
            if not ok:
                drops.append((a + m.start(), a + m.end(), int(m.group(1)),
                              f"fact {fact.id} does not say what the sentence says ({share:.0%} of its words in it)"))
    changes = []
    for s0, s1, n, why in reversed(drops):
        text = text[:s0] + text[s1:]
        changes.append(GateChange("dropped_citation", citation=n, reason=why,
                                  fact_id=by_n[n].id))
    changes.reverse()
    return text, changes


def run_gate(auditor: Auditor, answer: str, question: str, sources: list[Source], kb: Any = None,
             context: str = "") -> GateResult:
    """Audit ``answer`` against ``sources`` and return the corrected text with the list of changes."""
    from ..kb import slots

    number = {s.fact.id: s.n for s in sources}
    by_id = {s.fact.id: s.fact for s in sources}
    answer, unsupported_cites = drop_unsupported_citations(answer, sources)
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
                pick, why, info = _decide(claim, text, question, sources)
                if pick is not None and pick.slot.condition and \
                        info.get("claim_slot", {}).get("period") != pick.slot.period:
                    limited = pick  # the claim leaves out the period the rule is limited to
                elif pick is None:
                    limited = _outside_condition(claim, info, sources)
                else:
                    limited = None
                if limited is not None:
                    # The fact allows this only in a period ("only during semester breaks") the claim leaves out
                    # or contradicts ("during your studies"): the fact, with all its conditions (the period,
                    # the jobs, the approval), replaces the sentence. A figure swapped in alone dropped them.
                    text, start = _replace_with_limited(text, start, limited, number, info, changes)
                elif pick is not None:
                    r_cite = number.get(pick.fact.id)
                    label = _as_written(pick)
                    at = start
                    if str(claim.kind) == "date" and label[:1].isdigit() and re.search(r"\bin\s$", text[:start]):
                        at = start - 3  # "in 1 January 2024" reads "on 1 January 2024"
                    text = text[:at] + ("on " if at != start else "") + \
                        (f"{label} [{r_cite}]" if r_cite else label) + text[end:]
                    changes.append(GateChange("corrected", claim.text, label, pick.fact.id, r_cite,
                                              reason=why, slot=info))
                else:
                    # Not provably the same rule: say we cannot vouch for it, and name the nearest fact so a
                    # reader can check, but never put that fact's figure in the student's answer.
                    text = _mark(text, end)
                    changes.append(GateChange("marked_unverified", claim.text, fact_id=claim.fact_id,
                                              reason=f"not corrected: {why}", slot=info))
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
                text = _mark(text, end)
                changes.append(GateChange("marked_unverified", claim.text, kind=str(claim.kind),
                                          reason="no retrieved official fact states it"))
            floor = start
        elif status == "supported" and cite:
            limited = _limited_rule(claim, text, question, sources)
            if limited is not None:
                # "you can work up to 20 hours a week during your studies": the figure is the fact's, the
                # period is not ("only during semester breaks").
                text, start = _replace_with_limited(text, start, limited[0], number, limited[1], changes)
                floor = start
                continue
            wrong = _supported_for_another_slot(claim, text, question, sources)
            if wrong is not None:
                pick, why, info = wrong
                if pick is not None:
                    r_cite = number.get(pick.fact.id)
                    text = text[:start] + (f"{pick.label} [{r_cite}]" if r_cite else pick.label) + text[end:]
                    changes.append(GateChange("corrected", claim.text, pick.label, pick.fact.id, r_cite,
                                              reason=f"the answer's figure is the official one for another case; "
                                                     f"{why}", slot=info))
                else:
                    text = _mark(text, end)
                    changes.append(GateChange("marked_unverified", claim.text, fact_id=claim.fact_id,
                                              reason=f"the official figure is for another case: {why}", slot=info))
                floor = start
                continue
            left, right = _sentence(text, start)
            figure = str(claim.kind) != "entity"  # a name the fact has is its own check (the audit's)
            other = _fact_elsewhere(claim, text, question, sources, context) if figure else None
            if other is not None:
                # The figure is in a fact about another destination ("two-year [1]" on an Irish fact in a
                # Canadian answer, session 5): that fact says nothing about this one.
                text = _mark(text, end)
                changes.append(GateChange("marked_unverified", claim.text, fact_id=claim.fact_id, kind=str(claim.kind),
                                          reason=other))
            elif re.match(r"[\w'’]|\.\w", text[end:end + 2]):
                pass  # glued into a longer token ("Chevening Scholarships.com"): "[1]" inside it broke the address
            elif figure and not _says(text[left:right], by_id[claim.fact_id])[0]:
                # The fact has the figure, but for something else: "This takes around one year after high school
                # graduation" is no GOI-IES scholarship year (session 5, Kenya/Ireland: "one year [2]").
                share = _says(text[left:right], by_id[claim.fact_id])[1]
                text = _mark(text, end)
                changes.append(GateChange("marked_unverified", claim.text, fact_id=claim.fact_id, kind=str(claim.kind),
                                          reason=f"the official fact {claim.fact_id} gives this figure for something "
                                                 f"else ({share:.0%} of the sentence's words in it)"))
            elif cite not in _cited_in(text[left:right]) and not re.match(rf"\s*\[{cite}\]", text[right:]):
                text = text[:end] + f" [{cite}]" + text[end:]
                changes.append(GateChange("cited", claim.text, fact_id=claim.fact_id, citation=cite))
            floor = start
    changes.reverse()  # report in reading order
    changes = unsupported_cites + changes
    text, rule_changes = correct_rules(text, question, sources, context)
    changes += rule_changes
    # A follow-up ("Is there an age limit for that?") is a policy question when the turn before it was one.
    text, talk = drop_prompt_talk(text, sources)
    changes += talk
    kb = kb if kb is not None else getattr(auditor, "kb", None)
    text, ranked = mark_superlatives(text, sources, kb)
    changes += ranked
    text, unbounded = drop_unbounded_durations(text, sources, context_destination(question, sources, context))
    changes += unbounded
    if slots.policy_subject(question) is not None or (context and slots.policy_subject(context) is not None):
        text, invented = drop_unsupported_rules(text, sources)
        changes += invented
    # A year or month deadline no retrieved fact gives is an invented specific in any answer, not only a policy
    # one: "apply to French universities through Campus France" is no policy subject, and its served deadline
    # went unmarked (lead's reading, session 5).
    text, undated = mark_undated_deadlines(text, sources, f"{context} {question}")
    changes += undated
    if kb is not None:
        from .checks import mark_unverified_entities, remove_foreign_urls

        text, url_changes = remove_foreign_urls(text, kb)
        text, entity_changes = mark_unverified_entities(text, question, kb)
        changes += [GateChange(**c) for c in url_changes + entity_changes]
    text, dropped = drop_unknown_citations(text, {s.n for s in sources})
    changes += [GateChange("dropped_citation", citation=n) for n in dropped]
    text = drop_unverified_sentences(text, changes)
    return GateResult(text, changes, bool(getattr(result, "policy_sensitive", False)))


def drop_unverified_sentences(text: str, changes: list[GateChange]) -> str:
    """``text`` without the sentences whose only specifics are unverified: a "(unverified)" mark and no cited
    fact. Their marked changes become ``removed_unverified`` (in place, with the sentence recorded).

    Read on the real-style set (110 prompts, default model, generate mode at d1ae96f): of the 190 served
    sentences that carried a mark, the ones with no citation were, to a sentence, invented or nonsense ("The
    Canadian government does not allow students to work in Canada while they are studying (unverified).",
    "It requires a minimum of three years (unverified) of study under the guidance of a Master of Fine Arts
    (FFA (unverified))."); a mark tells a student which word to doubt, not that the whole sentence is made up.
    A sentence that also cites a fact keeps its marks: part of it is the fact's."""
    cut = []
    for a, b in sentences(text):
        body = text[a:b].strip()
        if UNVERIFIED.strip() in body and not _CITATION.search(body) and not body.startswith(("#", ">")):
            cut.append((a, b, body))
    if not cut:
        return text
    plain = [(body, body.replace(UNVERIFIED, "").replace(UNVERIFIED.strip(), "")) for _, _, body in cut]
    for c in changes:
        if c.action != "marked_unverified" or not c.claim:
            continue
        claim = c.claim.replace(UNVERIFIED, "").strip()
        hit = next((body for body, bare in plain if claim in bare or bare.strip() in claim), None)
        if hit is not None:
            c.action, c.sentence = "removed_unverified", hit
            c.reason = (f"its sentence's specifics are unverified and it cites no fact ({c.reason})" if c.reason
                        else "its sentence's specifics are unverified and it cites no fact")
    for a, b, _ in reversed(cut):
        rest = text[b:].lstrip(" ")
        head = text[:a]
        if head.rstrip(" \t").endswith("\n") and rest.startswith("\n"):
            # the sentence was a whole line (a list item with its marker): the line goes, not just its text,
            # so no blank line is left inside the list
            head, rest = head.rstrip(" \t"), rest[1:]
        text = (head if rest.strip() else head.rstrip()) + rest
    # a list item or line left with nothing but its marker goes with it
    text = re.sub(r"(?m)^[ \t]*(?:[-*+•]|\d{1,3}[.)])[ \t]*(?:\n|$)", "", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


# Only these qualifiers turn a supported figure into a wrong one: a level or applicant group the student
# stated (in the claim's clause or the question). Place and period cues are read from the words nearest the
# figure, which is too weak a signal to overrule a figure the facts do state.
_QUALIFIER_REASONS = ("different level", "different applicant group")


def _claim_slot(claim: Any, text: str, question: str) -> tuple[Any, str]:
    from ..kb import slots

    from ..kb.geo import detect_destinations

    s0, s1 = _sentence(text, claim.span[0])
    sentence = text[s0:s1]
    clause, pos = slots.clause_around(sentence, claim.span[0] - s0, claim.span[1] - s0)
    # The claim's own clause names the country its figure is for ("In the UK students can work 20 hours a
    # week, but Canada has its own rule"): a Canadian fact must not replace the UK figure.
    # Only a place the clause puts the student in ("in the UK", "for Canada"), not a group it lists ("students
    # from outside the EU, EEA and Switzerland"), which names who a rule is for.
    named = [c for c in detect_destinations(clause)
             if re.search(r"\b(?:in|for)\s+(?:the\s+)?" + _PLACE_NAMES.get(c, "(?!)") + r"\b", clause, re.IGNORECASE)]
    dest = named[0] if len(named) == 1 and claim.destination and named[0] != claim.destination else claim.destination
    slot = slots.slot_of(sentence, claim.span[0] - s0, claim.span[1] - s0, dest, context=question)
    # The words right around the figure (as on the fact's side) pick between figures of one slot.
    return slot, clause[max(0, pos - 30):pos + (claim.span[1] - claim.span[0]) + 30]


def _replace_with_limited(text: str, start: int, limited: Any, number: dict[str, int], info: dict[str, Any],
                          changes: list[GateChange]) -> tuple[str, int]:
    """The claim's sentence replaced by the fact of a period-limited rule, cited; (text, sentence start)."""
    left, right = _sentence(text, start)
    r_cite = number.get(limited.fact.id)
    changes.append(GateChange("corrected_rule", text[left:right].strip(), limited.fact.statement, limited.fact.id,
                              r_cite, reason=f"the official rule allows this {limited.slot.condition}", slot=info))
    text = text[:left] + limited.fact.statement + (f" [{r_cite}]" if r_cite else "") + \
        (" " if text[right:right + 1] not in ("", " ", "\n") else "") + text[right:]
    return text, left


def _limited_rule(claim: Any, text: str, question: str, sources: list[Source]) -> tuple[Any, dict[str, Any]] | None:
    """For a supported figure: (its fact's candidate, slots) when that fact limits the rule to a period the
    claim leaves out or contradicts."""
    from ..kb import slots

    fact = next((s.fact for s in sources if s.fact.id == claim.fact_id), None)
    if fact is None or slots.claim_number(claim) is None or str(claim.kind) == "entity":
        return None
    own = [c for c in slots.candidates(claim, [fact]) if slots._label_number(c.label) == slots.claim_number(claim)]
    c_slot, _ = _claim_slot(claim, text, question)
    for c in own:
        if c.slot.condition and c.slot.period != c_slot.period and c.slot.subject == c_slot.subject:
            return c, {"claim_slot": c_slot.to_dict(), "fact_slot": c.slot.to_dict(), "value_key": c.key}
    return None


def _outside_condition(claim: Any, info: dict[str, Any], sources: list[Source]) -> Any:
    """The candidate whose fact limits its rule to a period ("only during semester breaks") when the claim,
    same destination and subject, states another one; None otherwise."""
    from ..kb import slots

    c = info.get("claim_slot", {})
    if not c.get("period") or not c.get("subject"):
        return None
    for cand in slots.candidates(claim, [s.fact for s in sources]):
        f = cand.slot
        if f.condition and f.period != c["period"] and f.subject == c["subject"] and \
                f.destination == c.get("destination"):
            return cand
    return None


def _as_written(pick: Any) -> str:
    """The replacement as the fact writes it: a date in the statement's own words ("1 January 2024", not the
    value's "2024-01-01": the gate once served "(which will happen in 2024-01-01 [1])")."""
    label = pick.label
    m = re.fullmatch(r"(\d{4})-(\d\d)-(\d\d)", label)
    if m:
        from ..kb.claims import extract_claims

        want = (int(m.group(2)), int(m.group(3)))
        for c in extract_claims(pick.fact.statement):
            v = c.value or {}
            if str(c.kind) == "date" and (v.get("month"), v.get("day")) == want and v.get("year") in (None, int(m.group(1))):
                label = pick.fact.statement[c.span[0]:c.span[1]]
                break
    return label


def _place_names() -> dict[str, str]:
    from ..kb.schema import DESTINATIONS

    names = {c: re.escape(n) for c, n in DESTINATIONS.items()}
    names["GB"] = r"(?:UK|U\.K\.|United\s+Kingdom|Britain|England|Scotland|Wales)"
    names["US"] = r"(?:US|USA|U\.S\.|United\s+States|America)"
    return names


_PLACE_NAMES = _place_names()


def _decide(claim: Any, text: str, question: str, sources: list[Source]) -> tuple[Any, str, dict[str, Any]]:
    """(the candidate that provably fills the claim's slot or None, why, the slots compared)."""
    from ..kb import slots

    c_slot, clause = _claim_slot(claim, text, question)
    facts = [s.fact for s in sources]
    cands = slots.candidates(claim, facts)
    pick, why = slots.choose(c_slot, clause, cands)
    if pick is None:
        # A scheme or rule named in the sentence pins what the figure is about, where the words around it
        # did not ("The Deutschlandstipendium pays €250 a month").
        s0, s1 = _sentence(text, claim.span[0])
        anchored = slots.anchored_subject(text[s0:s1], facts)
        if anchored and anchored != c_slot.subject:
            from dataclasses import replace

            c_slot = replace(c_slot, subject=anchored)
            pick, why = slots.choose(c_slot, clause, cands)
            why = f"{why} (subject from the scheme the sentence names)" if pick is not None else why
    info: dict[str, Any] = {"claim_slot": c_slot.to_dict()}
    if pick is not None:
        info.update({"fact_slot": pick.slot.to_dict(), "value_key": pick.key})
    return pick, why, info


def _supported_for_another_slot(claim: Any, text: str, question: str, sources: list[Source]) -> Any:
    """A figure that a fact states, but for another level / group / period / place than the student's
    ("10 hours a week" is the below-degree limit; the student asked about a master's). Returns what
    ``_decide`` returns for it, or None when the figure fits the claim's slot."""
    from ..kb import slots

    fact = next((s.fact for s in sources if s.fact.id == claim.fact_id), None)
    if fact is None or slots.claim_number(claim) is None or str(claim.kind) == "entity":
        return None
    c_slot, _ = _claim_slot(claim, text, question)
    own = [c for c in slots.candidates(claim, [fact]) if slots._label_number(c.label) == slots.claim_number(claim)]
    if not own:
        return None
    matches = [slots.same_slot(c_slot, c.slot) for c in own]
    reasons = _QUALIFIER_REASONS
    s0, s1 = _sentence(text, claim.span[0])
    clause, _ = slots.clause_around(text[s0:s1], claim.span[0] - s0, claim.span[1] - s0)
    if len(slots.places_in(clause)) == 1:
        # The claim's own clause names one place ("If you study in Leeds, you must show £1,483 per month"):
        # a figure the facts give for the other place is wrong for this student (the London figure, cited,
        # was served for Leeds on the real-style set).
        reasons = (*reasons, "different place")
    if any(m.ok for m in matches) or not any(m.reason.startswith(reasons) for m in matches):
        return None
    if any(slots.same_slot(c_slot, c.slot, lenient=True).ok for c in own):
        return None  # the mismatch is only a qualifier the claim leaves unstated: nothing says it is wrong
    pick, why, info = _decide(claim, text, question, sources)
    if pick is not None and slots._label_number(pick.label) == slots.claim_number(claim):
        return None
    return pick, (why if pick is not None else matches[0].reason), info


_NATIONALITY_RULE = re.compile(r"\b(?i:citizens|nationals)\s+of\b|\bfor\s+[A-Z][\w.]*(?:\s+[A-Z][\w.]*){0,2}\s+"
                               r"(?:citizens|nationals)\b")


def correct_rules(text: str, question: str, sources: list[Source], context: str = "") -> tuple[str, list[GateChange]]:
    """Sentences whose yes/no contradicts a retrieved fact that states the rule are replaced by the fact.

    ``context``: the earlier user turns, which may say where the student is from ("I'm from India")."""
    from dataclasses import replace

    from ..kb.coverage import origin_codes
    from ..kb.geo import detect_destinations
    from ..kb.slots import (PARTNER_SUBJECTS, answer_rule, degrees_in, denial_rule, level_in, polarity_conflict,
                            rule_of, rules_of)

    fallback = context_destination(question, sources, context)
    fact_rules = []
    for s in sources:
        if _NATIONALITY_RULE.search(s.fact.statement):
            # "Citizens of the EU, EEA ... do not need a visa": a rule for the nationalities it lists, decided
            # per student by premises' eligibility check; as a general yes/no it would "correct" a Ghanaian's
            # right "you need a visa" into the exemption.
            continue
        fact_rules += [(s, rule) for rule in rules_of(s.fact.statement, s.fact.destination)]
    edits, unheld = [], []
    origins: tuple[str, ...] | None = None
    for i, (a, b) in enumerate(sentences(text)):
        sentence = text[a:b]
        if sentence.strip():
            named = detect_destinations(sentence)
            dest = named[0] if named else fallback
            claim = rule_of(sentence, dest, claim=True)
            if claim is None and i == 0:  # "No." / "Yes, ..." answering the question's own yes/no
                claim = answer_rule(sentence, question, dest, context)
            if claim is None:  # "The government of South Korea has no such policy."
                claim = denial_rule(sentence, question, dest, context)
            if claim is not None:
                if claim.level is None:  # the question says who is asking ("during my taught master's")
                    claim = replace(claim, level=level_in(question))
                if claim.degree is None:
                    asked = degrees_in(question)
                    claim = replace(claim, degree=asked[0] if len(asked) == 1 else None)
                if any(rule.origins for _, rule in fact_rules):
                    if origins is None:  # only asked for when a fact's rule lists countries (a GeoNames scan)
                        origins = tuple(dict.fromkeys(origin_codes(question) + origin_codes(context)))
                    claim = replace(claim, origins=origins)
                for s, rule in fact_rules:
                    why = polarity_conflict(claim, rule)
                    if why:
                        edits.append((a, b, s, rule, claim, why))
                        break
                else:
                    if (claim.who == "partner" or claim.subject in PARTNER_SUBJECTS) and not any(
                            r.subject == claim.subject and r.who == claim.who for _, r in fact_rules):
                        # A verdict on the partner's or family's rights that no retrieved fact states: "No, your
                        # wife cannot work on a UK student visa" (false for a PhD student's dependants) stood
                        # unmarked beside student-work facts (lead's reading, session 5).
                        unheld.append((a, b))
    changes = []
    # The fact goes in once, at the first reversed sentence; a later sentence that reverses the same rule
    # ("No, you cannot stay ... The government of South Korea has no such policy.") goes with the fact recorded.
    # Edits and marks are applied from the end backwards so earlier spans stay valid.
    first = {}
    for k, (_, _, s, _, _, _) in enumerate(edits):
        first.setdefault(s.fact.id, k)
    ops = [(a, b, k, edit) for k, (a, b, *edit) in enumerate(edits)] + [(a, b, -1, None) for a, b in unheld]
    for a, b, k, edit in sorted(ops, key=lambda o: o[0], reverse=True):
        if edit is None:
            changes.append(GateChange("marked_unverified", text[a:b].strip(), kind="partner_rule",
                                      reason="a rule about the student's partner or family that no retrieved "
                                             "official fact states"))
            text = _mark_sentence(text, a, b)
            continue
        s, rule, claim, why = edit
        slot = {"rule": rule.subject, "claim": claim.to_dict(), "fact": rule.to_dict()}
        if first[s.fact.id] != k:
            changes.append(GateChange("removed", text[a:b].strip(), fact_id=s.fact.id, citation=s.n,
                                      reason=f"repeats a verdict the official rule [{s.n}] corrects: {why}",
                                      slot=slot, sentence=text[a:b].strip(), kind="reversed_verdict"))
            rest = text[b:].lstrip(" ")
            text = (text[:a] if rest.strip() else text[:a].rstrip()) + rest
            continue
        changes.append(GateChange("corrected_rule", text[a:b].strip(), s.fact.statement, s.fact.id, s.n,
                                  reason=why, slot=slot))
        text = text[:a] + f"{s.fact.statement} [{s.n}]" + text[b:]
    changes.reverse()
    return text, changes


def drop_unsupported_rules(text: str, sources: list[Source]) -> tuple[str, list[GateChange]]:
    """In a policy answer, the model's own rule sentences that no retrieved fact supports: a stated rule
    *change* loses its sentence (our sources would have to say a rule changed; an invented change is the
    most believable kind of false rule, and "(unverified)" after it still reads as news); any other stated
    obligation, permission or exemption is marked "(unverified)" at the end of its sentence."""
    from .checks import unsupported_rules

    found = unsupported_rules(text, [s.fact for s in sources], sentences(text))
    changes: list[GateChange] = []
    for f in reversed(found):
        a, b = f.span
        if f.kind == "rule_change":
            changes.append(GateChange("removed_rule", f.sentence, reason=f.reason, kind=f.kind, sentence=f.sentence))
            text = text[:a] + text[b:].lstrip(" ")
        else:
            body_end = a + len(text[a:b].rstrip())
            end = body_end
            while end > a and text[end - 1] in ".!;:\"”'*_)":
                end -= 1
            if text[end - 1:end] == "]":  # keep a trailing citation with its claim
                end = body_end
            changes.append(GateChange("marked_unverified", f.sentence, reason=f.reason, kind=f.kind))
            text = _mark(text, end)
    changes.reverse()
    return text, changes


def drop_prompt_talk(text: str, sources: list[Source]) -> tuple[str, list[GateChange]]:
    """Sentences about the prompt's facts ("The official facts you provided are correct.") and claims put in
    the official facts' mouth that they do not make go, each recorded."""
    from .checks import prompt_talk

    found = prompt_talk(text, {s.n: s.fact for s in sources}, sentences(text))
    changes: list[GateChange] = []
    for f in reversed(found):
        a, b = f.span
        if f.kind == "prompt_lead_in":
            changes.append(GateChange("removed", text[a:b].strip(" ,"), reason=f.reason, kind=f.kind,
                                      sentence=f.sentence))
            text = text[:a] + text[b:b + 1].upper() + text[b + 1:]
            continue
        changes.append(GateChange("removed", f.sentence, reason=f.reason, kind=f.kind, sentence=f.sentence))
        text = text[:a] + text[b:].lstrip(" ")
    changes.reverse()
    return text, changes


def _mark_sentence(text: str, a: int, b: int) -> str:
    """``text`` with "(unverified)" at the end of the sentence [a, b), before its closing punctuation."""
    at = a + len(text[a:b].rstrip())
    while at > a and text[at - 1] in ".!;:\"”'*_)":
        at -= 1
    return _mark(text, at)


def mark_superlatives(text: str, sources: list[Source], kb: Any = None) -> tuple[str, list[GateChange]]:
    """A ranking or comparison no retrieved fact makes ("The cheapest city in Ireland for students is Dublin")
    is marked "(unverified)" at the end of its sentence; one with a destination the KB has no facts on
    ("Germany is cheaper than Poland") goes: the answer's "Not covered" line says what we hold on it."""
    from .checks import unsupported_superlatives

    changes: list[GateChange] = []
    for f in reversed(unsupported_superlatives(text, [s.fact for s in sources], sentences(text), kb)):
        if f.kind == "uncovered_comparison":
            a, b = f.span
            changes.append(GateChange("removed", f.sentence, reason=f.reason, kind=f.kind, sentence=f.sentence))
            rest = text[b:].lstrip(" ")
            text = (text[:a] if rest.strip() else text[:a].rstrip()) + rest
            continue
        changes.append(GateChange("marked_unverified", f.sentence, reason=f.reason, kind=f.kind))
        text = _mark_sentence(text, *f.span)
    changes.reverse()
    return text, changes


def drop_unbounded_durations(text: str, sources: list[Source], destination: str | None) -> tuple[str, list[GateChange]]:
    """A stay, visa or permit given no end ("OPT can be extended to any length of time"): its sentence goes
    when a retrieved fact states the length (recorded with that fact), else it is marked "(unverified)"."""
    from .checks import unbounded_durations

    number = {s.fact.id: s.n for s in sources}
    found = unbounded_durations(text, [s.fact for s in sources], sentences(text), destination)
    changes: list[GateChange] = []
    for f in reversed(found):
        a, b = f.span
        if f.fact_id is not None:
            changes.append(GateChange("removed", f.sentence, reason=f.reason, fact_id=f.fact_id,
                                      citation=number.get(f.fact_id), kind=f.kind, sentence=f.sentence))
            text = text[:a] + text[b:].lstrip(" ")
        else:
            changes.append(GateChange("marked_unverified", f.sentence, reason=f.reason, kind=f.kind))
            text = _mark_sentence(text, a, b)
    changes.reverse()
    return text, changes


def mark_undated_deadlines(text: str, sources: list[Source], asked: str) -> tuple[str, list[GateChange]]:
    """In any answer, a deadline or dated change with a year or month that no retrieved fact (nor the
    student) gives ("submit your application by the end of 2025") is marked "(unverified)" where it ends."""
    from .checks import undated_deadlines

    found = undated_deadlines(text, [s.fact for s in sources], sentences(text), asked)
    changes: list[GateChange] = []
    for f in reversed(found):
        text = _mark(text, f.span[1])
        changes.append(GateChange("marked_unverified", f.phrase, reason=f.reason, kind=f.kind))
    changes.reverse()
    return text, changes


_LETTERED_CITATION = re.compile(r"\s?\[\d{1,2}[a-z]\]")


def drop_unknown_citations(text: str, known: set[int]) -> tuple[str, list[int]]:
    """``text`` without citation markers that point at no source: numbers no source has, and lettered ones
    ("[1a]", "[1b]": copied from an earlier turn, served as if they were sources)."""
    dropped: list[int] = []
    for m in reversed(list(_LETTERED_CITATION.finditer(text))):
        dropped.append(int(re.sub(r"\D", "", m.group(0))))
        text = text[:m.start()] + text[m.end():]

    def keep(m: re.Match) -> str:
        if int(m.group(1)) in known:
            return m.group(0)
        dropped.append(int(m.group(1)))
        return ""

    return _CITATION.sub(keep, text), dropped


def cited_numbers(text: str) -> set[int]:
    return _cited_in(text)
