"""The offline ``template`` writer: questions a student would type and answers built only from KB facts.

Every specific in an answer (a figure, a date, a named visa or scholarship) is copied from a fact's sourced
statement, never made up; everything around it — headings, steps, advice for this student — is deliberately
free of specifics. That is what keeps a template answer auditable: the audit finds each claim in the facts the
answer cites. Variety comes from many phrasings, personas and the order and shape of the parts.
"""
from __future__ import annotations

import random
import re
from typing import Any

from ..kb.audit import is_policy_sensitive
from ..kb.schema import POLICY_SENSITIVE, Fact
from .plan import Persona

TOPIC_LABEL = {
    "student_visa": "the student visa", "proof_of_funds": "proof of funds", "english_tests": "English tests",
    "admissions_tests": "admissions tests", "work_rights": "working while you study",
    "post_study_work": "working after graduation", "health_cover": "health cover",
    "tuition_costs": "tuition fees", "living_costs": "living costs", "scholarships": "scholarships",
    "application_timelines": "the application timeline", "dependants": "bringing your family",
    "accommodation": "accommodation", "credential_recognition": "getting your qualifications recognised",
    "arrival_registration": "arrival and registration",
}
HEADINGS = {
    "student_visa": ["Student visa for {country}", "Which visa you need for {country}", "Your {country} study visa"],
    "proof_of_funds": ["Proving your funds for {country}", "Money you must show", "Financial requirements"],
    "english_tests": ["English test requirements", "English language requirements in {country}",
                      "Which English test to take"],
    "admissions_tests": ["Admissions tests", "Entrance tests for {country}", "Do you need an admissions test?"],
    "work_rights": ["Working while you study in {country}", "Part-time work rules", "Work rights during your course"],
    "post_study_work": ["Staying to work after graduation", "Post-study work in {country}", "After you graduate"],
    "health_cover": ["Health cover in {country}", "Health insurance for students", "Healthcare while you study"],
    "tuition_costs": ["Tuition fees in {country}", "What tuition costs", "Fees for international students"],
    "living_costs": ["Living costs in {country}", "Budgeting for daily life", "What living costs look like"],
    "scholarships": ["Scholarships for {country}", "Funding options", "Scholarships worth a look"],
    "application_timelines": ["Application timeline", "When to apply for {country}", "Key dates and timing"],
    "dependants": ["Bringing your family to {country}", "Dependants", "Family members and your visa"],
    "accommodation": ["Finding accommodation", "Housing in {country}", "Where to live"],
    "credential_recognition": ["Recognition of your qualifications", "Will {country} recognise your degree?",
                               "Credential recognition"],
    "arrival_registration": ["After you arrive in {country}", "Arrival and registration", "Your first weeks"],
}
OPENERS = {
    "student_visa": ["Which visa do I need to study {degree} in {country}?",
                     "what visa do i need for {degree} in {city}?",
                     "Can you explain the student visa process for {country}? I'm planning {degree}.",
                     "Do I need a visa to study in {country}, and how does the application work?",
                     "I got an offer for {degree} in {city}. What do I need for the visa?"],
    "proof_of_funds": ["How much money do I need to show for a student visa in {country}?",
                       "What counts as proof of funds for studying in {city}?",
                       "how much money should be in my bank account for a {country} study visa",
                       "Do I need to prove I can pay for living costs when I apply to study in {country}?"],
    "english_tests": ["Which English test do I need for {degree} in {country}?",
                      "What IELTS or other English test score do universities in {country} ask for?",
                      "Is my English test enough to study in {city}?",
                      "Do I need to take an English test for {country}?"],
    "admissions_tests": ["Do I need an admissions test like the SAT, GRE or GMAT for {degree} in {country}?",
                         "Which entrance exams matter for {degree} in {country}?",
                         "do universities in {country} ask for admissions tests?"],
    "work_rights": ["Can I work part-time while studying in {country}?",
                    "How many hours can I work as a student in {city}?",
                    "What are the work rules for international students in {country}?",
                    "can i get a job during my studies in {country}"],
    "post_study_work": ["Can I stay and work in {country} after I graduate?",
                        "What are my options to work in {country} after finishing {degree}?",
                        "How long can I stay in {country} after my degree to look for work?"],
    "health_cover": ["Do I need health insurance to study in {country}?",
                     "How does healthcare work for international students in {city}?",
                     "What health cover does a student visa for {country} require?"],
    "tuition_costs": ["How much are tuition fees in {country} for international students?",
                      "What will {degree} in {country} cost me in fees?",
                      "is tuition expensive in {country}?"],
    "living_costs": ["How much does it cost to live in {city} as a student?",
                     "What should I budget for living costs in {country}?",
                     "Is {city} affordable for students?"],
    "scholarships": ["Are there scholarships for international students in {country}?",
                     "How can I fund {degree} in {country}?",
                     "Which scholarships could help me study in {country}?"],
    "application_timelines": ["When should I start applying to study in {country}?",
                              "What's the timeline for applying to {degree} in {country}?",
                              "how early should i apply for the visa and university in {country}"],
    "dependants": ["Can I bring my spouse and children while I study in {country}?",
                   "Can my family come with me to {country} on my student visa?",
                   "What are the rules for dependants of students in {country}?"],
    "accommodation": ["How do I find accommodation in {city}?",
                      "What housing options do students have in {country}?",
                      "Where do international students usually live in {city}?"],
    "credential_recognition": ["Will my qualifications from {origin} be recognised in {country}?",
                               "How do I get my degree from {origin} assessed for {country}?",
                               "Do universities in {country} accept qualifications from {origin}?"],
    "arrival_registration": ["What do I need to do after I arrive in {country}?",
                             "Are there registration steps after landing in {city}?",
                             "What should I sort out in my first weeks in {country}?"],
}
FOLLOW_UPS = {
    "student_visa": ["And which visa do I actually apply for?", "How does the visa application itself work?",
                     "What else does the visa need?"],
    "proof_of_funds": ["How much money will I need to show?", "What about proof of funds?",
                       "Do I have to prove I can afford it?"],
    "english_tests": ["What English test score will I need?", "Which English test should I take?",
                      "Do I also need an English test?"],
    "admissions_tests": ["Do I need any admissions test too?", "What about entrance exams?"],
    "work_rights": ["Can I work part-time alongside that?", "How many hours can I work while studying?",
                    "Will I be allowed to work during the course?"],
    "post_study_work": ["Can I stay and work afterwards?", "What happens after I graduate — can I work there?",
                        "Is there a post-study work option?"],
    "health_cover": ["Do I need health insurance as well?", "What about health cover?",
                     "How does healthcare work for me?"],
    "tuition_costs": ["How much are the tuition fees?", "What will tuition cost?"],
    "living_costs": ["What should I budget for living costs?", "How expensive is daily life there?"],
    "scholarships": ["Are there scholarships that could help?", "How could I get funding?"],
    "application_timelines": ["When should I start all of this?", "What's the timeline?",
                              "How early should I apply?"],
    "dependants": ["Can my family come with me?", "Could my spouse join me?"],
    "accommodation": ["Where should I look for housing?", "How do I find somewhere to live?"],
    "credential_recognition": ["Will my qualifications be recognised?", "How do I get my degree assessed?"],
    "arrival_registration": ["What do I need to do once I arrive?", "Are there steps after I land?"],
}
STEPS = {
    "student_visa": ["Accept your offer and ask your university for the documents it issues for the visa{docs}.",
                     "Gather your passport, financial evidence and any test results the application lists.",
                     "Apply on the official government website and book any biometrics or interview appointment.",
                     "Read your decision carefully and check the conditions attached to your visa."],
    "proof_of_funds": ["Work out the total you must show: the living-cost amount plus any unpaid fees.",
                       "Keep the money in an account in your name (or an accepted sponsor's) for the required time.",
                       "Get official statements or letters that show the balance and the dates.",
                       "Keep the documents together with your visa application."],
    "english_tests": ["Check the exact test and score your university and visa route accept.",
                      "Book a test date that leaves time for a retake before your deadlines.",
                      "Send the official score report to the university if it asks for one."],
    "admissions_tests": ["Check each programme's admissions page: requirements differ by university.",
                         "If a test is required, plan your preparation and test date around the deadline.",
                         "Send official scores directly from the test body if the university asks."],
    "work_rights": ["Read the work conditions printed on your visa or permit.",
                    "Track your hours during term time and keep payslips.",
                    "Ask your university's international office before taking on extra work."],
    "post_study_work": ["Check the eligibility conditions well before your course ends.",
                        "Keep your immigration status valid until you apply.",
                        "Gather your completion letter and identity documents for the application."],
    "health_cover": ["Confirm which health cover your visa needs before you apply.",
                     "Arrange or pay for it as part of your application where that is required.",
                     "Register with a local doctor or clinic after you arrive."],
    "tuition_costs": ["Look up the international fee on your programme's official page.",
                      "Check when the deposit and instalments are due.",
                      "Ask the university about payment plans and fee scholarships."],
    "living_costs": ["Build a monthly budget for rent, food, transport and study costs.",
                     "Compare it with the official living-cost figures for your visa.",
                     "Keep an emergency buffer for the first months."],
    "scholarships": ["Make a shortlist of scholarships you are eligible for.",
                     "Note each deadline: many close long before the course starts.",
                     "Prepare references and personal statements early."],
    "application_timelines": ["Write down every deadline: university, scholarship and visa.",
                              "Work backwards to plan your tests, documents and references.",
                              "Leave a buffer for delays in processing."],
    "dependants": ["Check whether your course level allows dependants.",
                   "Work out the extra funds you will need to show for each family member.",
                   "Prepare relationship documents such as marriage and birth certificates."],
    "accommodation": ["Apply for university housing as soon as you accept your offer.",
                      "Never pay a deposit for a place you have not verified.",
                      "Budget for deposits and the first month's rent."],
    "credential_recognition": ["Find out which body assesses qualifications for your destination.",
                               "Order official transcripts and certified translations.",
                               "Submit the assessment early: it can take several weeks."],
    "arrival_registration": ["Carry your visa documents and offer letter when you travel.",
                             "Complete any registration required after arrival on time.",
                             "Open a bank account and register with a doctor once you are settled."],
}
STEPS_HEADINGS = ["### Next steps", "### What to do", "### How to go about it", "**Steps:**", "### Checklist"]
INTROS = [
    "Here is what the official sources say for {country}.",
    "Good question: for {degree} in {country}, these are the rules that matter.",
    "This depends on the official rules for {country}, so here they are with their sources.",
    "Let me break this down for your situation.",
    "",
]
FOLLOW_INTROS = [
    "Following on from {anchor}, here is what to know about {label} in {country}.",
    "Good follow-up. Alongside {anchor}, you should know this about {label}.",
    "Yes, and it connects to {anchor}. On {label}:",
    "Building on that: here is what applies to {label}.",
    "Sure. For {label} in {country}:",
]
FOLLOW_LEADS = [
    "You mentioned {anchor}. {question}",
    "Thanks, that helps. {question}",
    "OK, so {anchor} is sorted. {question}",
    "Got it, thanks for explaining {anchor}. {question}",
    "{question}",
    "That's useful. Related question: {question_lower}",
]
CAVEATS = [
    "**Check before you rely on this:** rules like these change, so confirm the current rules on the official "
    "page ({title}) before you apply: {url}",
    "Immigration rules change often, so check the official page before you submit anything: [{title}]({url}).",
    "These details come from {title} (as of {as_of}); rules may change, so double-check the official website "
    "before you apply.",
    "> Please verify this on the official source before you act on it: {url}",
]
BUDGET_TIPS = {
    "tight": ["Since you said {budget}, plan for the official figures rather than the minimum you hope to get by on, "
              "and look at funding early.", "With a tight budget, a written month-by-month plan will help you."],
    "moderate": ["With a moderate budget, a simple monthly plan and an emergency buffer will go a long way."],
    "comfortable": ["Even with funding in place, keep the official evidence of your finances ready."],
}
ENGLISH_TIPS = {
    "intermediate": "Since you haven't taken a test yet, take a practice test first so you know where you stand.",
    "beginner": "Since you want to improve your English, ask your university about pre-sessional English courses.",
    "advanced": "As you studied in English, ask your university whether it accepts that as evidence.",
    "first-language": "As a native speaker, check whether your nationality is exempt from a test.",
}


def _country_name(dest: str) -> str:
    from ..kb.schema import DESTINATIONS

    name = DESTINATIONS[dest]
    return f"the {name}" if name.startswith(("United", "Netherlands")) else name


def _fill(template: str, persona: Persona, dest: str, **extra) -> str:
    return template.format(country=_country_name(dest), city=persona.city or _country_name(dest),
                           degree=persona.degree_phrase, origin=persona.origin, budget=persona.budget_phrase,
                           **extra)


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:] if s else s


def opening_question(rng: random.Random, topic: str, persona: Persona, dest: str) -> str:
    q = _fill(rng.choice(OPENERS[topic]), persona, dest)
    context = rng.choice([
        "", f"I'm from {persona.origin}. ", f"Hi! I'm from {persona.origin} and {persona.budget_phrase}. ",
        f"I'm planning {persona.degree_phrase} and {persona.english_phrase}. ",
    ])
    if context and q[:1].islower():
        q = _cap(q)
    return (context + q).strip()


def anchor_of(facts: list[Fact], topic: str, previous_answer: str = "") -> str:
    """What a follow-up can point back to: a visa/test/scheme the last answer actually named, else its topic."""
    said = previous_answer.lower()
    for f in facts:
        for e in f.entities:
            if e.type not in ("visa", "scholarship", "test", "insurance", "programme"):
                continue
            for name in (e.name, *e.aliases):
                if len(name) < 45 and len(name) > 3 and name.lower() in said:
                    return name if name.lower().startswith("the ") else f"the {name}"
    return TOPIC_LABEL[topic]


def follow_up_question(rng: random.Random, topic: str, prev_facts: list[Fact], prev_topic: str,
                       previous_answer: str = "") -> str:
    question = rng.choice(FOLLOW_UPS[topic])
    if topic == prev_topic:
        question = rng.choice([f"Is there anything else about {TOPIC_LABEL[topic]} I should know?",
                               f"What else should I know about {TOPIC_LABEL[topic]}?"])
    lead = rng.choice(FOLLOW_LEADS)
    return lead.format(anchor=anchor_of(prev_facts, prev_topic, previous_answer), question=question,
                       question_lower=question[:1].lower() + question[1:])


def answer(rng: random.Random, topic: str, facts: list[Fact], persona: Persona, dest: str,
           previous: tuple[str, list[Fact], str] | None = None, question: str = "",
           cite: dict[str, int] | None = None) -> str:
    """A markdown answer citing ``facts`` as [1], [2]… with a Sources list.

    With ``cite`` (fact id -> number in a grounded system prompt) the answer cites those numbers instead and
    carries no URL and no Sources list: the facts are in the prompt and the server appends the sources.
    """
    parts: list[str] = []
    heading = _fill(rng.choice(HEADINGS[topic]), persona, dest)
    style = rng.random()
    if style < 0.7:
        parts.append(f"{rng.choice(['##', '###'])} {_cap(heading)}")
    elif style < 0.85:
        parts.append(f"**{_cap(heading)}**")
    if previous is None:
        intro = _fill(rng.choice(INTROS), persona, dest)
    else:
        prev_topic, prev_facts, prev_answer = previous
        intro = _fill(rng.choice(FOLLOW_INTROS), persona, dest, anchor=anchor_of(prev_facts, prev_topic, prev_answer),
                      label=TOPIC_LABEL[topic])
    if intro:
        parts.append(_cap(intro))
    if cite is None:
        numbers, sources = source_numbers(facts)
    else:
        numbers, sources = [cite[f.id] for f in facts], []
    parts.append(_fact_block(rng, facts, numbers))
    steps = _steps(rng, topic, facts)
    if steps:
        parts.append(steps)
    tip = _persona_tip(rng, topic, persona)
    if tip:
        parts.append(tip)
    # the audit asks for a caveat whenever the text touches visas, work rights, funds or health cover
    if topic in POLICY_SENSITIVE or is_policy_sensitive("\n".join([question, *parts])) or rng.random() < 0.3:
        src = facts[0]
        if cite is None:
            parts.append(rng.choice(CAVEATS).format(title=src.source_title, url=src.source_url, as_of=src.as_of))
        else:
            parts.append(rng.choice(CITED_CAVEATS).format(title=src.source_title, n=cite[src.id], as_of=src.as_of))
    if sources:
        parts.append("### Sources\n" + "\n".join(f"{i}. {title}: {url} (as of {as_of})"
                                                 for i, (title, url, as_of) in enumerate(sources, start=1)))
    return "\n\n".join(parts)


# Grounded answers point at the numbered fact instead of writing out a URL: a small model that learns to write
# URLs writes wrong ones, while the server attaches the real source list to every grounded answer.
CITED_CAVEATS = [
    "**Check before you rely on this:** rules like these change, so confirm them on the official page "
    "({title}) before you apply [{n}].",
    "Immigration rules change often, so check the official source before you submit anything [{n}].",
    "This comes from {title} (as of {as_of}); rules may change, so double-check the official website before "
    "you apply [{n}].",
]
# Closings of a composed answer to a question that asks no government rule: advice and choices ("Which country
# is best for me?"), and what each university sets (tests, deadlines, scholarships). ``question_kind`` picks.
CLOSINGS = {
    "choice": "Which of these matters most depends on your own plans and budget; tell me the countries or "
              "programmes you are considering and I can give you their official rules, with sources.",
    "university": "Each university and scheme sets its own dates and requirements, so confirm them on the "
                  "programme's own official page.",
}
CITED_RULE_CHECK = "The rule in [{n}] can change, so check its official page before you rely on it."


def question_kind(question: str) -> str:
    """``rule`` (a government rule: visa, work, funds, fees, dependants...), ``university`` (what a university or
    scheme sets, for a destination named) or ``choice`` (advice that names no destination)."""
    from ..kb.geo import detect_destinations
    from ..kb.slots import policy_subject

    from ..kb.relevance import asked_subjects

    # Permanent residence and what the visa asks of the studies are government rules too ("Can I get PR in
    # Canada after my master's?" closed with "Each university and scheme sets its own dates").
    if policy_subject(question) or asked_subjects(question) & {"permanent_residence", "study_progress"}:
        return "rule"
    if _CHOICE.search(question) or not detect_destinations(question, exclude_origins=True):
        return "choice"
    return "university"


_CHOICE = re.compile(r"\b(?:should\s+i|which|best|better|worth|compare|too\s+(?:old|late|young)|am\s+i|recommend\w*|"
                     r"advice|my\s+chances|good\s+(?:idea|choice|option))\b|\bor\b[^?]*\?", re.IGNORECASE)


NOT_COVERED = [  # each one passes serve/checks.says_no_information: it says so AND points to an official source
    "The official facts I have here do not include information on {label} in {country}, so I won't guess "
    "figures or rules. Please check the official website of the {country} government, or your university's "
    "international office, before you rely on anything.",
    "I don't have official information on {label} in {country} in the facts in front of me, so I can't give you "
    "figures or rules for it. Check the official website of the {country} government or your university.",
    "I have no official information about {label} in {country} in the facts I was given, so I can't give you "
    "the details. Your university's international office or the official government website can tell you the "
    "current rules.",
]


def not_covered(rng: random.Random, topic: str, dest: str) -> str:
    """The honest answer when the facts in front of the model do not cover the question (no specifics)."""
    from ..kb.schema import DESTINATIONS

    country = DESTINATIONS.get(dest, dest)
    country = f"the {country}" if country.startswith(("United", "Netherlands")) else country
    return rng.choice(NOT_COVERED).format(label=TOPIC_LABEL.get(topic, topic.replace("_", " ")), country=country)


def compose(rng: random.Random, question: str, facts: list, numbers=None, sources: bool = True) -> str:
    """One answer to ``question`` from facts and/or guidance entries, citing ``numbers`` (default 1..n).

    Fact statements become cited bullets; a guidance entry (``kind == "guidance"``) contributes its summary,
    its steps as a numbered list and its ``watch_out`` items as cautions, each cited. Policy-sensitive content
    gets the official-source caveat. Nothing is stated that is not in an entry.
    """
    numbers = list(numbers) if numbers is not None else list(range(1, len(facts) + 1))
    if len(numbers) != len(facts):
        raise ValueError(f"compose: {len(facts)} facts but {len(numbers)} citation numbers")
    first = facts[0]
    topic = str(getattr(first, "topic", "") or "")
    label = TOPIC_LABEL.get(topic, topic.replace("_", " ")) or "your question"
    country = str(getattr(first, "country", "") or "")
    parts = [f"### {_cap(label)}" + (f" ({country})" if country else "")]
    bullets, steps, cautions = [], [], []
    for f, n in zip(facts, numbers):
        statement = str(f.statement).strip().rstrip(".")
        bullets.append(f"- {statement}. [{n}]")
        if getattr(f, "kind", "fact") == "guidance":
            steps += [f"{str(s).strip().rstrip('.')}. [{n}]" for s in getattr(f, "steps", []) or []]
            cautions += [f"- {str(w).strip().rstrip('.')}. [{n}]" for w in getattr(f, "watch_out", []) or []]
    parts.append("\n".join(bullets))
    if steps:
        parts.append(rng.choice(STEPS_HEADINGS) + "\n" + "\n".join(f"{i}. {s}" for i, s in enumerate(steps, 1)))
    if cautions:
        parts.append("**Watch out:**\n" + "\n".join(cautions))
    sensitive = [(f, n) for f, n in zip(facts, numbers) if getattr(f, "policy_sensitive", False)]
    kind = question_kind(question)
    if kind != "rule":
        # The closing fits the question: "Which country is best for me with a low GPA?" and "I'm 35, am I too
        # old...?" ended "confirm them on the official page ... before you apply", which reads as boilerplate
        # under advice (lead's reading, d1ae96f). A rule the answer cites still gets its one check-the-page line.
        closing = [CLOSINGS[kind]]
        if sensitive:
            closing.insert(0, CITED_RULE_CHECK.format(n=sensitive[0][1]))
        parts.append(" ".join(closing))
    elif sensitive or topic in POLICY_SENSITIVE or is_policy_sensitive("\n".join([question, *parts])):
        f, n = sensitive[0] if sensitive else (first, numbers[0])
        parts.append(rng.choice(CITED_CAVEATS).format(title=f.source_title, n=n, as_of=f.as_of))
    if sources:
        seen: dict[int, Any] = {}
        for f, n in zip(facts, numbers):
            seen.setdefault(n, f)
        parts.append("### Sources\n" + "\n".join(f"{n}. {f.source_title}: {f.source_url} (as of {f.as_of})"
                                                 for n, f in sorted(seen.items())))
    return "\n\n".join(parts)


def _fact_block(rng: random.Random, facts: list[Fact], cite: list[int]) -> str:
    shape = rng.random()
    cited = [(f.statement.rstrip(".") + f". [{n}]") for f, n in zip(facts, cite)]
    if shape < 0.45:
        return "\n".join(f"- {c}" for c in cited)
    if shape < 0.75:
        lines = []
        for f, c in zip(facts, cited):
            label = _lead(f)
            lines.append(f"- **{label}:** {c}" if label else f"- {c}")
        return "\n".join(lines)
    return " ".join(cited)


def source_numbers(facts: list[Fact]) -> tuple[list[int], list[tuple[str, str, str]]]:
    """Citation number per fact and the numbered sources: facts from one page (URL) share one source line."""
    pages: dict[str, list[str]] = {}  # url -> [title, latest as_of]
    for f in facts:
        url = str(f.source_url)
        title, as_of = pages.get(url, [f.source_title, ""])
        pages[url] = [title, max(as_of, str(f.as_of))]  # the most recent reading of that page
    order = list(pages)
    cite = [order.index(str(f.source_url)) + 1 for f in facts]
    return cite, [(pages[url][0], url, pages[url][1]) for url in order]


def _lead(fact: Fact) -> str:
    for e in fact.entities:
        if len(e.name) < 40:
            return _cap(e.name)
    return ""


def _steps(rng: random.Random, topic: str, facts: list[Fact]) -> str:
    if rng.random() < 0.3:
        return ""
    docs = [e.name for f in facts for e in f.entities if e.type == "document"]
    steps = [s.format(docs=f" (such as the {docs[0]})" if docs else "") for s in STEPS[topic]]
    k = rng.randint(min(3, len(steps)), len(steps))
    body = "\n".join(f"{i}. {s}" for i, s in enumerate(steps[:k], start=1))
    return f"{rng.choice(STEPS_HEADINGS)}\n{body}"


def _persona_tip(rng: random.Random, topic: str, persona: Persona) -> str:
    if topic == "english_tests":
        return ENGLISH_TIPS[persona.english]
    if topic in ("proof_of_funds", "living_costs", "tuition_costs", "scholarships", "dependants", "accommodation"):
        return rng.choice(BUDGET_TIPS[persona.budget]).format(budget=persona.budget_phrase)
    return ""
