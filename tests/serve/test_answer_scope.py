"""What the lead read in served answers at d1ae96f (default SmolLM2-135M, hf engine, auto mode), each made
right in general and checked through the answer path: filler about a destination not asked about, a composed
fact about another kind of programme, a generated figure where the KB has no fact on the subject, the study
permit's enrolment conditions, and a composed answer's closing that fits the question."""
from __future__ import annotations

import pytest

from studyabroadgpt.serve.generation import ScriptedGenerator

from .engine_helpers import answer_turn


def served(answerer, question, raw, mode="auto"):
    """``raw`` streamed through the answer path for ``question`` in ``mode``: what the student reads."""
    turn = answerer.prepare([{"role": "user", "content": question}], mode=mode)
    text, _ = answer_turn(ScriptedGenerator(raw, piece_chars=7), turn) if turn.generates else ("", None)
    return turn, answerer.finish(turn, text)


NZ_WORK = "How many hours can I work per week on a student visa in New Zealand?"
# The shape of the served answer: the (corrected) rule, then filler about other destinations.
NZ_RAW = ("On a New Zealand student visa you can work up to 25 hours a week during term and full time in scheduled "
          "holidays.\n\nDuring the Christmas holiday in Australia and Canada, students can work full time.\n\n"
          "Make sure your visa conditions allow work before you start a job.")


@pytest.mark.parametrize("mode", ["generate", "auto"])
def test_sentences_about_a_destination_not_asked_about_are_dropped(answerer, mode, monkeypatch):
    from studyabroadgpt.serve import answer as answer_mod

    monkeypatch.setattr(answer_mod, "COMPOSE_POLICY_RULES", False)  # the generated answer is what is checked here
    _, final = served(answerer, NZ_WORK, NZ_RAW, mode=mode)
    assert final.mode == "generate"
    assert "Christmas" not in final.content and "Australia" not in final.content.split("**Sources**")[0]
    assert "25 hours a week" in final.content and "Make sure your visa conditions" in final.content
    gone = [c for c in final.gate["changes"] if c["action"] == "removed_off_topic"]
    assert len(gone) == 1 and "Australia, Canada" in gone[0]["reason"] and "Christmas" in gone[0]["claim"]
    assert "about a destination you did not ask about removed" in final.content


def test_a_comparison_and_a_question_naming_no_destination_keep_their_sentences(answerer):
    from studyabroadgpt.serve.answer import drop_off_destination

    both = "Unlike Australia, New Zealand lets you work 25 hours a week. Canada allows 24 hours."
    text, changes = drop_off_destination(both, NZ_WORK)
    assert text.startswith("Unlike Australia, New Zealand") and "Canada allows" not in text and len(changes) == 1
    text, changes = drop_off_destination(both, "How many hours can I work while studying?")
    assert text == both and not changes
    # a place the question names as the student's origin is no stray
    text, changes = drop_off_destination("As a German citizen you need no visa.", "I'm from Germany. Do I need a "
                                         "visa for the UK?")
    assert not changes


CHINA_TUITION = "How much is tuition for an English-taught master's in China?"


def test_a_non_degree_programme_fee_is_not_composed_as_masters_tuition(answerer):
    from studyabroadgpt.kb.relevance import other_programme

    tsinghua = answerer.kb.by_id["cn.tuition.tsinghua-chinese-language-program"]
    assert other_programme(CHINA_TUITION, tsinghua)
    assert not other_programme("How much is Tsinghua's Chinese language programme?", tsinghua)
    # a rule for every student that mentions a non-degree limit on the way is about a master's student too
    assert not other_programme("How long can I stay in Ireland on a master's?",
                               answerer.kb.by_id["ie.student-visa.time-limits"])
    turn, final = served(answerer, CHINA_TUITION, "", mode="compose")
    assert any(s.fact.id == tsinghua.id for s in turn.sources), "the fee is retrieved, and must not be used"
    assert "10,500" not in final.content and "Chinese Language Program" not in final.content
    assert "no official fact on tuition fees for China" in final.content
    assert "the university's own programme, admissions and fees pages" in final.content
    # the scholarship that waives master's tuition is there, labelled as related, not as the answer
    related = final.content.split("**Related official facts**")[1]
    assert "waives tuition" in related and "do not answer your question about tuition fees" in related
    # the composed answer cites 1..n in reading order, and the sources agree (it cited "[2]" with no [1])
    csc = next(s for s in final.sources if s["id"] == "cn.scholarship.csc-university-program")
    assert csc["index"] == 1 and csc["cited"] and "waives tuition" in related.split("[1]")[0]
    assert "[2]" not in final.content and sorted(s["index"] for s in final.sources) == list(
        range(1, len(final.sources) + 1))


def test_auto_does_not_serve_a_generated_figure_where_no_fact_is_on_the_subject(answerer):
    _, final = served(answerer, CHINA_TUITION, "Tuition for an English-taught master's in China is about $4,000 "
                      "a year at most universities, and you can pay it in two instalments.")
    assert final.mode == "compose" and "$4,000" not in final.content
    assert "no official fact on tuition fees for China" in final.content


UAE_PR = ("How many years do I need to live in the UAE before I can get permanent residency as a former student?")


def test_no_fact_on_permanent_residence_is_said_plainly_with_related_facts_labelled(answerer):
    from studyabroadgpt.kb.relevance import asked_subjects, entry_subjects

    assert asked_subjects(UAE_PR) == {"permanent_residence"}
    assert "permanent_residence" in asked_subjects("Can I get citizenship in Australia after studying there?")
    # served (d1ae96f): the model's figure, marked once, and junk after it
    turn, final = served(answerer, UAE_PR, "You need to live in the UAE for a minimum of 12 years before you can "
                         "apply for permanent residency as a former student. This is a great opportunity.")
    assert final.mode == "compose" and "12 years" not in final.content
    assert final.content.startswith("Our knowledge base has no official fact on permanent residence or "
                                    "citizenship for the United Arab Emirates")
    assert "icp.gov.ae" in final.content
    related = final.content.split("**Related official facts** (these do not answer your question about "
                                  "permanent residence or citizenship):")[1]
    assert "Golden Visa" in related and "[" in related
    # the one fact on a route to permanent residence is about it (Canada's Express Entry class)
    assert "permanent_residence" in entry_subjects(answerer.kb.by_id["ca.psw.cec"])


CANADA_FAIL = "What happens to my student visa in Canada if I fail some courses?"


def test_study_permit_conditions_answer_a_failing_courses_question(answerer):
    from studyabroadgpt.kb.relevance import asked_subjects, entry_subjects

    assert asked_subjects(CANADA_FAIL) == {"study_progress"}
    assert "study_progress" not in asked_subjects("What if I fail the IELTS?")
    fact = answerer.kb.by_id["ca.study-permit.conditions"]
    assert "study_progress" in entry_subjects(fact) and str(fact.source_url).startswith("https://www.canada.ca/")
    assert "study_progress" in entry_subjects(answerer.kb.by_id["nl.student-visa.study-progress"])
    turn, final = served(answerer, CANADA_FAIL, "", mode="compose")
    assert turn.sources[0].fact.id == fact.id
    assert "actively pursue their programme" in final.content and "part-time status" in final.content
    assert "Student Direct Stream" not in final.content  # the entry rules composed before are not the answer


def test_a_soft_advice_composed_answer_ends_with_a_closing_that_fits(answerer):
    turn, final = served(answerer, "Which country is best for me with a low GPA?", "", mode="compose")
    assert "before you apply" not in final.content and "tell me the countries or programmes" in final.content
    # a question about no destination is not composed from one destination's rule
    turn, final = served(answerer, "I'm 35, am I too old to study abroad for a master's?", "", mode="compose")
    assert "485" not in final.content and "Australia" not in final.content
    # a rule question keeps its check-the-official-page caveat
    turn, final = served(answerer, "How many hours can I work on a UK Student visa during my master's?", "",
                         mode="compose")
    assert "official" in final.content.split("**Sources**")[0].lower() and "20 hours" in final.content


def test_auto_serves_the_facts_when_the_fact_check_had_to_edit_a_rule_answer(answerer, monkeypatch):
    from studyabroadgpt.serve import answer as answer_mod

    monkeypatch.setattr(answer_mod, "COMPOSE_POLICY_RULES", False)  # the one-edit rule alone
    # 110-prompt run at d1ae96f: served as generated with one mark, and wrong (10 hours is the below-degree limit)
    q = "How many hours can I work per week on a UK Student visa during my master's?"
    _, final = served(answerer, q, "The UK Student visa is a full-time student, and the maximum hours worked per "
                      "week are 10. So, you can work up to 25 hours per month during your master's degree program "
                      "for full time study purposes.")
    # the marked "25 hours per month" sentence goes (it cites no fact), and what is left is a stub
    assert final.mode == "compose" and "fact check removed 1 claim" in final.gate["fallback_reason"]
    assert "20 hours a week during term time" in final.content and "25 hours per month" not in final.content
    # a clean answer is kept, and soft advice with one mark is not replaced by a neighbouring guidance entry
    _, final = served(answerer, q, "At degree level you can work up to 20 hours a week during term time and full "
                      "time in the official vacations. Check your CAS and your university's rules before you "
                      "take a job.")
    assert final.mode == "generate"


def test_invented_specifics_with_nothing_to_compose_get_the_plain_no_facts_answer(answerer):
    # served at cc92e21 (generate, five marks): no retrieved fact is about language schools
    _, final = served(answerer, "How much does a Japanese language school cost in Tokyo?",
                      "The average tuition for a 12-year high school Japanese language course is around $3,059. "
                      "The University Language School (JLTS) has over 70 years' experience teaching Japanese.")
    assert final.mode == "compose" and "$3,059" not in final.content and "JLTS" not in final.content
    assert "no official fact" in final.content


def test_a_permanent_residence_answer_closes_as_a_rule(answerer):
    _, final = served(answerer, "Can I get PR in Canada after my master's there?", "", mode="compose")
    assert "Canadian Experience Class" in final.content
    assert "Each university and scheme sets its own" not in final.content and "official" in final.content


def test_working_after_a_masters_is_answered_with_the_post_study_visa(answerer):
    # Lead's reading, session 5: "after my master's" was not a post-study cue, so the composed answer was the
    # during-study rule "master's by research or doctoral students have unlimited work rights".
    turn, final = served(answerer, "Can I stay in Australia after my master's to work? How long?", "", mode="compose")
    assert final.mode == "compose"
    body = final.content.split("**Sources**")[0]
    assert "Temporary Graduate visa (subclass 485)" in body and "up to 2 years" in body
    assert "unlimited work rights" not in body


# Session 5, lead's final reading: composed answers on another subject than the one asked, and an origin read as a
# destination. Each asked through the answer path with a generated "yes" that passes the checks.
VAGUE_YES = "Yes, you can. Many students do this and it is usually allowed with a few conditions."


def test_an_internship_question_is_not_answered_with_a_work_or_post_study_rule(answerer):
    from studyabroadgpt.kb.relevance import asked_subjects, entry_subjects

    q = "Can I do an internship in France as a student?"
    assert asked_subjects(q) == {"internship"}
    assert asked_subjects("How many hours can I work part-time in Canada?") == {"work_hours"}
    assert "internship" in entry_subjects(answerer.kb.by_id["ca.work.coop"])
    _, final = served(answerer, q, VAGUE_YES)
    assert final.mode == "compose" and "Yes, you can" not in final.content
    assert final.content.startswith("Our knowledge base has no official fact on internships and work placements "
                                    "for France")
    assert "APS" not in final.content and "graduat" not in final.content.lower()
    # where the KB has the rule, it is the answer (Canada's co-op work permit)
    _, final = served(answerer, "Can I do an internship in Canada as part of my programme?", VAGUE_YES)
    assert "co-op work permit" in final.content


def test_part_time_study_is_not_part_time_work(answerer):
    from studyabroadgpt.kb.relevance import asked_subjects

    q = "Can I do a part-time master's in the UK?"
    assert asked_subjects(q) == {"study_progress"}
    assert asked_subjects("Can I work part-time while studying a master's?") == {"work_hours"}
    _, final = served(answerer, q, VAGUE_YES)
    assert final.mode == "compose"
    answer = final.content.split("**Related official facts**")[0]
    assert "no official fact on what your student visa requires of your studies (full- or part-time study" in answer
    assert "job" not in answer.lower() and "hours" not in answer


def test_no_fact_headings_name_what_was_asked(answerer):
    from studyabroadgpt.kb.relevance import asked_subjects

    moving = "Can I change universities after arriving in the UK on a student visa?"
    assert asked_subjects(moving) == {"change_provider"}
    assert asked_subjects("What should I do after I arrive in Germany?") == {"arrival"}  # still an arrival question
    _, final = served(answerer, moving, VAGUE_YES)
    assert final.mode == "compose" and "when you can arrive" not in final.content
    assert "new CAS" in final.content  # the transfer guidance, on the point asked
    bank = "How do I open a bank account in Singapore as a student?"
    assert asked_subjects(bank) == {"banking"}
    assert asked_subjects("How do I open a blocked account for Germany?") == {"funds"}
    assert asked_subjects("How much money do I need in my bank account for a UK visa?") == {"funds"}
    _, final = served(answerer, bank, VAGUE_YES)
    assert "money you must show" not in final.content
    assert final.content.startswith("Our knowledge base has no official fact on opening a bank account for Singapore")


def test_the_country_a_student_is_a_refugee_in_is_the_origin(answerer):
    from studyabroadgpt.kb.coverage import detect_scope

    scope = detect_scope("I'm a refugee in Turkey, can I study in Germany?", answerer.kb)
    assert scope.covered == ["DE"] and scope.uncovered == [] and "Turkey" in scope.origins
    _, final = served(answerer, "I'm a refugee in Turkey, can I study in Germany?", VAGUE_YES)
    assert "Not covered" not in final.content and final.mode != "out_of_scope"


def test_auto_serves_the_facts_for_a_rule_question_even_when_the_generated_answer_passed(answerer, monkeypatch):
    from studyabroadgpt.serve import answer as answer_mod

    monkeypatch.setattr(answer_mod, "COMPOSE_POLICY_RULES", True)
    # served at 658aaec with the quickstart adapter: the rule reversed, the F-1 fact cited under it
    q = "Can I work off campus in my first year on an F-1 visa in the US?"
    _, final = served(answerer, q, "Yes, a US F-1 student may work off campus in the first year.")
    assert final.mode == "compose" and "Yes, a US F-1 student may work off campus" not in final.content
    assert "the question asks a rule" in final.gate["fallback_reason"]
    # soft advice naming no destination keeps the model's answer
    advice = ("A strong statement of purpose says what you want to study and why, what you have done that "
              "prepares you for it, and what you plan to do afterwards. Keep it specific and honest, and ask "
              "someone who knows your field to read a draft before you send it.")
    _, final = served(answerer, "How do I write a strong statement of purpose for an MBA?", advice)
    assert final.mode == "generate" and final.content.startswith("A strong statement of purpose")
