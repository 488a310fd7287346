"""Claim extraction and the audit's three verdicts, caveats and scaffolding."""
from __future__ import annotations

import pytest

from studyabroadgpt.kb.audit import Auditor, find_scaffolding, has_caveat, is_policy_sensitive
from studyabroadgpt.kb.claims import extract_claims, name_tokens


def kinds(text):
    return [(c.kind, c.value) for c in extract_claims(text)]


def test_money_with_currency_and_period():
    got = kinds("You need £1,483 per month, CAD 22,895 a year, A$29,710, 11,904 euros annually and $350.")
    assert got == [
        ("money", {"amount": 1483.0, "currency": "GBP", "period": "month"}),
        ("money", {"amount": 22895.0, "currency": "CAD", "period": "year"}),
        ("money", {"amount": 29710.0, "currency": "AUD", "period": None}),
        ("money", {"amount": 11904.0, "currency": "EUR", "period": "year"}),
        ("money", {"amount": 350.0, "currency": "$", "period": None}),
    ]


def test_scores_both_orders_and_components():
    got = [c.value for c in extract_claims("Aim for IELTS Academic 6.5 overall with no band below 5.5, "
                                           "or 90 on the TOEFL iBT. GMAT scores around 700 help.")]
    assert got == [{"test": "IELTS", "score": 6.5}, {"test": "IELTS", "score": 5.5},
                   {"test": "TOEFL", "score": 90.0}, {"test": "GMAT", "score": 700.0}]


def test_durations_dates_percentages_need_advising_context():
    text = ("You can work 20 hours per week in term time. The Graduate Route lasts two years. "
            "Apply by 15 January 2026. Tuition rose 5% this year. "
            "As a consultant I grew revenue 20% within six months.")
    got = kinds(text)
    assert ("duration", {"amount": 20.0, "unit": "hours", "per": "week"}) in got
    assert ("duration", {"amount": 2.0, "unit": "years", "per": None}) in got
    assert ("date", {"month": 1, "day": 15, "year": 2026}) in got
    assert ("percentage", {"amount": 5.0}) in got
    # the anecdote's numbers are the student's story, not advising claims
    assert ("duration", {"amount": 6.0, "unit": "months", "per": None}) not in got
    assert ("percentage", {"amount": 20.0}) not in got


def test_named_things():
    text = ("Consider Chevening Scholarships, the Global Excellence Scholarship or the Government of Ireland "
            "International Education Scholarship. Merit Scholarships also exist. You will need an F-1 visa or "
            "Stamp 2. The Cambridge MBA Program is competitive.")
    names = [c.value["name"] for c in extract_claims(text) if c.kind == "entity"]
    assert names == ["Chevening Scholarships", "Global Excellence Scholarship",
                     "Government of Ireland International Education Scholarship", "F-1", "Stamp 2"]
    assert name_tokens("UK Student Visa") == frozenset()
    assert name_tokens("Chevening Scholarships") == {"chevening"}


def test_sources_urls_and_citations_are_not_claims():
    text = "You need £776 per year [1].\n\n### Sources\n1. IHS - https://www.gov.uk/x (as of 1 June 2025, £1)\n"
    claims = extract_claims(text)
    assert [c.text for c in claims] == ["£776 per year"]


def test_student_numbers_from_the_question_are_skipped(fixture_auditor):
    r = fixture_auditor.audit_answer("With your budget of £18,000 you can cover the £776 per year surcharge.",
                                     question="I have £18,000. Is that enough for the UK?")
    assert [c.text for c in r.claims] == ["£776 per year"]
    assert not r.has_error


ANSWER = """## Money for your UK Student visa
You need **£1,483 per month** for up to 9 months in London [1], or £1,136 per month elsewhere.
The Immigration Health Surcharge is £776 per year, and you can work 20 hours per week.
Look at Chevening Scholarships too.

Always check the official GOV.UK page before you apply.

### Sources
1. Student visa: money you need - https://www.gov.uk/student-visa/money (as of 2025-06-01)
"""


def test_clean_answer_is_fully_supported(fixture_auditor):
    r = fixture_auditor.audit_answer(ANSWER, "How much money do I need for London?")
    assert len(r.claims) == 6
    assert all(c.status == "supported" for c in r.claims), [(c.text, c.status) for c in r.claims]
    assert {c.fact_id for c in r.claims} == {"gb.funds.maintenance", "gb.health.ihs", "gb.work.term-time",
                                             "gb.scholarships.chevening"}
    assert not r.has_error and r.policy_sensitive and not r.missing_caveat
    assert r.to_dict()["n_supported"] == 6


@pytest.mark.parametrize("bad,status,expected", [
    ("£1,683 per month", "contradicted", "GBP 1,483 per month"),      # corrupted number
    ("£1,490 per month", "contradicted", "GBP 1,483 per month"),      # a near miss is still wrong
    ("IELTS 7.0", "contradicted", "IELTS 6.5"),                       # wrong score
    # test name swapped onto an IELTS band
    ("TOEFL 6.5", "contradicted", "TOEFL is scored 0–120 in steps of 1 or 1–6 in steps of 0.5"),
    ("30 hours per week", "contradicted", "20 hours per week"),        # wrong work limit
    ("the Global Leaders Scholarship", "unsupported", None),           # invented scholarship
    ("the Graduate Talent Visa", "unsupported", None),                 # invented visa
    ("the Fulbright Program", "contradicted", None),                   # real, but a US programme
])
def test_planted_errors_are_caught(fixture_auditor, bad, status, expected):
    text = {
        "£1,683 per month": "In London you must show £1,683 per month for your Student visa.",
        "£1,490 per month": "In London you must show £1,490 per month for your Student visa.",
        "IELTS 7.0": "UK universities usually ask for IELTS 7.0 overall at degree level.",
        "TOEFL 6.5": "UK universities usually ask for TOEFL 6.5 overall at degree level.",
        "30 hours per week": "On a UK Student visa you can work 30 hours per week during term.",
        "the Global Leaders Scholarship": "In the UK, apply for the Global Leaders Scholarship.",
        "the Graduate Talent Visa": "After your UK degree, switch to the Graduate Talent Visa.",
        "the Fulbright Program": "For your UK master's, the Fulbright Program pays everything.",
    }[bad]
    r = fixture_auditor.audit_answer(text)
    bad_claims = [c for c in r.claims if c.status != "supported"]
    assert r.has_error and bad_claims, [(c.text, c.status) for c in r.claims]
    assert bad_claims[0].status == status
    if expected:
        assert bad_claims[0].expected == expected


def test_given_facts_limit_support(fixture_kb, fixture_auditor):
    only_funds = [fixture_kb.by_id["gb.funds.maintenance"]]
    r = fixture_auditor.audit_answer("You need £1,483 per month and pay £776 per year for the IHS.", facts=only_funds)
    assert [c.status for c in r.claims] == ["supported", "unsupported"]


def test_destination_is_the_nearest_country_in_the_sentence(fixture_auditor):
    r = fixture_auditor.audit_answer("In Australia you can work 48 hours per fortnight; in Canada 24 hours per week.")
    assert [(c.destination, c.status) for c in r.claims] == [("AU", "supported"), ("CA", "supported")]


def test_unknown_destination_figures_are_unsupported_not_contradicted(fixture_auditor):
    r = fixture_auditor.audit_answer("Students can usually work 35 hours per week.")
    assert [c.status for c in r.claims] == ["unsupported"]


def test_with_retriever(fixture_kb, fixture_retriever):
    auditor = Auditor(fixture_kb, fixture_retriever, dense=True)
    r = auditor.audit_answer("The Post-Graduation Work Permit in Canada lasts up to 5 years.")
    durations = [c for c in r.claims if c.kind == "duration"]
    assert [(c.status, c.fact_id, c.expected) for c in durations] == [("contradicted", "ca.psw.pgwp", "3 years")]
    assert [c.status for c in r.claims if c.kind == "entity"] == ["supported"]


@pytest.mark.parametrize("text,expected", [
    ("Check the official GOV.UK page before you apply.", True),
    ("Rules can change, so confirm the current amount with the embassy before applying.", True),
    ("See https://www.canada.ca/en/immigration for details.", True),
    ("Fees may change each year.", True),
    ("You will love studying in Canada.", False),
])
def test_has_caveat(text, expected):
    assert has_caveat(text) is expected


@pytest.mark.parametrize("text,expected", [
    ("How many hours can I work on a Student visa?", True),
    ("Do I need health insurance in Australia?", True),
    ("How do I show proof of funds?", True),
    ("How do I write a strong statement of purpose?", False),
])
def test_is_policy_sensitive(text, expected):
    assert is_policy_sensitive(text) is expected


def test_scaffolding_labels_and_placeholders():
    text = ("## Introduction\n**Clear statement:** I love business.\n**Because of:** x\n"
            "Dear [Admissions Committee], I studied at [University Name] {{program}} in 2020 [1].")
    found = find_scaffolding(text)
    assert "Clear statement" in found and "Because of" in found and "Introduction" in found
    assert "[University Name]" in found and "[Admissions Committee]" in found and "{{program}}" in found
    assert "[1]" not in found
    assert find_scaffolding("## Work rights\nYou can work 20 hours per week.") == []


def test_a_country_in_an_eligibility_group_is_not_where_the_rule_applies():
    from studyabroadgpt.kb.store import load_kb

    kb = load_kb()
    fact = kb.by_id["fr.tuition.differentiated"]
    answer = ("### Tuition fees in France\n\n- Students from outside the EU, EEA and Switzerland pay "
              "differentiated registration fees, €2,895 a year for a licence and €3,941 a year for a master's. [1]")
    for facts in (None, [fact]):  # whole-KB audit and the served facts alike
        result = Auditor(kb).audit_answer(answer, "What are tuition fees in France?", facts=facts)
        money = [c for c in result.claims if c.kind == "money"]
        assert [(c.destination, c.status) for c in money] == [("FR", "supported")] * 2
    # a country that is the subject of the sentence still places the figure there
    swiss = Auditor(kb).audit_answer("In Switzerland tuition is €2,895 a year.", "Fees in France?")
    assert [c.destination for c in swiss.claims if c.kind == "money"] == ["CH"]


def test_a_list_number_on_the_next_line_is_not_a_day():
    text = "JASSO holds the EJU twice a year, in June and November. [3]\n\n1. Read the official guidance."
    assert [c for c in extract_claims(text) if c.kind == "date"] == []
    assert [c.value for c in extract_claims("Apply by Nov. 30 or by 1 December 2026.") if c.kind == "date"] == [
        {"month": 11, "day": 30, "year": None}, {"month": 12, "day": 1, "year": 2026}]


def test_guidance_supports_its_own_figures_and_never_contradicts_through_another_rule():
    from studyabroadgpt.kb.store import load_kb

    kb = load_kb()
    guide, rule = kb.by_id["guide.any.strategy.timeline"], kb.by_id["nz.psw.visa"]
    ok = "In New Zealand, plan applications backwards from the deadlines — research 12 to 18 months ahead. [1]"
    result = Auditor(kb).audit_answer(ok, "When should I apply to New Zealand?", facts=[guide, rule])
    assert [(c.text, c.status, c.fact_id) for c in result.claims] == [("18 months", "supported", guide.id)]
    wrong = ok.replace("18 months", "25 months")
    result = Auditor(kb).audit_answer(wrong, "When should I apply to New Zealand?", facts=[guide, rule])
    bad = [c for c in result.claims if c.status != "supported"]
    # still an error, but not "contradicted by the post-study work visa's 3 years" (the wrong slot)
    assert bad and all(c.status == "unsupported" and c.fact_id is None for c in bad)
