"""What to write: personas and a topic planner that balances destinations × topics.

The published StudyAbroadGPT data over-represented a handful of prompts (SOPs for Cambridge/MIT MBAs). Here every
(destination, topic) cell that the knowledge base covers gets the same number of conversations, ±1, and each
conversation gets its own student: origin country, degree level, field, budget and English level.
"""
from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field

from ..kb.schema import POLICY_SENSITIVE, Fact
from ..kb.store import KnowledgeBase

ORIGINS = ["India", "Nigeria", "China", "Vietnam", "Brazil", "Pakistan", "Bangladesh", "Nepal", "Kenya", "Ghana",
           "Mexico", "Colombia", "Indonesia", "the Philippines", "Egypt", "Turkey", "Sri Lanka", "Kazakhstan",
           "Morocco", "Ethiopia", "Peru", "Malaysia", "Saudi Arabia", "Uzbekistan"]
DEGREES = {
    "bachelor's": ["a bachelor's in {field}", "an undergraduate degree in {field}", "a BSc in {field}"],
    "master's": ["a master's in {field}", "an MSc in {field}", "a one-year taught master's in {field}"],
    "MBA": ["an MBA", "a full-time MBA", "an MBA focused on {field}"],
    "PhD": ["a PhD in {field}", "a doctorate in {field}", "a funded PhD in {field}"],
    "medicine": ["medicine", "a medical degree", "an MBBS-equivalent medicine programme"],
}
FIELDS = {
    "bachelor's": ["computer science", "mechanical engineering", "economics", "psychology", "architecture",
                   "business management", "nursing", "biomedical science"],
    "master's": ["data science", "public health", "civil engineering", "finance", "international relations",
                 "artificial intelligence", "supply chain management", "environmental science"],
    "MBA": ["technology", "finance", "healthcare management", "entrepreneurship"],
    "PhD": ["molecular biology", "physics", "education", "computer vision", "climate science", "linguistics"],
    "medicine": ["medicine"],
}
BUDGETS = {
    "tight": ["I'm on a tight budget", "money is tight for my family", "I need to keep costs as low as possible"],
    "moderate": ["my family can support me a bit", "I have some savings but not a lot",
                 "I have a moderate budget"],
    "comfortable": ["funding isn't a big worry for me", "my family can cover most costs",
                    "I have a sponsor for most of my costs"],
}
ENGLISH = {
    "first-language": "English is my first language",
    "advanced": "my English is strong and I studied in English",
    "intermediate": "my English is intermediate and I haven't taken a test yet",
    "beginner": "I still need to improve my English",
}
CITIES = {
    "GB": ["London", "Manchester", "Edinburgh", "Glasgow", "Leeds", "Bristol"],
    "US": ["Boston", "New York", "Chicago", "California", "Texas"],
    "CA": ["Toronto", "Vancouver", "Ottawa", "Calgary"],
    "AU": ["Sydney", "Melbourne", "Brisbane", "Perth", "Adelaide"],
    "DE": ["Berlin", "Munich", "Hamburg", "Frankfurt", "Heidelberg"],
    "IE": ["Dublin", "Cork", "Galway", "Limerick"],
    "NL": ["Amsterdam", "Rotterdam", "Utrecht", "Delft", "Groningen"],
    "NZ": ["Auckland", "Wellington", "Christchurch", "Dunedin"],
}

# Topics a student naturally asks about next, most natural first (the follow-up chain walks these).
NEXT_TOPICS = {
    "student_visa": ["proof_of_funds", "english_tests", "work_rights", "health_cover", "application_timelines",
                     "dependants", "arrival_registration"],
    "proof_of_funds": ["living_costs", "tuition_costs", "work_rights", "scholarships", "student_visa"],
    "english_tests": ["student_visa", "admissions_tests", "application_timelines", "post_study_work"],
    "admissions_tests": ["english_tests", "application_timelines", "scholarships", "tuition_costs"],
    "work_rights": ["post_study_work", "living_costs", "dependants", "student_visa"],
    "post_study_work": ["work_rights", "dependants", "english_tests", "credential_recognition"],
    "health_cover": ["student_visa", "arrival_registration", "dependants", "living_costs"],
    "tuition_costs": ["scholarships", "living_costs", "proof_of_funds", "work_rights"],
    "living_costs": ["accommodation", "work_rights", "proof_of_funds", "scholarships"],
    "scholarships": ["tuition_costs", "application_timelines", "proof_of_funds", "english_tests"],
    "application_timelines": ["student_visa", "english_tests", "scholarships", "accommodation"],
    "dependants": ["proof_of_funds", "work_rights", "health_cover", "post_study_work"],
    "accommodation": ["living_costs", "arrival_registration", "work_rights"],
    "credential_recognition": ["admissions_tests", "application_timelines", "english_tests", "post_study_work"],
    "arrival_registration": ["accommodation", "health_cover", "work_rights", "student_visa"],
}


@dataclass
class Persona:
    origin: str
    degree_level: str
    field: str
    degree_phrase: str
    budget: str
    budget_phrase: str
    english: str
    english_phrase: str
    city: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Plan:
    """One conversation to write: a destination, its opening topic, the follow-up topics, and the student."""

    index: int
    destination: str
    topics: list[str]
    persona: Persona
    facts: list[list[Fact]] = field(default_factory=list)  # facts per turn, aligned with ``topics``

    @property
    def policy_sensitive(self) -> bool:
        return any(t in POLICY_SENSITIVE for t in self.topics)


def make_persona(rng: random.Random, destination: str) -> Persona:
    level = rng.choice(list(DEGREES))
    fld = rng.choice(FIELDS[level])
    budget = rng.choice(list(BUDGETS))
    english = rng.choices(list(ENGLISH), weights=[1, 3, 3, 1])[0]
    return Persona(origin=rng.choice(ORIGINS), degree_level=level, field=fld,
                   degree_phrase=rng.choice(DEGREES[level]).format(field=fld), budget=budget,
                   budget_phrase=rng.choice(BUDGETS[budget]), english=english, english_phrase=ENGLISH[english],
                   city=rng.choice(CITIES.get(destination, [""])))


def cells(kb: KnowledgeBase) -> dict[tuple[str, str], list[Fact]]:
    """Facts grouped by (destination, topic), in KB order."""
    out: dict[tuple[str, str], list[Fact]] = {}
    for f in kb.facts:
        out.setdefault((f.destination, f.topic), []).append(f)
    return out


def plan_conversations(kb: KnowledgeBase, n: int, seed: int = 0) -> list[Plan]:
    """``n`` plans; opening cells are dealt round-robin from a shuffled deck so each gets n/cells ±1."""
    rng = random.Random(seed)
    grid = cells(kb)
    deck = sorted(grid)
    plans: list[Plan] = []
    order: list[tuple[str, str]] = []
    while len(order) < n:
        rng.shuffle(deck)
        order += deck
    for i, (dest, topic) in enumerate(order[:n]):
        persona = make_persona(rng, dest)
        n_follow = rng.choice([2, 2, 3, 3, 4])
        topics = [topic]
        facts = [_pick(rng, grid[(dest, topic)], persona)]
        used = {f.id for f in facts[0]}
        for _ in range(n_follow):
            nxt = _next_topic(rng, grid, dest, topics, used)
            if nxt is None:
                break
            chosen = _pick(rng, [f for f in grid[(dest, nxt)] if f.id not in used], persona)
            topics.append(nxt)
            facts.append(chosen)
            used |= {f.id for f in chosen}
        plans.append(Plan(index=i, destination=dest, topics=topics, persona=persona, facts=facts))
    return plans


def _pick(rng: random.Random, facts: list[Fact], persona: Persona) -> list[Fact]:
    """Up to three facts of a cell; medicine and admissions facts for the right degree level come first."""
    if len(facts) <= 2:
        return list(facts)
    k = rng.choice([2, 2, 3])
    level_words = {"medicine": "medic", "PhD": "phd", "MBA": "mba", "bachelor's": "bachelor", "master's": "master"}
    cue = level_words[persona.degree_level]
    ranked = sorted(facts, key=lambda f: (cue not in f.search_text().lower(), rng.random()))
    picked = ranked[:k]
    return sorted(picked, key=facts.index)  # keep the KB's reading order within the answer


def _next_topic(rng: random.Random, grid: dict, dest: str, topics: list[str], used: set[str]) -> str | None:
    """A related topic with unused facts; sometimes stay on the same topic when it has more to say."""
    current = topics[-1]
    same_left = [f for f in grid.get((dest, current), []) if f.id not in used]
    if same_left and topics.count(current) < 2 and rng.random() < 0.25:
        return current
    options = [t for t in NEXT_TOPICS.get(current, []) if t not in topics
               and any(f.id not in used for f in grid.get((dest, t), []))]
    if not options:
        options = [t for (d, t), fs in grid.items() if d == dest and t not in topics
                   and any(f.id not in used for f in fs)]
        options.sort()
    if not options:
        return None
    # prefer the first related topics but keep variety: weights 4, 3, 2, 1, 1…
    weights = [max(1, 4 - i) for i in range(len(options))]
    return rng.choices(options, weights=weights)[0]
