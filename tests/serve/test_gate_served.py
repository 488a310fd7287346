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
