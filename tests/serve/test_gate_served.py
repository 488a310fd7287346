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
    # the blanket "no such policy" repeats the reversed verdict: it goes, with the fact recorded (session 5)
    assert "no such policy" not in r.text and r.text.endswith("such as the E-7. [1]")
    gone = next(c for c in r.changes if c.action == "removed")
    assert gone.kind == "reversed_verdict" and gone.fact_id == "kr.psw.d10-job-seeker" and gone.citation == 1
    # alone it is the reversed verdict itself
    r = gate("The government of South Korea has no such policy.", "Can I stay in South Korea to look for a job after "
             "I graduate?", ["kr.psw.d10-job-seeker"])
    assert r.text.startswith("Graduates of Korean universities") and r.changes[0].action == "corrected_rule"
    # a denial under a question that asks for no rule is left alone
    r = gate("There is no such policy for students.", "What is the cheapest city in South Korea for students?",
             ["kr.psw.d10-job-seeker"])
    assert r.text == "There is no such policy for students."


def test_dependants_denied_under_a_fact_that_includes_them_is_corrected(gate):
    """Served (session 5, generate mode): "No, it is not possible to bring your two kids on a student visa" right
    above the cited "Family members can be included ...". The family rule is the fact's second clause (its first
    is the partner-work rule) or is stated in the passive."""
    q = "Can I bring my two kids with me if I get an Australian student visa?"
    r = gate("No, it is not possible to bring your two kids on a student visa. Budget for their health cover.", q,
             ["au.dependants.family"])
    assert "not possible" not in r.text
    assert r.text.startswith("Australian Student visa holders can include their partner and dependent children")
    fix = r.changes[0]
    assert fix.action == "corrected_rule" and fix.slot["rule"] == "bring_family" and fix.slot["fact"]["positive"]
    r = gate("No, it is not possible to bring your two kids on a student visa.", q,
             ["guide.au.family.dependants", "au.dependants.family"])
    assert r.text == ("Family members can be included in or added to an Australian student visa application, but you "
                      "must show enough money for them too, they need health cover, and school-age children may have "
                      "to pay school fees. [1]")
    assert not [c for c in gate("Yes, you can include your children in your application.", q,
                                ["au.dependants.family"]).changes if c.action == "corrected_rule"]
    # the UK's rule is for research students only: a taught master's "no" stands
    r = gate("No, you cannot bring your children while you do a taught master's.",
             "Can I bring my children to the UK during my taught master's?", ["gb.dependants.restriction"])
    assert not [c for c in r.changes if c.action == "corrected_rule"]
    # a fact whose two clauses are two rules, and a document rule with "but" in it, stay as they were read
    from studyabroadgpt.kb.slots import rules_of
    from studyabroadgpt.kb.store import load_kb

    kb = load_kb()
    f2 = rules_of(kb.by_id["us.dependants.f2"].statement, "US")
    assert [(r.subject, r.positive) for r in f2] == [("partner_work", False), ("bring_family", True)]
    assert rules_of(kb.by_id["us.health.f1-school-plan"].statement, "US") == []


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


def test_opt_any_length_goes_and_names_the_fact_that_bounds_it(gate):
    r = gate("OPT can be extended to any length of time, as long as you keep working in your field. You apply on "
             "Form I-765.", "How long can I work on OPT after my master's in the US?", ["us.psw.opt", "us.psw.stem-opt"])
    assert "any length" not in r.text and r.text.startswith("You apply on Form I-765")
    gone = next(c for c in r.changes if c.action == "removed")
    assert gone.kind == "unbounded_duration" and gone.fact_id in ("us.psw.opt", "us.psw.stem-opt") and gone.citation
    # hours with no limit in the holidays are a real rule, not an endless stay
    r = gate("During vacations there is no limit on hours you can work.", "Can I work full time in the UK during "
             "vacations?", ["gb.work.term-time"])
    assert not [c for c in r.changes if c.kind == "unbounded_duration"]


def test_an_unbounded_stay_no_fact_bounds_is_marked(gate):
    r = gate("You can stay in the country indefinitely after your studies.", "Can I stay in Singapore after I graduate?",
             [])
    # a student reads nothing invented: the sentence with the mark and no cited fact goes, recorded with its kind
    assert r.text == ""
    gone = next(c for c in r.changes if c.action == "removed_unverified")
    assert gone.kind == "unbounded_duration" and gone.sentence.startswith("You can stay in the country indefinitely")


def test_an_invented_deadline_in_a_policy_answer_is_marked(gate):
    r = gate("You should submit your application by the end of 2025 to be safe. You can apply up to 6 months before "
             "your course starts.", "How do I apply for a UK student visa?", ["gb.student-visa.timing"])
    assert r.text == "You can apply up to 6 months [1] before your course starts."
    mark = next(c for c in r.changes if c.kind == "undated_deadline")
    assert mark.claim == "by the end of 2025" and mark.action == "removed_unverified" and "cites no fact" in mark.reason
    # a year the fact gives, and the student's own year, stay as written
    r = gate("Since January 2024, only research students can bring dependants.", "When did the UK dependants rule "
             "change?", ["gb.dependants.restriction"])
    assert "(unverified)" not in r.text
    r = gate("If you start in September 2027 you apply from inside the UK.", "I start my course in September 2027. "
             "How do I apply for the visa?", ["gb.student-visa.timing"])
    assert "2027 (unverified)" not in r.text


def test_talk_about_the_prompt_goes(gate):
    r = gate("The official facts you provided are correct. You need at least €615 per month.",
             "Do I need to show bank statements for a French student visa, and how much money per month?",
             ["fr.funds.monthly"])
    assert r.text == "You need at least €615 per month [1]."
    r = gate("Based on the facts above, you need €615 per month.", "How much money do I need for a French student "
             "visa?", ["fr.funds.monthly"])
    assert r.text == "You need €615 per month [1]."
    # "the official facts state X [1]" where fact 1 does not say X goes; where it does, it stays
    r = gate("The official facts state that the D-10 (job seeking) visa is only granted when a student wants to leave "
             "their home country and return there within six months [1]; however, you can apply.",
             "Can I stay in South Korea to look for a job after I graduate?", ["kr.psw.d10-job-seeker"])
    assert "only granted when" not in r.text and r.changes[0].kind == "misattributed"
    # where it does, only the lead-in goes (session 5: "The official facts say that ..." at a sentence's start)
    ok = "The official facts state that graduates who want to stay to look for a job can change to the D-10 visa [1]."
    assert gate(ok, "Can I stay in South Korea to look for a job after I graduate?", ["kr.psw.d10-job-seeker"]).text \
        == "Graduates who want to stay to look for a job can change to the D-10 visa [1]."


def test_a_ranking_no_fact_makes_is_marked(gate):
    r = gate("The cheapest city in Ireland for students is Dublin, which has the highest rents in Ireland.",
             "What is the cheapest city in Ireland for students?", ["ie.funds.living"])
    assert "Dublin" not in r.text
    assert next(c for c in r.changes if c.kind == "superlative").action == "removed_unverified"
    ok = "Check the best options for you on the university's accommodation page."
    assert gate(ok, "What is the cheapest city in Ireland for students?", ["ie.funds.living"]).text == ok


def test_a_place_in_the_sentence_is_no_scheme_to_correct_a_figure_by(gate):
    # Served (lead's reading, session 4): the student-visa fact's alias "Dubai student visa" reduces to {dubai},
    # so "Dubai" in a permanent-residency sentence pinned its subject to the student visa and "12 years" was
    # 'corrected' to the visa's one-year validity, with an official citation.
    answer = ("The official document states that the student must have completed a minimum of 12 years of study "
              "in Dubai before they can apply for permanent residency.")
    r = gate(answer, "Can I get permanent residency in the UAE after studying in Dubai?",
             ["ae.student-visa.university-sponsored"])
    assert not [c for c in r.changes if c.action == "corrected"]
    assert "1 years" not in r.text and "1 year [" not in r.text


def test_a_comparison_with_an_uncovered_destination_goes(gate):
    """Served (session 5): "The cost of studying in Germany is significantly cheaper than studying in Poland" —
    the KB has no fact on Poland, so nothing official backs the comparison's other side."""
    q = "Is it cheaper to study in Germany or in Poland?"
    r = gate("The cost of studying in Germany is significantly cheaper than studying in Poland. Most public "
             "universities in Germany charge no tuition.", q, ["de.tuition.public-free"])
    assert "Poland" not in r.text and r.text.startswith("Most public universities in Germany charge no tuition")
    gone = next(c for c in r.changes if c.kind == "uncovered_comparison")
    assert gone.action == "removed" and "Poland" in gone.reason
    # two covered destinations and no fact that compares them: marked, not removed
    r = gate("Germany is cheaper than the UK for most students.", "Is Germany cheaper than the UK?",
             ["de.tuition.public-free"])
    assert r.text == ""
    assert r.changes[0].kind == "comparison" and r.changes[0].action == "removed_unverified"
    # advice that compares two actions is no comparison of places
    ok = "It is better to apply early than to wait for the last week."
    assert gate(ok, "When should I apply to German universities?", ["de.tuition.public-free"]).text == ok


def test_official_facts_are_that_is_the_prompt_read_back(gate):
    """Served (session 5, Netherlands health insurance): "The official facts are that ..." is the prompt's own
    heading; the lead-in goes where the rest is what the facts say, the sentence where it is not."""
    q = "Do I need health insurance to study in the Netherlands?"
    r = gate("The official facts are that international students who only study in the Netherlands usually need "
             "private student health insurance [1]. Buy it before you arrive.", q, ["nl.health.basic-insurance"])
    assert r.text.startswith("International students who only study in the Netherlands usually need private")
    assert r.changes[0].kind == "prompt_lead_in" and r.changes[0].action == "removed"
    r = gate("- The official facts are that every student gets free healthcare from the Dutch government.\n- Buy "
             "insurance before you arrive.", q, ["nl.health.basic-insurance"])
    assert "free healthcare" not in r.text and r.changes[0].kind == "misattributed"


def test_a_date_no_fact_gives_is_marked_in_any_answer(gate):
    """Served (session 5): "The deadline to apply ... through Campus France is 2025-12-31." passed unmarked: ISO
    dates were all blanked as "as of" stamps, and year deadlines were checked only in policy answers."""
    q = "What is the deadline to apply to French universities through Campus France?"
    r = gate("The deadline to apply for a visa in France through Campus France is 2025-12-31.", q, ["fr.funds.monthly"])
    assert r.text == "" and r.changes[0].action == "removed_unverified" and r.changes[0].claim == "2025-12-31"
    r = gate("Submit your Campus France application by March 2026. You need €615 a month.", q, ["fr.funds.monthly"])
    assert "March 2026" not in r.text and "€615 a month [1]" in r.text
    assert next(c for c in r.changes if "March 2026" in (c.claim or "")).action == "removed_unverified"
    # an ISO date a fact gives is checked like any date, and a source's "as of" stamp is no claim
    r = gate("The change applies to courses starting from 2023-01-01.", "When did the UK dependants rule change?",
             ["gb.dependants.restriction"])
    assert r.text == "The change applies to courses starting from 1 January 2024 [1]."
    stamp = "Our source (as of 2025-01-01) says you need €615 a month [1]."
    assert "2025-01-01 (unverified)" not in gate(stamp, "How much money do I need for France?", ["fr.funds.monthly"]).text


def test_a_rule_about_the_partner_takes_no_student_fact(gate):
    """Lead's reading (session 5): "She must be self-employed or have full-time employment ..." about the wife
    was replaced by the student-work fact ("no Student visa holder may be self-employed"), cited, under an
    unmarked "No, your wife cannot work on a UK student visa" with no partner-work fact retrieved."""
    q = "Can my wife work if she comes with me on my UK student visa?"
    r = gate("No, your wife cannot work on a UK student visa. She must be self-employed or have full-time "
             "employment to apply for a visa.", q, ["gb.work.below-degree", "gb.dependants.restriction"])
    assert not [c for c in r.changes if c.action == "corrected_rule"]
    assert r.text == ""
    assert [(c.kind, c.action) for c in r.changes] == [("partner_rule", "removed_unverified")] * 2
    # the student's own self-employment claim is still corrected by the student fact
    r = gate("Students below degree level may be self-employed.", "Can I be self-employed on a UK student visa?",
             ["gb.work.below-degree"])
    assert r.changes[0].action == "corrected_rule"
    # a partner verdict a partner fact states is left to that fact
    r = gate("Your husband can work full time while you do your master's in Australia.",
             "Can my husband work full time in Australia?", ["au.dependants.family"])
    assert not r.changes


def test_a_citation_whose_fact_is_about_something_else_goes(gate):
    """Served (session 5, Kenya/Ireland): "This takes around one year [2] after high school graduation" cited the
    GOI-IES scholarship's one year of study; "Chevening Scholarships [1].com" had a citation glued into a name."""
    q = "I'm from Kenya and want to do a master's in Ireland. What do I need?"
    r = gate("This takes around one year [2] after high school graduation.", q,
             ["ie.student-visa.eea-exempt", "ie.scholarships.goi-ies"])
    # its citation dropped, the sentence has nothing official left and goes
    assert r.text == ""
    dropped = next(c for c in r.changes if c.action == "dropped_citation")
    assert dropped.citation == 2 and dropped.fact_id == "ie.scholarships.goi-ies" and "does not say" in dropped.reason
    assert next(c for c in r.changes if c.action == "removed_unverified").fact_id == "ie.scholarships.goi-ies"
    # the fact's own subject keeps its citation, the model's and the gate's
    r = gate("The GOI-IES scholarship gives a stipend for one year of study.", "Scholarships in Ireland?",
             ["ie.scholarships.goi-ies"])
    assert r.text == "The GOI-IES scholarship gives a stipend for one year [1] of study."
    ok = "Students can work up to 20 hours a week during term time. [1]"
    assert gate(ok, "How many hours can I work in the UK?", ["gb.work.term-time"]).text == ok  # no second [1]
    # a figure in a fact about another destination is no source for this one
    r = gate("In Canada a master's usually takes one year of study.", "How long is a master's in Canada?",
             ["ie.scholarships.goi-ies"])
    assert r.text == "" and r.changes[0].action == "removed_unverified" and r.changes[0].claim == "one year"
    # no citation inside a word or an address
    r = gate("You can apply for Chevening Scholarships.com to fund your master's.", "What scholarships can I get "
             "to study in the UK as an international student?", ["gb.scholarships.chevening"])
    assert "[1].com" not in r.text and ".com" not in r.text


def test_adapter_reading_small_ones(gate):
    """The quickstart adapter's reading at c339546 (lead, session 5): each of these passed unmarked."""
    # the instructions read back as advice
    r = gate("You are a StudyAbroad Assistant. Your role is to assist the user in planning their trip abroad. Apply "
             "early for housing.", "How do I prepare to study in the UK?", ["gb.work.term-time"])
    assert r.text == "Apply early for housing."
    # a ranking in other words
    r = gate("For a low GPA, the most suitable destination is often Australia or New Zealand.",
             "Which country is best for me if I have a low GPA?", ["guide.any.choosing.destination"])
    assert r.text == "" and r.changes[0].kind == "superlative" and r.changes[0].action == "removed_unverified"
    # a consequence for the visa no fact states, in a policy answer
    r = gate("If you fail a course, your student visa will be cancelled.",
             "What happens to my student visa in Canada if I fail some courses?", ["ca.work.off-campus"])
    assert r.text == "" and r.changes[0].action == "removed_unverified" and "cancelled" in r.changes[0].sentence
    # a duration before permanent residency is a claim
    r = gate("It is generally recommended to live in the UAE for at least 10 years before applying for permanent "
             "residency as a former student.", "How many years do I need to live in the UAE before I can get "
             "permanent residency as a former student?", ["ae.student-visa.university-sponsored"])
    assert "10 years" not in r.text
    assert next(c for c in r.changes if c.claim and "10 years" in c.claim).action == "removed_unverified"
    # lettered citation markers copied from an earlier turn point at no source
    r = gate("Doctoral students are exempt from tuition fees [1a]. Check each university [1b].",
             "What about PhD programmes?", ["se.tuition.fees-liable"])
    assert "[1a]" not in r.text and "[1b]" not in r.text



def test_a_sentence_whose_only_specifics_are_unverified_goes(gate):
    """Lead's reading (session 5, Kenya/Ireland, generate mode): nonsense sentences served with "(unverified)"
    marks. A marked sentence that cites no fact goes, its marks recorded as removed_unverified."""
    q = "I'm from Kenya and want to do a master's in Ireland. What do I need?"
    r = gate("Apply to the university first. It requires a minimum of three years of study under the guidance of "
             "a Master of Fine Arts (FFA). Once accepted into the University of Dublin, you will begin your journey.",
             q, ["ie.student-visa.eea-exempt", "ie.scholarships.goi-ies"])
    assert r.text == "Apply to the university first."
    gone = [c for c in r.changes if c.action == "removed_unverified"]
    assert {c.claim for c in gone} >= {"FFA", "University of Dublin"} and all(c.sentence for c in gone)
    assert not [c for c in r.changes if c.action == "marked_unverified"]
    # a sentence that also cites a fact keeps its marks
    r = gate("The GOI-IES scholarship gives a stipend for one year of study and covers 3 months of rent.",
             "Scholarships in Ireland?", ["ie.scholarships.goi-ies"])
    assert "(unverified)" in r.text and "[1]" in r.text
    # list items go whole, the list stays a list
    r = gate("Bring these:\n- your passport\n- a letter from the Irish Student Council (ISC)\n- your offer letter",
             "What documents do I need for Ireland?", ["ie.student-visa.eea-exempt"])
    assert "Student Council" not in r.text and "- your passport\n- your offer letter" in r.text
