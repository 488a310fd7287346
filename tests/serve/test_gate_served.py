"""The gate on sentences it once served wrong (issue 10, session 3-4 readings): each test is the served text,
the facts retrieved with it, and what a student must read instead."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def gate():
    from studyabroadgpt.kb.audit import Auditor
    from studyabroadgpt.kb.store import load_kb
    from studyabroadgpt.serve.gate import run_gate
    from studyabroadgpt.serve.grounding import Source

    kb = load_kb()
    auditor = Auditor(kb)

    def run(answer: str, question: str, fact_ids: list[str], context: str = ""):
        sources = [Source(i + 1, kb.by_id[f]) for i, f in enumerate(fact_ids)]
        return run_gate(auditor, answer, question, sources, kb=kb, context=context)

    return run


def test_aps_no_for_an_indian_applicant_is_replaced_by_the_cited_rule(gate):
    r = gate("No, you don't need an APS certificate to apply for a German student visa. You just need your "
             "admission letter and proof of funds.",
             "I'm from India and want to do a master's in Germany. Do I need an APS certificate?",
             ["de.credentials.aps", "de.funds.blocked-account"])
    assert "don't need an APS" not in r.text
    assert r.text.startswith("Applicants with qualifications from China, Vietnam or India must obtain an APS "
                             "certificate") and "[1]" in r.text
    fix = next(c for c in r.changes if c.action == "corrected_rule")
    assert fix.fact_id == "de.credentials.aps" and fix.slot["rule"] == "document:aps"
    assert list(fix.slot["fact"]["origins"]) == ["CN", "VN", "IN"] and list(fix.slot["claim"]["origins"]) == ["IN"]
    assert "You just need your admission letter" in r.text  # the rest of the answer is not the rule's


def test_aps_no_for_an_applicant_from_elsewhere_is_left_alone(gate):
    r = gate("No, you don't need an APS certificate.", "I'm American. Do I need an APS certificate for Germany?",
             ["de.credentials.aps"])
    assert r.text == "No, you don't need an APS certificate." and not r.changes


def test_aps_origin_from_an_earlier_turn(gate):
    r = gate("No.", "Do I need an APS certificate for that?", ["de.credentials.aps"],
             context="I'm from India and I want to study in Germany.")
    assert [c.action for c in r.changes] == ["corrected_rule"] and "must obtain an APS certificate" in r.text


def test_document_rule_conditions_are_not_flat_yes_or_no(gate):
    # the answer's own condition, and a fact with two rules in it (immigration rules vs universities)
    r = gate("You don't need a blocked account if you have a scholarship.", "Do I need a blocked account for Germany?",
             ["de.funds.blocked-account", "de.funds.alternatives"])
    assert not [c for c in r.changes if c.action == "corrected_rule"]
    r = gate("You must have health insurance as an F-1 student.", "Do I need health insurance as an F-1 student?",
             ["us.health.f1-school-plan"])
    assert not [c for c in r.changes if c.action == "corrected_rule"]
    r = gate("You need a blocked account, not a bank statement.", "Do I need a blocked account for Germany?",
             ["de.funds.blocked-account"])
    assert not r.changes or all(c.action != "corrected_rule" for c in r.changes)


def test_health_insurance_denied_in_germany_is_corrected(gate):
    r = gate("You don't need health insurance to enrol at a German university.",
             "Do I need health insurance to study in Germany?", ["de.health.insurance"])
    assert r.text.startswith("Students in Germany need health insurance to enrol") and r.text.endswith("[1]")


def test_phd_follow_up_dependants_reversal_is_corrected(gate):
    """'What if I do a PhD instead?' names neither the UK nor the rule: both come from the earlier turn, and
    the retrieved facts are of several destinations."""
    r = gate("PhD students cannot bring their wife with them.", "What if I do a PhD instead?",
             ["gb.dependants.restriction", "au.dependants.family", "gb.work.term-time"],
             context="Can I bring my wife to the UK while I do a taught master's?")
    assert "cannot bring their wife" not in r.text
    assert "can bring dependants only if they study a postgraduate research course such as a PhD" in r.text
    r = gate("No, that doesn't change anything. The rules are the same for everyone.", "What if I do a PhD instead?",
             ["gb.dependants.restriction", "gb.work.term-time"],
             context="Can I bring my wife to the UK while I do a taught master's?")
    assert r.changes[0].action == "corrected_rule" and not r.text.startswith("No,")
    r = gate("Yes, as a PhD student you can bring your wife as a dependant.", "What if I do a PhD instead?",
             ["gb.dependants.restriction", "au.dependants.family"],
             context="Can I bring my wife to the UK while I do a taught master's?")
    assert not [c for c in r.changes if c.action == "corrected_rule"]


def test_holiday_full_time_reversed_is_corrected(gate):
    r = gate("No, New Zealand does not allow international students to work full time during the Christmas holidays.",
             "Does New Zealand let international students work full time during the Christmas holidays?",
             ["nz.work.hours"])
    assert r.text.endswith("and full time during scheduled holidays. [1]") and "does not allow" not in r.text
    assert r.changes[0].slot["rule"] == "holiday_full_time"
    # a fact whose next clause is a "may not" about something else still allows full time in the breaks
    r = gate("F-1 students cannot work full time during breaks.", "Can I work in the summer in the US on F-1?",
             ["us.work.on-campus"])
    assert "cannot work full time" not in r.text and "full time during breaks, but may not work off campus" in r.text
    # term and holidays in one sentence: not a flat verdict on holidays
    r = gate("You cannot work full time during term, but you can during the holidays.", "Can I work full time in the UK?",
             ["gb.work.term-time"])
    assert not [c for c in r.changes if c.action == "corrected_rule"]


def test_korea_job_search_no_is_corrected(gate):
    r = gate("No, you cannot stay in South Korea to look for a job after graduating. The government of South Korea "
             "has no such policy.", "Can I stay in South Korea to look for a job after I graduate?",
             ["kr.psw.d10-job-seeker"])
    assert r.text.startswith("Graduates of Korean universities who want to stay to look for a job can change to the "
                             "D-10 (job seeking) visa")
    assert "you cannot stay" not in r.text


MY_WORK = ("International students at Malaysian public or private higher-education institutions may work part-time "
           "only during semester breaks or holidays of more than 7 days, for at most 20 hours a week")


def test_malaysia_correction_keeps_the_semester_break_condition(gate):
    q = "How many hours can I work as a student in Malaysia?"
    for served in ("In Malaysia you can work up to 25 hours a week during your studies.",
                   "In Malaysia you can work up to 25 hours a week.",
                   "In Malaysia you can work up to 20 hours a week during your studies."):
        r = gate(served, q, ["my.work.semester-breaks"])
        assert r.text.startswith(MY_WORK) and r.text.endswith("[1]"), served
        fix = r.changes[0]
        assert fix.action == "corrected_rule" and "only during semester breaks" in fix.reason
    # the claim states the period itself: only the figure changes
    r = gate("During semester breaks you can work up to 25 hours a week.", q, ["my.work.semester-breaks"])
    assert r.text == "During semester breaks you can work up to 20 hours per week [1]."


def test_a_corrected_date_reads_as_the_fact_writes_it(gate):
    r = gate("The change applies to courses starting in 1 January 2023.", "When did the UK dependants rule change?",
             ["gb.dependants.restriction"])
    assert r.text == "The change applies to courses starting on 1 January 2024 [1]."
    assert "2024-01-01" not in r.text and r.changes[0].replacement == "1 January 2024"
