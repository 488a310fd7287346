"""The composed answer answers the question asked: only facts on the subject asked go in, and where the KB holds
none on that point the answer says so and names the official page, instead of printing a neighbouring rule."""
from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

from studyabroadgpt.serve.compose import about_asked, compose_answer, no_fact_answer
from studyabroadgpt.serve.grounding import Source

CANADA_TIMING = [{"role": "user", "content": "How early can I apply for my Canadian study permit?"}]
MANCHESTER = [{"role": "user", "content": "I'm doing a one-year MSc at Manchester, can my wife come with me?"}]


def _fact(fid, topic, statement, destination="CA", kind="fact"):
    return SimpleNamespace(id=fid, kind=kind, topic=topic, statement=statement, destination=destination,
                           values=[], country="Canada", source_title="t", source_url="https://example.org",
                           as_of=dt.date(2025, 1, 1), policy_sensitive=True)


def test_about_asked_uses_the_subject_of_the_question():
    funds = _fact("ca.funds.x", "proof_of_funds", "You must show CAD 22,895 a year.")
    visa = _fact("ca.visa.x", "student_visa", "You need a study permit.")
    q = "How early can I apply for my Canadian study permit?"
    assert not about_asked(q, funds) and not about_asked(q, visa)
    assert about_asked("How much money must I show for a Canadian study permit?", funds)
    assert about_asked("Tell me about studying in Canada", funds)          # no subject asked: anything goes
    # a follow-up that asks nothing itself asks what the turn before it did
    assert about_asked("And for Canada?", funds, context="How much money do I need to show for the UK?")
    assert not about_asked("And for Canada?", funds, context="How early can I apply for a UK visa?")


def test_no_fact_answer_names_the_point_the_destination_and_the_page(answerer):
    text = no_fact_answer("How early can I apply for my Canadian study permit?", answerer.kb)
    assert "no official fact on when you can apply for Canada" in text
    page = answerer.kb.by_id["ca.study-permit.required"]
    assert f"]({page.source_url})" in text
    assert no_fact_answer("Tell me about Canada", answerer.kb) is None


def test_compose_does_not_answer_a_neighbouring_question(answerer):
    turn = answerer.prepare(CANADA_TIMING, mode="compose")
    assert turn.sources, "Canadian facts are retrieved for the question"
    text = compose_answer(turn.question, turn.sources, messages=CANADA_TIMING, kb=answerer.kb)
    assert "no official fact on when you can apply" in text
    assert "22,895" not in text and "proof of funds" not in text.lower()
    # through the answer path: compose mode serves that plain answer, and cites no neighbouring fact
    final = answerer.finish(turn, "")
    assert final.mode == "compose" and "no official fact on when you can apply for Canada" in final.content
    assert "22,895" not in final.content and not any(s["cited"] and s["topic"] == "proof_of_funds"
                                                      for s in final.sources)


def test_auto_does_not_append_a_neighbouring_rule_to_a_generated_answer(answerer):
    # A clean generated answer is kept; the "From the official source" line must not add the funds rule.
    raw = ("Processing times change, so apply as soon as you have your letter of acceptance and check the "
           "current processing time on the official IRCC website before you book anything.")
    turn = answerer.prepare(CANADA_TIMING, mode="auto")
    final = answerer.finish(turn, raw)
    assert final.mode == "generate"
    assert "22,895" not in final.content and "From the official source" not in final.content


def test_compose_gives_the_specific_rule(answerer):
    turn = answerer.prepare(MANCHESTER, mode="compose")
    assert turn.sources[0].fact.id == "gb.dependants.restriction"
    final = answerer.finish(turn, "")
    n = turn.sources[0].n
    assert "postgraduate research course" in final.content and f"[{n}]" in final.content
    assert any(s["id"] == "gb.dependants.restriction" and s["cited"] for s in final.sources)


def test_source_objects_carry_relevance_in_order(answerer):
    turn = answerer.prepare(MANCHESTER, mode="compose")
    rel = [s.relevance for s in turn.sources]
    assert rel == sorted(rel, reverse=True) and all(isinstance(s, Source) for s in turn.sources)


def test_an_origin_is_not_the_destination_and_a_source_on_the_subject_is_no_gap(answerer):
    # Served: "I'm from the United States. Which Commonwealth Scholarship…" was composed as "no official fact on
    # scholarships for your destination", with the Commonwealth Scholarships fact retrieved at 0.92.
    q = [{"role": "user", "content": "I'm from the United States. Which Commonwealth Scholarship should I apply for?"}]
    turn = answerer.prepare(q, mode="compose")
    text = compose_answer(turn.question, turn.sources, messages=q, kb=answerer.kb)
    assert text is not None and "no official fact" not in text
    assert "Commonwealth Scholarships" in text and "[1]" in text
    # no destination asked about: no "for your destination" guess
    assert no_fact_answer("How early should I apply?", answerer.kb) is None
