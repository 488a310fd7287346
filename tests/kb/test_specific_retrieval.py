"""Specific-rule retrieval: the fact whose slot (destination, subject, level, group) the question asks about ranks
above generic guidance that shares more of its words; labelled cases live in queries.yaml (``kind: specific``)."""
from __future__ import annotations

from pathlib import Path

import pytest

from studyabroadgpt.kb.relevance import asked_subjects, entry_subjects, hit_rates, load_queries
from studyabroadgpt.kb.search import Retriever
from studyabroadgpt.kb.store import load_kb

QUERIES = Path(__file__).parent / "queries.yaml"


@pytest.mark.parametrize("question, expected", [
    ("I'm doing a one-year MSc at Manchester, can my wife come with me?", {"dependants"}),
    ("How early can I apply for my Canadian study permit?", {"apply_timing"}),
    ("how many hours can i work part time while studying in the UK", {"work_hours"}),
    ("can i stay in britain to work after my degree? graduate route length", {"post_study"}),
    # lead's reading, session 5: read as work hours, the during-study work-rights fact was composed
    ("Can I stay in Australia after my master's to work? How long?", {"post_study"}),
    ("Can I work in the UK after my bachelor's?", {"post_study"}),
    ("Can I work during my master's in Canada?", {"work_hours"}),
    ("which visa do i need for a masters in london", {"visa_rule"}),        # the visa only when nothing else
    ("how much money in my bank account for a uk student visa", {"funds"}),
    ("my husband wants to work full time in australia", {"dependants", "work_hours"}),
    ("What’s the UCAS deadline for medicine?", {"deadline"}),
])
def test_asked_subjects(question, expected):
    assert set(asked_subjects(question)) == expected


def test_entry_subjects_come_from_value_slots_and_topics():
    kb = load_kb()
    assert entry_subjects(kb.by_id["gb.dependants.restriction"]) == {"dependants"}
    assert {"apply_timing", "deadline"} <= entry_subjects(kb.by_id["gb.student-visa.timing"])
    assert entry_subjects(kb.by_id["ca.funds.amount"]) == {"funds"}
    assert {"dependants", "work_hours"} <= entry_subjects(kb.by_id["au.dependants.family"])
    assert entry_subjects(kb.by_id["guide.any.family.dependants-plan"]) == {"dependants"}  # guidance by topic


@pytest.fixture(scope="module")
def shipped():
    return Retriever.from_kb(load_kb())


def test_the_rule_ranks_above_the_family_guidance(shipped):
    # The served question that got the generic family-members line instead of the UK rule.
    hits = shipped.relevant("I'm doing a one-year MSc at Manchester, can my wife come with me?", k=4)
    assert hits and hits[0].fact.id == "gb.dependants.restriction"
    # The fused order (what the calibration is fitted on) puts the work-hours rules first; the re-ranked order
    # the partner rule.
    q = "can my girlfriend get a visa to live with me in auckland while i do my masters"
    assert shipped.search(q, k=3, rerank=False)[0].fact.id != "nz.dependants.partner"
    assert shipped.search(q, k=3)[0].fact.id == "nz.dependants.partner"


def test_specific_hit_rates_on_the_labelled_set(shipped):
    queries = load_queries(QUERIES)
    specific = [q for q in queries if q.kind == "specific"]
    assert len(specific) >= 20
    m = hit_rates(shipped, queries, ["specific"])
    # measured 0.68 / 0.91 with the fused order; 0.82 / 0.95 re-ranked (docs/knowledge-base.md)
    assert m["hit_at_1"] >= 0.8 and m["hit_at_3"] >= 0.95, m["misses"]
    everything = hit_rates(shipped, queries)
    assert everything["hit_at_1"] >= 0.88 and everything["hit_at_3"] >= 0.98
