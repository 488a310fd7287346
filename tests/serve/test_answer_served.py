"""Answers served to real-style questions that were wrong as a student read them, each with the served text
(session 3 and 4 readings): the unfinished sentence at the token limit, origins and course descriptions read as
uncovered places, a source title quoted as the official fact, premise notes, unsupported rules."""
from __future__ import annotations

import pytest

from studyabroadgpt.serve.generation import Piece, ScriptedGenerator

from .engine_helpers import answer_turn


def run(gen, turn):
    """Near the token limit from the first token (max_tokens under HOLD_TOKENS): the whole answer is held to
    sentence ends, as the last ~64 tokens of a longer answer are."""
    from studyabroadgpt.serve.generation import GenParams

    return answer_turn(gen, turn, params=GenParams(max_tokens=32))


class AtTokenLimit(ScriptedGenerator):
    """A scripted model that runs out of tokens: its last piece says "length", as every engine does."""

    async def stream(self, messages, params):
        async for piece in super().stream(messages, params):
            yield Piece("", "length", piece.prompt_tokens, piece.completion_tokens) if piece.finish_reason else piece


# Served (session 3, SmolLM2 at 256 tokens): the answer ended "... In my opinion,".
CUT_OFF = ("At degree level you can work up to 20 hours a week during term time. Full-time work is allowed in "
           "the official vacations.\n\nIn my opinion,")
FRANCE_CUT = ("No, you cannot study in France with English as your native language. You need to speak French "
              "fluently so that you can understand and use all aspects of it.\n\nThis")
WORK_Q = [{"role": "user", "content": "How many hours can I work per week on a UK Student visa during my master's?"}]


@pytest.mark.parametrize("mode", ["generate", "auto"])
def test_the_unfinished_last_sentence_at_the_token_limit_is_left_out(answerer, mode, monkeypatch):
    from studyabroadgpt.serve import answer as answer_mod

    monkeypatch.setattr(answer_mod, "COMPOSE_POLICY_RULES", False)  # the generated answer is what is trimmed
    turn = answerer.prepare(WORK_Q, mode=mode)
    raw, last = run(AtTokenLimit(CUT_OFF, piece_chars=5), turn)
    assert last.finish_reason == "length" and turn.trimmed.strip() == "In my opinion,"
    assert raw.rstrip().endswith("official vacations.") and "In my opinion" not in raw
    final = answerer.finish(turn, raw)
    assert "In my opinion" not in final.content
    trimmed = next(c for c in final.gate["changes"] if c["action"] == "trimmed")
    assert trimmed["claim"] == "In my opinion," and "token limit" in trimmed["text"]


def test_a_complete_last_sentence_and_a_normal_stop_are_kept(answerer):
    turn = answerer.prepare(WORK_Q, mode="generate")
    raw, _ = run(AtTokenLimit("You can work 20 hours a week during term time.", piece_chars=4), turn)
    assert raw == "You can work 20 hours a week during term time." and not turn.trimmed
    turn = answerer.prepare(WORK_Q, mode="generate")
    raw, _ = run(ScriptedGenerator(CUT_OFF, piece_chars=5), turn)   # stopped by the model: nothing cut
    assert raw == CUT_OFF and not turn.trimmed


def test_the_stream_is_token_by_token_until_near_the_limit(answerer):
    from studyabroadgpt.serve.answer import stream_turn
    from studyabroadgpt.serve.generation import GenParams
    import asyncio

    async def pieces(max_tokens):
        turn = answerer.prepare(WORK_Q, mode="generate")
        return [p.text async for p in stream_turn(AtTokenLimit(CUT_OFF, piece_chars=5), turn,
                                                  GenParams(max_tokens=max_tokens))], turn

    far, turn = asyncio.run(pieces(400))   # far from the limit: every piece as it came, nothing held or cut
    assert all(len(p) <= 5 for p in far) and "".join(far) == CUT_OFF and not turn.trimmed
    near, turn = asyncio.run(pieces(32))
    assert "".join(near) + turn.trimmed == CUT_OFF and turn.trimmed == "In my opinion,"


def test_an_answer_without_one_complete_sentence_is_marked_cut_off(answerer):
    turn = answerer.prepare(WORK_Q, mode="generate")
    raw, _ = run(AtTokenLimit("You can work twenty hours a week during", piece_chars=4), turn)
    assert raw == "You can work twenty hours a week during …" and not turn.trimmed


def test_stream_and_non_stream_serve_the_same_trimmed_text(serve, answerer, client_for):
    from studyabroadgpt.serve.app import create_app
    from studyabroadgpt.serve.settings import ServeSettings

    gen = AtTokenLimit(FRANCE_CUT, piece_chars=3)
    with serve(create_app(gen, answerer, ServeSettings(answer_mode="generate"))) as base:
        client = client_for(base)
        q = [{"role": "user", "content": "Can I study in France without knowing French?"}]
        resp = client.chat.completions.create(model="m", messages=q, max_tokens=40)
        chunks = list(client.chat.completions.create(model="m", messages=q, max_tokens=40, stream=True))
    content = resp.choices[0].message.content
    assert resp.choices[0].finish_reason == "length" and not content.rstrip().endswith("This")
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    complete = FRANCE_CUT[:-len("\n\nThis")]
    assert streamed.startswith(complete) and FRANCE_CUT not in streamed   # "This" never went out
    assert chunks[-1].choices[0].finish_reason == "length"


def _final(answerer, question, raw, mode="generate"):
    turn = answerer.prepare([{"role": "user", "content": question}], mode=mode)
    return answerer.finish(turn, raw)


# Served (session 3): 'The official facts say: "<source title>"' under an invented requirement.
CHILDREN_Q = "Can I bring my two children to the UK as dependants while I do my master's?"
CHILDREN_A = ("Yes, you can bring your children as dependants. You will need an agreement between parents and tutor "
              "that explains who looks after them. The official facts say: \"Student visa - Your partner and "
              "children - GOV.UK\".")


def test_a_source_title_is_not_served_as_the_official_fact(answerer):
    final = _final(answerer, CHILDREN_Q, CHILDREN_A)
    body = final.content.split("> **Fact check")[0]
    assert "The official facts say" not in body and "Your partner and children" not in body
    leak = next(c for c in final.gate["changes"] if c["action"] == "removed_title")
    assert leak["fact_id"] == "gb.dependants.restriction" and "title" in leak["reason"]
    # the invented requirement is a rule no official fact supports, and its sentence cites none: it goes
    assert "who looks after them" not in body
    assert any(c["action"] == "removed_unverified" and "agreement between parents" in c["claim"]
               for c in final.gate["changes"])
    # auto does not serve it at all: the composed answer from the dependants rule instead
    auto = _final(answerer, CHILDREN_Q, CHILDREN_A, mode="auto")
    assert auto.mode == "compose" and "postgraduate research course" in auto.content
    assert "agreement between parents" not in auto.content


def test_a_source_title_in_an_ordinary_pointer_is_kept(answerer):
    from studyabroadgpt.serve.answer import drop_quoted_titles

    turn = answerer.prepare([{"role": "user", "content": CHILDREN_Q}])
    text = "See Student visa - Your partner and children - GOV.UK for the details [1]."
    assert drop_quoted_titles(text, turn.sources) == (text, [])


def _premises(final):
    return [p for p in final.content.split("\n\n") if p.startswith("**Check the premise:**")]


def test_commonwealth_membership_is_one_line_not_the_57_country_list(answerer):
    # Served (session 3): a Nigerian's scholarship question got the whole Schedule 3 list, twice.
    for q in ("I'm Nigerian. Which scholarships can I get for a master's in the UK?",
              "As a Nigerian, am I eligible for Commonwealth Scholarships?"):
        notes = _premises(_final(answerer, q, "Yes, Nigerians are eligible. Check the university website."))
        assert len(notes) == 1, notes
        assert "Nigeria is a Commonwealth country ([British Nationality Act 1981" in notes[0]
        assert "Antigua and Barbuda" not in notes[0] and "Zimbabwe" not in notes[0]
        assert "among the eligible ones" in notes[0]


def test_no_commonwealth_list_under_a_chevening_question(answerer):
    # Chevening's fact names no nationalities; the Commonwealth citizens list is no scheme to offer instead.
    final = _final(answerer, "I'm from Nigeria. Can I apply for Chevening to do a master's in the UK?",
                   "Yes, you can apply for Chevening. Check the Chevening website for deadlines.")
    assert "Antigua and Barbuda" not in final.content and "Commonwealth country" not in final.content
    both = _final(answerer, "As an Indian, can I apply for Chevening and the Commonwealth scholarship?",
                  "Yes, you can apply for both.")
    notes = _premises(both)
    assert len(notes) == 1 and "India is a Commonwealth country" in notes[0] and "Zimbabwe" not in both.content


def test_a_false_commonwealth_premise_is_one_cited_line(answerer):
    q = ("I'm from the Philippines, which is a Commonwealth country, so can I apply for a Commonwealth "
         "Scholarship for my master's in the UK?")
    final = _final(answerer, q, "Yes, as a citizen of a Commonwealth country you can apply.")
    note = next(n for n in _premises(final) if "57 Commonwealth countries" in n)
    assert "The Philippines is not on that list" in note and "Zimbabwe" not in note


# Served (session 3 and this session's reading): rule statements on the language of instruction, which no check
# ran on (not a policy subject), the Japanese guidance dropped for sharing only the place word "Japanese".
@pytest.mark.parametrize("question,raw,composed_from", [
    ("Can I study in Japan without speaking Japanese?",
     "You cannot study in Japan without speaking Japanese. All universities in Japan teach in Japanese, so you "
     "should start learning now.", "guide.jp.language.japanese"),
    ("Can I study in France without knowing French?",
     "No, you cannot study in France with English as your native language. You need to speak French fluently so "
     "that you can understand and use all aspects of it.", "guide.fr.language.french"),
])
def test_an_unsupported_ban_on_a_covered_destination_gets_the_composed_answer(answerer, question, raw, composed_from):
    final = _final(answerer, question, raw, mode="auto")
    assert final.mode == "compose" and "no official fact supports" in final.gate["fallback_reason"]
    assert "English-taught" in final.content and "you cannot study" not in final.content.lower()
    assert any(s["id"] == composed_from and s["cited"] for s in final.sources)


def test_a_verdict_on_a_subject_the_kb_has_no_fact_on_gets_the_honest_answer(answerer):
    # Served (lead, S6): "...many other languages taught by the Netherlands' universities and their language
    # centres abroad." — uncited, invented; nothing retrieved is on the language of instruction.
    q = "My son wants to do his bachelor's in the Netherlands. Is it true that all Dutch universities teach only in Dutch?"
    final = _final(answerer, q, "Yes, most Dutch universities teach in Dutch, with many other languages taught by the "
                                "Netherlands' universities and their language centres abroad.", mode="auto")
    assert final.mode == "compose"
    assert "no official fact on the language of instruction for the Netherlands" in final.content
    assert "language centres abroad" not in final.content


def test_soft_advice_is_not_replaced_for_its_plain_rules(answerer):
    final = _final(answerer, "How do I make friends as an international student in Canada?",
                   "Join clubs and societies at your university, go to orientation events for international "
                   "students and make friends with your classmates.", mode="auto")
    assert final.mode == "generate", final.gate.get("fallback_reason")


@pytest.mark.parametrize("question,subjects", [
    ("My daughter is 16. Can she do a summer school in the US on a tourist visa?", {"visa_rule"}),
    ("Can my wife come with me to Singapore while I do my PhD, and can she work?", {"dependants"}),
    ("Can my wife work if I bring her to Canada, and can I work too?", {"dependants", "work_hours"}),
    ("Is the Netherlands expensive for students?", {"living_costs", "tuition"}),
    ("Can I study in Japan without speaking Japanese?", {"language"}),
])
def test_what_the_question_asks(question, subjects):
    from studyabroadgpt.kb.relevance import asked_subjects

    assert asked_subjects(question) == subjects


def test_a_follow_up_on_that_visa_asks_what_the_turn_before_did():
    # Served (lead, S1): "How long does that visa last?" after the job-seeking question got "no official fact
    # on the student visa for South Korea".
    from studyabroadgpt.serve.compose import asked

    before = "Can I stay in South Korea to look for a job after I graduate?"
    assert asked("How long does that visa last?", before) == {"post_study"}
    assert asked("Which visa do I need?", "How much does it cost to live in Seoul?") == {"visa_rule"}


def test_an_answer_mostly_about_other_destinations_is_off_topic():
    # Served (lead, S3): "What is the cheapest city in Ireland for students?" answered about Dubai and Singapore.
    from studyabroadgpt.serve.checks import answer_off_topic

    q = "What is the cheapest city in Ireland for students?"
    raw = ("In 2019-20, the cheapest place was Dubai, followed by Singapore. Dubai has low rents and Singapore has "
           "cheap food, while Ireland is more expensive.")
    assert "Dubai" in answer_off_topic(q, raw) or "United Arab Emirates" in answer_off_topic(q, raw)
    assert answer_off_topic(q, "Cork and Galway are usually cheaper than Dublin for students in Ireland.") is None
    assert answer_off_topic("I'm from India. Can I work while studying in Canada?",
                            "Yes, in Canada you can work part time while you study.") is None


def test_one_sources_line_per_page(answerer):
    from studyabroadgpt.serve.answer import _sources_markdown
    from studyabroadgpt.serve.grounding import Source

    kb = answerer.kb
    # served (lead, S5, Canada loneliness): "[1] Mental health - NHS" and "[2] Mental health - NHS"
    nhs = [e for e in kb.guidance if str(e.source_url) == "https://www.nhs.uk/mental-health/"][:2]
    assert len(nhs) == 2
    md = _sources_markdown([Source(1, nhs[0]), Source(2, nhs[1])], {1, 2})
    assert md.count(str(nhs[0].source_url)) == 1 and md.splitlines()[2].startswith("[1][2] [")


# Served (this session, scope's reading on main 1de2d82, llama.cpp, auto, 256 tokens).
@pytest.mark.parametrize("question,raw", [
    ("Can I bring my parents to the UK while I study?",
     "No, it is not allowed to bring your parents to the UK while you are studying. You must always have them with "
     "you at all times when you travel abroad."),
    ("I studied at the University of Ghana. Is my degree recognised in Germany?",
     "No, your university degree is not recognized by the German education system. Your university's credentials "
     "are based on academic qualifications and research work that has been conducted abroad or within Germany."),
])
def test_an_unsupported_verdict_is_not_served(answerer, question, raw):
    final = _final(answerer, question, raw, mode="auto")
    assert final.mode == "compose" and "no official fact supports" in final.gate["fallback_reason"]
    assert raw.split(".")[0] not in final.content


def test_a_supported_verdict_is_kept(answerer, monkeypatch):
    from studyabroadgpt.serve import answer as answer_mod

    monkeypatch.setattr(answer_mod, "COMPOSE_POLICY_RULES", False)  # the verdict check alone
    final = _final(answerer, "How many hours can I work per week on a UK Student visa during my master's?",
                   "Yes, at degree level you can work up to 20 hours a week during term time and full time in "
                   "vacations.", mode="auto")
    assert final.mode == "generate", final.gate.get("fallback_reason")


def test_no_destination_rule_as_key_fact_for_a_question_naming_no_destination(answerer):
    # Lead's reading S8 (main 1de2d82): the Australian 485 age limit under "From the official source".
    final = _final(answerer, "I'm 35, am I too old to study abroad for a master's?",
                   "No, you are not too old. Many students start a master's in their thirties.")
    assert "**From the official source:**" not in final.content or "485" not in final.content


def test_a_stub_left_by_the_fact_check_is_not_served(answerer):
    # Lead's reading S2: what the gate left of "Which is cheaper ..., Germany or Poland?" was one stub sentence.
    from studyabroadgpt.serve.answer import _fails
    from studyabroadgpt.serve.gate import GateChange

    stub = "The cheapest option for an Indian student in Germany is not available."
    why = _fails(stub, [GateChange("removed", "Student Exchange Program")], [], None)
    assert why and "little of the model's answer was left" in why
    assert _fails(stub, [], [], None) is None    # nothing removed: judged as written
