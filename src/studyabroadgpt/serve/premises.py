"""False premises in the question: where the knowledge base states the rule, an answer that goes along with a
premise the facts contradict gets a cited correction.

Three kinds, each only where the KB says so (nothing is inferred from general knowledge):

* a figure the student states about a rule ("I heard I can work 40 hours a week during term") that a fact in
  the same slot gives differently (``kb.slots`` decides "same slot", as for the gate);
* a named visa, scheme or test the question attaches to the wrong country (OPT for Canada, a Tier 4 visa
  that the KB says was replaced) — the audit's own misattribution check, run on the question;
* a test the question asks about for a destination whose facts never name it while another destination's
  do (the GRE for a UK master's, the UCAT for US medicine);
* a city placed in the wrong country ("Melbourne, New Zealand").
"""
from __future__ import annotations

import re
from typing import Any

from ..kb.geo import CITIES
from .gate import GateChange, describe_expected
from .grounding import Source

_COUNTRY_NAMES = {
    "GB": r"\b(?:uk|u\.k\.|united kingdom|britain|england|scotland|wales|british)\b",
    "US": r"\b(?:usa|u\.s\.a?\.|united states|america|american)\b|\bUS\b",
    "CA": r"\b(?:canada|canadian)\b", "AU": r"\b(?:australia|australian)\b",
    "DE": r"\b(?:germany|german)\b", "IE": r"\b(?:ireland|irish)\b",
    "NL": r"\b(?:netherlands|dutch|holland)\b", "NZ": r"\b(?:new zealand|nz)\b", "FR": r"\b(?:france|french)\b",
}


def _country(code: str) -> str:
    from ..kb.schema import DESTINATIONS

    return DESTINATIONS.get(code, code)


def _cite(fact: Any, sources: list[Source]) -> tuple[str, int | None]:
    n = next((s.n for s in sources if s.fact.id == fact.id), None)
    if n is not None:
        return f" [{n}]", n
    return f" ([{fact.source_title}]({fact.source_url}))", None


def premise_notes(auditor: Any, question: str, answer: str, sources: list[Source]) -> list[tuple[str, GateChange]]:
    """(note, change) for each false premise of the question that the answer does not already correct."""
    notes: list[tuple[str, GateChange]] = []
    if not question.strip():
        return notes
    kb = getattr(auditor, "kb", None)
    notes += _city_premises(question)
    notes += _figure_and_name_premises(auditor, question, answer, sources)
    if kb is not None:
        notes += _test_premises(question, answer, sources, kb)
    return notes


def _note(text: str) -> str:
    return f"**Check the premise:** {text}"


def _city_premises(question: str) -> list[tuple[str, GateChange]]:
    out = []
    low = question.lower()
    for city, home in CITIES.items():
        if not re.search(rf"\b{re.escape(city)}\b", low):
            continue
        named = [c for c, rx in _COUNTRY_NAMES.items() if re.search(rx, question, re.IGNORECASE)]
        if named and home not in named:
            wrong = ", ".join(_country(c) for c in named)
            text = (f"{city.title()} is in {_country(home)}, not {wrong}: the rules that apply are "
                    f"{_country(home)}'s.")
            out.append((_note(text), GateChange("corrected_premise", f"{city.title()} in {wrong}",
                                                f"{city.title()} is in {_country(home)}",
                                                reason="city placed in the wrong country",
                                                slot={"city": city, "country": home, "named": named})))
    return out


def _figure_and_name_premises(auditor: Any, question: str, answer: str,
                              sources: list[Source]) -> list[tuple[str, GateChange]]:
    from ..kb import slots
    from ..kb.claims import sentence_bounds

    by_id = {s.fact.id: s.fact for s in sources}
    result = auditor.audit_answer(question, question="", facts=[s.fact for s in sources])
    out = []
    for c in result.claims:
        if str(c.status) != "contradicted" or not c.fact_id:
            continue
        expected = describe_expected(getattr(c, "expected", None))
        if not expected:
            continue
        if str(c.kind) == "entity":
            fact = by_id.get(c.fact_id) or getattr(auditor, "kb", None).by_id.get(c.fact_id)
            if fact is None:
                continue
            cite, n = _cite(fact, sources)
            out.append((_note(f"{expected}. {fact.statement}{cite}"),
                        GateChange("corrected_premise", c.text, expected, fact.id, n,
                                   reason="a name the question attaches to the wrong country",
                                   slot={"entity": c.text})))
            continue
        fact = by_id.get(c.fact_id)
        if fact is None:
            continue
        s0, s1 = sentence_bounds(question, c.span[0])
        c_slot = slots.slot_of(question[s0:s1], c.span[0] - s0, c.span[1] - s0, c.destination)
        f_slot, key = slots.fact_value_slot(fact, expected)
        match = slots.same_slot(c_slot, f_slot)
        if not match.ok:
            continue
        number = re.search(r"\d[\d,]*(?:\.\d+)?", expected)
        if number and number.group(0) in answer:
            continue  # the answer already gives the official figure
        cite, n = _cite(fact, sources)
        out.append((_note(f"the question says {c.text}, but the official figure is {expected}{cite}."),
                    GateChange("corrected_premise", c.text, expected, fact.id, n, reason="same slot",
                               slot={**match.to_dict(), "value_key": key})))
    return out


def _test_premises(question: str, answer: str, sources: list[Source], kb: Any) -> list[tuple[str, GateChange]]:
    from ..kb.claims import TEST_NAMES, canonical_test
    from ..kb.geo import detect_destinations

    asked = detect_destinations(question)
    if len(asked) != 1:
        return []
    dest = asked[0]
    out = []
    tests = {canonical_test(m.group(1)) for m in re.finditer(r"(?<![\w-])(" + "|".join(TEST_NAMES) + r")(?![\w-])",
                                                              question)}
    for test in sorted(tests):
        rx = re.compile(r"(?<![\w-])" + re.escape(test) + r"(?![\w-])", re.IGNORECASE)
        naming = [f for f in kb.facts if rx.search(f.statement) or any(rx.search(e.name) or
                                                                    any(rx.search(a) for a in e.aliases)
                                                                    for e in f.entities)]
        if not naming or any(f.destination == dest for f in naming):
            continue
        where = sorted({f.destination for f in naming})
        fact = next((f for f in naming if f.topic == "admissions_tests"), naming[0])
        cite, n = _cite(fact, sources)
        text = (f"none of our official sources for {_country(dest)} asks for the {test}; our sources name it for "
                f"{', '.join(_country(c) for c in where)}: {fact.statement}{cite} Check the course's own "
                "admissions page for what it requires.")
        out.append((_note(text), GateChange("corrected_premise", f"the {test} for {_country(dest)}",
                                            f"the {test} is named for {', '.join(where)} only", fact.id, n,
                                            reason="a test the destination's official sources do not ask for",
                                            slot={"test": test, "destination": dest, "named_for": where})))
    return out
