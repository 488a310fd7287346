"""The student's origin named in a question is not the destination an answer is audited against.

Found by auditing 2,500 synthesized conversations KB-wide (docs/synthesis-and-audit.md): once China and Malaysia
became covered destinations, personas from there ("I'm from China…") made the audit hold UK and New Zealand
answers to Chinese and Malaysian facts — 13 of 9,476 grounded answers flagged, none of them wrong; a 14th held a
French fee rule to Switzerland, the eligibility group it names.
"""
from __future__ import annotations

import pytest

from studyabroadgpt.kb.audit import Auditor

UK = ("From outside the UK you can apply for a Student visa up to 6 months before your course starts, and you will "
      "usually get a decision within 3 weeks.")
NZ = ("Fee Paying Student Visa applicants must show living funds of NZD 20,000 for each year of study, or NZD 1,667 "
      "a month for courses shorter than a year.")


@pytest.fixture(scope="module")
def auditor() -> Auditor:
    return Auditor.default()


@pytest.mark.parametrize("answer, question, dest", [
    (UK, "Hi! I'm from China. What's the timeline for applying to an MBA in the United Kingdom?", "GB"),
    (NZ, "I'm from Malaysia. How much money do I need to show for a student visa in New Zealand?", "NZ"),
    (UK, "As a Chinese student, when can I apply for my visa to the UK?", "GB"),
])
def test_origin_in_the_question_is_not_the_audited_destination(auditor, answer, question, dest):
    res = auditor.audit_answer(answer, question=question)
    assert res.destination == dest
    assert not res.has_error, [(c.text, c.status, c.expected) for c in res.claims]
    assert res.claims and all(c.status == "supported" for c in res.claims)


def test_an_eligibility_group_is_not_the_destination_of_a_follow_up(auditor):
    """A follow-up ("anything else about tuition fees?") answered with France's fee rule names only the group it
    covers; the audit must not hold the fees to Switzerland (the KB has no Swiss facts: both were unsupported)."""
    res = auditor.audit_answer(
        "Students from outside the EU, EEA and Switzerland who enrol for the first time in a licence, master's or "
        "engineering programme at a public institution under the higher-education ministry pay differentiated "
        "registration fees, €2,895 a year for a licence and €3,941 a year for a master's in 2025-26, unless an "
        "exemption applies; doctoral students pay the national rate.",
        question="You mentioned tuition fees. Is there anything else about tuition fees I should know?")
    assert res.destination is None
    assert not res.has_error, [(c.text, c.status, c.expected) for c in res.claims]


def test_a_place_read_as_an_origin_still_decides_when_nothing_else_is_named(auditor):
    """"a UK Student visa" looks like an origin ("UK" before "Student"); with no other place named it is the
    destination, so a wrong UK work limit is still contradicted."""
    res = auditor.audit_answer("You can work 30 hours per week during term.",
                               question="How many hours can I work per week on a UK Student visa?")
    assert res.destination == "GB" and res.has_error
    assert [c.expected for c in res.claims if c.status == "contradicted"] == ["20 hours per week"]


def test_a_destination_the_question_asks_about_still_decides(auditor):
    """The same figures asked about China itself are held to China's facts (the origin rule drops only origins)."""
    res = auditor.audit_answer(UK.replace("the UK", "China").replace("Student visa", "X1 visa"),
                               question="When can I apply for a student visa for China?")
    assert res.destination == "CN"
