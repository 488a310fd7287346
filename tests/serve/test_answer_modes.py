"""The answer path end to end with a scripted model: loop cutting and early stop, the composed floor
(compose / auto), honest out-of-scope answers, invented specifics, false premises and rule polarity."""
from __future__ import annotations

import re
import pytest

from studyabroadgpt.serve.checks import assess, find_loops, says_no_information
from studyabroadgpt.serve.generation import ScriptedGenerator

# start the generator, collect one turn through the answer path, close it (shared with the engine tests)
from .engine_helpers import answer_turn as run

LOOP = "Here is what to do:\n" + "- Check the official website for the latest visa rules.\n" * 30
WORK_Q = [{"role": "user", "content": "How many hours can I work per week on a UK Student visa during my master's?"}]
FRIENDS_Q = [{"role": "user", "content": "How do I make friends as an international student?"}]


def test_looping_model_is_stopped_early_and_the_loop_cut(answerer):
    gen = ScriptedGenerator(LOOP, piece_chars=6)
    turn = answerer.prepare(WORK_Q, mode="generate")
    raw, last = run(gen, turn)
    assert turn.loop_stopped and last.finish_reason == "stop"
    assert len(raw) < len(LOOP) / 3                       # the model was not left to loop to max_tokens
    final = answerer.finish(turn, raw)
    assert final.mode == "generate" and not find_loops(final.content)
    assert final.content.count("Check the official website for the latest visa rules.") == 1
    assert any(c["action"] == "cut_loop" for c in final.gate["changes"])


def test_auto_serves_the_composed_answer_when_the_model_loops(answerer):
    gen = ScriptedGenerator(LOOP, piece_chars=6)
    turn = answerer.prepare(WORK_Q, mode="auto")
    raw, _ = run(gen, turn)
    final = answerer.finish(turn, raw)
    assert final.mode == "compose" and final.gate["mode"] == "compose" and final.gate["requested_mode"] == "auto"
    assert "repetition loop" in final.gate["fallback_reason"]
    # The composed answer states the official fact, cited, and lists its source.
    assert re.search(r"20 hours a week during term time.*\[\d\]", final.content) and "**Sources**" in final.content
    assert not find_loops(final.content)
    # A streaming client saw the looping text first: the tail says it is replaced and carries the new answer.
    assert "did not pass our checks" in final.tail and final.content in final.tail


def test_compose_mode_needs_no_model(answerer):
    gen = ScriptedGenerator("never used")
    turn = answerer.prepare(WORK_Q, mode="compose")
    raw, _ = run(gen, turn)
    assert gen.calls == [] and raw == ""
    final = answerer.finish(turn, raw)
    assert final.mode == "compose" and "20 hours a week" in final.content
    assert final.tail == final.content                    # nothing was streamed before the last chunk
    cited = [s for s in final.sources if s["cited"]]
    assert cited and all(s["url"].startswith("https://") for s in cited)


def test_auto_keeps_a_good_generated_answer(answerer, monkeypatch):
    from studyabroadgpt.serve import answer as answer_mod

    reply = "At degree level you can work up to 20 hours a week during term time and full time in vacations."
    turn = answerer.prepare(WORK_Q, mode="auto")
    # a rule question with facts on it is answered from the facts (answer.COMPOSE_POLICY_RULES) ...
    final = answerer.finish(turn, reply)
    assert final.mode == "compose" and "asks a rule (work_hours)" in final.gate["fallback_reason"]
    assert re.search(r"20 hours a week during term time.*\[\d\]", final.content)
    # ... and without that rule a good generated answer is kept, cited
    monkeypatch.setattr(answer_mod, "COMPOSE_POLICY_RULES", False)
    final = answerer.finish(turn, reply)
    assert final.mode == "generate" and "fallback_reason" not in final.gate
    assert re.search(r"20 hours a week \[\d\]", final.content)


def test_auto_falls_back_when_specifics_cannot_be_verified(answerer):
    reply = ("Apply to the Canadian Council of Scholarships and the MIT Open University fund "
             "(www.denei.govt.nz) before applying for your visa.")
    turn = answerer.prepare(WORK_Q, mode="auto")
    final = answerer.finish(turn, reply)
    assert final.mode == "compose" and "could not be verified" in final.gate["fallback_reason"]
    assert "denei" not in final.content and "Canadian Council" not in final.content


def test_auto_gives_the_fact_check_reason_when_it_removed_the_whole_answer(answerer):
    # An answer whose only sentence is invented (a mark, no cited fact) is emptied by the gate: the student is
    # told the fact check removed it, not that the model wrote nothing.
    reply = "The Canadian Council of Scholarships decides how many hours international students may work."
    final = answerer.finish(answerer.prepare(WORK_Q, mode="auto"), reply)
    why = final.gate["fallback_reason"]
    assert final.mode == "compose" and "empty" not in why and "nothing of the model's answer was left" in why
    assert "Canadian Council" not in final.content and "20 hours a week" in final.content
    # a model that really wrote nothing is still told so
    final = answerer.finish(answerer.prepare(WORK_Q, mode="auto"), "  ")
    assert final.gate["fallback_reason"] == "the model's answer was empty"


def test_generate_mode_marks_invented_names_and_removes_fake_urls(answerer):
    reply = ("You can work 20 hours a week during term. The Canadian Council of Scholarships can help; see "
             "www.denei.govt.nz for details.")
    turn = answerer.prepare(WORK_Q, mode="generate")
    final = answerer.finish(turn, reply)
    assert "denei" not in final.content
    # the invented council's sentence cites no fact: the student reads the cited work rule only
    assert final.content.startswith("You can work 20 hours a week [1] during term.\n\n> **Fact check:**")
    assert "Canadian Council" not in final.content.split("> **Fact check:**")[0]
    a = assess(final.content, WORK_Q[0]["content"], answerer.kb)
    assert a.foreign_urls == [] and a.unverified_entities == []
    actions = {c["action"] for c in final.gate["changes"]}
    assert {"removed_url", "removed_unverified"} <= actions
    gone = next(c for c in final.gate["changes"] if c["action"] == "removed_unverified")
    assert gone["claim"] == "Canadian Council of Scholarships" and "Canadian Council" in gone["sentence"]
    reasons = [c["reason"] for c in final.gate["changes"] if c["action"] in ("removed_url", "removed_unverified")]
    assert all(reasons)                                   # every removal or mark says why


def test_out_of_scope_question_gets_an_honest_answer_and_no_facts(answerer):
    gen = ScriptedGenerator("The UCAT ANZ is required for admission.")
    q = [{"role": "user", "content": "How do I get admission to a public university in Bangladesh?"}]
    turn = answerer.prepare(q, mode="auto")
    assert turn.out_of_scope and turn.sources == [] and not turn.generates
    raw, _ = run(gen, turn)
    final = answerer.finish(turn, raw)
    assert gen.calls == [] and final.mode == "out_of_scope" and final.sources == []
    assert says_no_information(final.content) and "Bangladesh" in final.content
    assert "embassy or consulate of Bangladesh" in final.content and "UCAT" not in final.content
    # generate mode keeps the model's general advice below the honest part, checked like any answer
    turn = answerer.prepare(q, mode="generate")
    assert "no official information about Bangladesh" in turn.model_messages[0]["content"]
    final = answerer.finish(turn, "Start early and contact the Dhaka Council of Admissions.")
    assert final.content.startswith("I don't have official information on Bangladesh")
    assert "Dhaka Council of Admissions (unverified)" in final.content


def test_uncovered_institution_is_named_as_not_covered(answerer):
    q = [{"role": "user", "content": "What are the admission requirements for the University of Dhaka?"}]
    final = answerer.finish(answerer.prepare(q, mode="auto"), "")
    assert final.mode == "out_of_scope" and "University of Dhaka" in final.content
    assert "admissions and international-student pages of University of Dhaka" in final.content


def test_rule_polarity_is_corrected_with_the_fact(answerer):
    q = [{"role": "user", "content": "Can I bring my wife to the UK while I do a one-year taught master's?"}]
    turn = answerer.prepare(q, mode="generate")
    final = answerer.finish(turn, "Yes, you can bring your wife to the UK during your master's.")
    fix = next(c for c in final.gate["changes"] if c["action"] == "corrected_rule")
    assert fix["fact_id"] == "gb.dependants.restriction" and fix["slot"]["rule"] == "bring_family"
    assert "Yes, you can bring your wife" not in final.content
    assert "only if they study a postgraduate research course" in final.content


def test_false_premises_are_corrected_with_citations(answerer):
    q = [{"role": "user", "content": "I heard I can work 40 hours a week during term on a UK student visa. "
                                     "Is that right?"}]
    turn = answerer.prepare(q, mode="generate")
    final = answerer.finish(turn, "Yes, you can work 40 hours a week during term.")
    note = next(c for c in final.gate["changes"] if c["action"] == "corrected_premise")
    assert note["replacement"] == "20 hours per week" and note["citation"]
    assert "official figure is 20 hours per week" in final.content
    q = [{"role": "user", "content": "Which US visa do I need to study in Toronto?"}]
    final = answerer.finish(answerer.prepare(q, mode="generate"), "You need an F-1 visa.")
    assert "Toronto is in Canada, not United States" in final.content
    q = [{"role": "user", "content": "Do I need the UCAT for medical school in the USA?"}]
    final = answerer.finish(answerer.prepare(q, mode="generate"), "Yes, you need a good UCAT score.")
    assert "none of our official sources for United States names the UCAT" in final.content
    # the note cites the destination's own rule on the same subject (the MCAT), never another country's
    note = next(c for c in final.gate["changes"] if c["action"] == "corrected_premise")
    assert note["fact_id"].startswith("us.admissions.")


def test_key_fact_added_only_when_on_topic(answerer):
    # retrieval ranks an Australian rule first for this UK question: it must never be added as "the key fact"
    turn = answerer.prepare(WORK_Q, mode="generate")
    final = answerer.finish(turn, "Plan your week around your classes and keep your visa documents safe.")
    added = [c for c in final.gate["changes"] if c["action"] == "added_key_fact"]
    by_n = {s.n: s.fact for s in turn.sources}
    assert added and all(by_n[c["citation"]].destination in ("GB", "any") for c in added)


def test_every_change_has_one_description(answerer):
    from studyabroadgpt.serve.chat import _gate_summary

    q = [{"role": "user", "content": "How much money do I need to show for a UK student visa if I study in London?"}]
    final = answerer.finish(answerer.prepare(q, mode="generate"), "In London you must show £1,900 per month.")
    change = next(c for c in final.gate["changes"] if c["action"] == "corrected")
    assert change["text"] == "“£1,900 per month” corrected to the official GBP 1,483 per month [1]"
    assert change["text"] in _gate_summary(final.gate)
    assert change["text"] in final.tail


def test_bad_mode_is_a_clear_error(answerer):
    with pytest.raises(ValueError, match="generate, compose, auto"):
        answerer.prepare(WORK_Q, mode="fast")


def test_compose_mode_per_request_over_http_and_stream(serve, answerer, client_for):
    from studyabroadgpt.serve.app import create_app

    gen = ScriptedGenerator("never used")
    with serve(create_app(gen, answerer)) as base:
        client = client_for(base)
        resp = client.chat.completions.create(model="m", messages=WORK_Q, extra_body={"answer_mode": "compose"})
        gate = resp.model_extra["gate"]
        assert gate["mode"] == "compose" and "20 hours a week" in resp.choices[0].message.content
        chunks = list(client.chat.completions.create(model="m", messages=WORK_Q, stream=True,
                                                     extra_body={"answer_mode": "compose"}))
        streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert streamed == chunks[-1].model_extra["gate"]["content"]  # a plain client gets the whole answer
        bad = client.chat.completions.with_raw_response.create
        import openai

        with pytest.raises(openai.BadRequestError):
            bad(model="m", messages=WORK_Q, extra_body={"answer_mode": "fast"})
    assert gen.calls == []


@pytest.mark.integration
def test_real_smollm2_answers_with_the_new_decoding_and_checks(smollm2, answerer):
    """The real SmolLM2-135M on one real-style question: what is served has no loop, no foreign URL and no
    unmarked invented name, whichever mode ``auto`` ends up serving."""
    from studyabroadgpt.eval.prompts import load_real_style, messages_of
    from studyabroadgpt.serve.hf_engine import HFGenerator

    model, tok = smollm2
    gen = HFGenerator(model, tok, model_name="smollm2")
    row = next(r for r in load_real_style() if r["id"] == "soft-budget-london")
    turn = answerer.prepare(messages_of(row), mode="auto")

    raw, last = run(gen, turn, max_tokens=96)
    final = answerer.finish(turn, raw)
    a = assess(final.content, row["prompt"], answerer.kb)
    assert final.mode in ("generate", "compose") and final.content.strip()
    assert not a.looping and a.foreign_urls == [] and a.unverified_entities == []
    assert "**Sources**" in final.content or final.mode == "generate"


# Raw SmolLM2-135M answer to "What documents do I need for a US F-1 visa interview?" (rp 1.15 + 4-gram ban
# applied over the prompt: the model could not quote its facts and wrote this).
F1_NONSENSE = ("The official document required by the USF-US is a FASB-D-A-C-E-I-M-L-Y-N-S-T-Z-X-W-H-J-K-R-U-G-O-"
               "P-Q-Y-Y-Z-Y-YONA-TO-ME-AL-SO-THESIS-AND-THE-OTHER-ONE-OF-TWELLS-INVALIDITY-BY-DEATH-OR-NOTIFYING")


def test_auto_replaces_degenerate_text_with_the_composed_answer(answerer):
    q = [{"role": "user", "content": "What documents do I need for a US F-1 visa interview?"}]
    turn = answerer.prepare(q, mode="auto")
    final = answerer.finish(turn, F1_NONSENSE)
    assert final.mode == "compose" and "degenerated into nonsense" in final.gate["fallback_reason"]
    assert "FASB-D-A-C-E" in final.gate["fallback_reason"]
    deg = next(c for c in final.gate["changes"] if c["action"] == "degenerate")
    assert deg["kind"] == "letter_chain" and deg["text"].startswith("the model's text degenerated")
    assert "FASB" not in final.content and re.search(r"\[\d\]", final.content)
    assert "did not pass our checks" in final.tail
    # generate mode serves what the model wrote (the student asked for the model) less what the gate removes:
    # the nonsense sentence carries an unverified name and cites no fact, so it goes there too, recorded
    gen = answerer.finish(answerer.prepare(q, mode="generate"), F1_NONSENSE)
    assert gen.mode == "generate" and "FASB" not in gen.content
    assert any(c["action"] == "removed_unverified" and "FASB" in c["sentence"] for c in gen.gate["changes"])


def test_auto_never_serves_nonsense_even_with_nothing_to_compose(answerer):
    turn = answerer.prepare(FRIENDS_Q, mode="auto")
    nonsense = "Make friends at the " + "-".join("ABCDEFGHIJKLMNOP") + " club and the SOCIETY-OF-ALL-THE-PEOPLE-HERE."
    final = answerer.finish(turn, nonsense)
    assert final.mode == "compose" and "ABCD" not in final.content
    assert "degenerated" in final.gate["fallback_reason"]


def _premise(final, action):
    return [c for c in final.gate["changes"] if c["action"] == action]


def test_nationality_not_on_a_complete_list_is_corrected_with_the_fact(answerer):
    q = [{"role": "user", "content": "I'm from India, so I don't need an MVV to study in the Netherlands, right?"}]
    turn = answerer.prepare(q, mode="generate")
    final = answerer.finish(turn, "That's right, Indian students do not need an MVV for the Netherlands.")
    fix = _premise(final, "corrected_premise")
    assert [c["fact_id"] for c in fix] == ["nl.student-visa.mvv-exempt"]
    assert fix[0]["slot"]["origin"] == "IN" and "US" in fix[0]["slot"]["listed"]
    assert "India is not on that list, so it does not apply to citizens of India" in final.content
    cited = {s["id"] for s in final.sources if s["cited"]}
    assert "nl.student-visa.mvv-exempt" in cited or "ind.nl" in final.content
    # a nationality that IS on the list gets no premise note
    q = [{"role": "user", "content": "I'm Canadian. Do I need an MVV to study in the Netherlands?"}]
    final = answerer.finish(answerer.prepare(q, mode="generate"), "No, Canadians do not need an MVV.")
    assert not _premise(final, "corrected_premise") and not _premise(final, "unverified_premise")


def test_group_lists_decide_by_continent(answerer):
    q = [{"role": "user", "content": "As a Nigerian, can I study in Ireland without a visa?"}]
    final = answerer.finish(answerer.prepare(q, mode="generate"), "Yes, you can study in Ireland without a visa.")
    fix = _premise(final, "corrected_premise")
    assert [c["fact_id"] for c in fix] == ["ie.student-visa.eea-exempt"]
    assert "Nigeria is not on that list" in final.content
    assert not _premise(final, "unverified_premise")   # the list of a *kind* of country adds nothing here


def test_a_list_that_does_not_settle_nationality_says_so_and_names_the_scheme_that_fits(answerer):
    q = [{"role": "user", "content": "I'm from Ethiopia. Which Commonwealth Scholarship should I apply for?"}]
    # The KB's list of Commonwealth countries (gb.scholarships.commonwealth-citizens) settles Ethiopia when it is
    # retrieved; the Commonwealth Scholarships fact alone ("eligible low- and middle-income Commonwealth
    # countries") does not on its own: not retrieved, the membership fact is still read from the KB, in one line
    # (scope helper: the 57-name list is not quoted).
    sources = [s for s in answerer.prepare(q, mode="generate").sources
               if s.fact.id != "gb.scholarships.commonwealth-citizens"]
    from studyabroadgpt.serve.premises import premise_notes
    notes = premise_notes(answerer.auditor, q[0]["content"], "Apply for the Commonwealth Master's Scholarship.",
                          sources)
    assert any(c.action == "corrected_premise" and c.fact_id == "gb.scholarships.commonwealth" for _, c in notes)
    assert any("Ethiopia is not a Commonwealth country ([British Nationality Act" in n for n, _ in notes)
    assert not any("Zimbabwe" in n for n, _ in notes)


def test_a_complete_list_settles_the_commonwealth_premise(answerer):
    # (retrieval helper) since the KB holds the Schedule 3 list, "the US is a Commonwealth country" is corrected
    q = [{"role": "user", "content": "I'm from the United States. Which Commonwealth Scholarship should I apply for?"}]
    final = answerer.finish(answerer.prepare(q, mode="generate"), "Apply for the Commonwealth Master's Scholarship.")
    fix = _premise(final, "corrected_premise")
    assert [c["fact_id"] for c in fix] == ["gb.scholarships.commonwealth-citizens"]
    assert "The United States is not on that list" in final.content
    assert "Marshall Scholarships fund graduate study in the UK for US citizens" in final.content
    assert not _premise(final, "unverified_premise")    # the complete list settles it


def test_answer_path_uses_only_calibrated_relevant_hits(answerer):
    searcher = answerer.searcher
    assert searcher.calibration is not None and searcher.threshold == searcher.calibration.threshold
    for text in ["How many hours can I work per week on a UK Student visa during my master's?",
                 "How do I make friends as an international student?",
                 "What documents do I need for a US F-1 visa interview?"]:
        turn = answerer.prepare([{"role": "user", "content": text}], mode="generate")
        ranked = searcher.search(text, k=answerer.top_k)
        kept = searcher.relevant(text, k=answerer.top_k)
        assert [s.fact.id for s in turn.sources] == [h.fact.id for h in kept]
        assert all(s.relevance >= searcher.threshold for s in turn.sources)
        if text.startswith("How do I make friends"):
            # soft advice: the ranking still returns entries, the threshold keeps none of the weak ones
            assert len(ranked) == answerer.top_k and len(turn.sources) < len(ranked)


def test_scholarship_without_a_nationality_list_points_to_the_one_that_fits(answerer):
    q = [{"role": "user", "content": "As an American, can I apply for a Chevening scholarship to study in the UK?"}]
    final = answerer.finish(answerer.prepare(q, mode="generate"), "Yes, Americans can apply for Chevening.")
    note = _premise(final, "unverified_premise")
    assert [c["fact_id"] for c in note] == ["gb.scholarships.chevening"]
    assert note[0]["slot"]["alternative"] == "gb.scholarships.marshall-rhodes"
    assert "does not say which nationalities are eligible" in final.content
    assert "Marshall Scholarships fund graduate study in the UK for US citizens" in final.content


def test_follow_up_gets_the_key_fact_of_the_country_it_asks_about(answerer):
    # the real SmolLM2 answer to "And for Canada?" repeated the UK rule from the turn before
    q = [{"role": "user", "content": "How many hours can I work per week on a UK Student visa during my master's?"},
         {"role": "assistant", "content": "At degree level you can work up to 20 hours a week during term time."},
         {"role": "user", "content": "And for Canada?"}]
    turn = answerer.prepare(q, mode="generate")
    final = answerer.finish(turn, "At degree level you can work up to 20 hours a week during term time and "
                                  "full-time in official vacations.")
    assert "ca.work.off-campus" in [s.fact.id for s in turn.sources]
    # the Canadian rule is what the student reads, cited (the UK figure corrected to it, or the fact added)
    cited = [s for s in final.sources if s["cited"]]
    assert cited and {s["destination"] for s in cited} == {"CA"}
    assert "24 hours" in final.content
    composed = answerer.finish(answerer.prepare(q, mode="compose"), "")
    cited = [s for s in composed.sources if s["cited"]]
    assert cited and all(s["destination"] in ("CA", None, "any") for s in cited)


def test_a_test_most_destinations_name_is_not_a_false_premise(answerer):
    # served: "none of our official sources for Ireland asks for the IELTS; our sources name it for Australia, ..."
    q = [{"role": "user", "content": "Is IELTS 6.0 enough for a postgraduate course in Ireland?"}]
    final = answerer.finish(answerer.prepare(q, mode="generate"), "Check the university's English requirement.")
    assert "asks for the IELTS" not in final.content
    assert not [c for c in final.gate["changes"] if c["action"] == "corrected_premise"]
    q = [{"role": "user", "content": "What GRE score do I need for a taught master's in the UK?"}]
    final = answerer.finish(answerer.prepare(q, mode="generate"), "You need a GRE score of 320.")
    assert "none of our official sources for United Kingdom names the GRE" in final.content
    # the UK's only admissions-test fact is the medical schools' UCAT rule: not about this question, not cited
    note = next(c for c in final.gate["changes"] if c["action"] == "corrected_premise")
    assert "fact_id" not in note and "UCAT" not in final.content


def test_degenerate_text_is_judged_before_the_gate_marks_it(answerer):
    # the quickstart adapter's answer to "visa?": a copied fact line whose date the gate would mark unverified
    q = [{"role": "user", "content": "visa?"}]
    raw = ("[3] (United States, student visa, as of 2019-07-28) International students need an F-1 visa. "
           "Source: Student Visa - travel.state.gov.")
    final = answerer.finish(answerer.prepare(q, mode="auto"), raw)
    assert final.mode == "compose" and "copied its instructions" in final.gate["fallback_reason"]


# ------------------------------------------------------------------------------------------------- issue 10, stop 19
# Each raw text below is what SmolLM2-135M-Instruct (default, auto mode, 120 tokens) wrote when the question was
# put to `sagpt serve` through the openai client (runs/s3, 2026-12-02).

F1_RAW = ('The United States does not have a visa that allows students to work 40 hours per week on an F-1 visa. '
          'The US Department of Education has changed the definition of a "visa" from a student\'s academic '
          'status, which is based solely on their education and skills in accordance with the US Constitution.\n\n'
          'A more accurate way to describe this situation would be: "the current system for working on a F-1 '
          'visas requires additional information about your employment history."')


def test_invented_rule_change_is_removed_and_an_unsupported_rule_marked(answerer):
    q = [{"role": "user", "content": "Can I work 40 hours a week on an F-1 visa in the US?"}]
    final = answerer.finish(answerer.prepare(q, mode="generate"), F1_RAW + "\n\nCheck the international "
                            "office's page for the latest rules.")
    assert "Department of Education has changed" not in final.content
    removed = [c for c in final.gate["changes"] if c["action"] == "removed_rule"]
    assert len(removed) == 1 and removed[0]["kind"] == "rule_change"
    assert "no retrieved official fact supports" in removed[0]["reason"]
    marked = [c for c in final.gate["changes"] if c["action"] == "marked_unverified" and c.get("kind") == "rule"]
    assert marked and "employment history (unverified)" in final.content
    assert "Check the international office's page for the latest rules." in final.content   # advice stays
    assert "20 hours per week" in final.content                                           # the premise note
    # auto mode: two doubtful rule sentences are worse than the composed floor
    final = answerer.finish(answerer.prepare(q, mode="auto"), F1_RAW)
    assert final.mode == "compose" and "Department of Education" not in final.content


def test_rule_words_in_soft_advice_are_not_policy(answerer):
    q = [{"role": "user", "content": "How do I make friends as an international student?"}]
    text = "You must be open to new people. Clubs have changed how students meet. Join a society in your first week."
    final = answerer.finish(answerer.prepare(q, mode="generate"), text)
    assert not [c for c in final.gate["changes"] if c["action"] == "removed_rule" or c.get("kind") == "rule"]
    assert text in final.content


def test_a_flat_no_under_a_conditional_partner_rule_is_replaced(answerer):
    raw = ("No, your husband cannot work full-time in Australia. Plan your budget with your husband before "
           "you travel.")
    for question in ("Can my husband work full time in Australia?",
                     "Can my husband work full time in Australia while I do my master's there?"):
        final = answerer.finish(answerer.prepare([{"role": "user", "content": question}], mode="generate"), raw)
        fix = [c for c in final.gate["changes"] if c["action"] == "corrected_rule"]
        assert [c["fact_id"] for c in fix] == ["au.dependants.family"], question
        assert "cannot work full-time" not in final.content
        assert final.content.startswith("Australian Student visa holders can include their partner")
    assert "master's or doctoral" in fix[0]["reason"]
    # a bachelor's student's partner: "cannot work full time" is what the rule says — left alone
    q = [{"role": "user", "content": "Can my husband work full time in Australia while I do my bachelor's?"}]
    final = answerer.finish(answerer.prepare(q, mode="generate"), raw)
    assert not [c for c in final.gate["changes"] if c["action"] == "corrected_rule"]


def test_a_contradicted_yes_no_does_not_stay_above_the_eligibility_correction(answerer):
    q = [{"role": "user", "content": "As a Ghanaian, do I need a visa for Ireland?"}]
    raw = "No, you do not need a visa for Ireland. You can study in Ireland without one.\n\nApply to a college early."
    final = answerer.finish(answerer.prepare(q, mode="generate"), raw)
    assert "do not need a visa for Ireland" not in final.content and "without one" not in final.content
    assert final.content.startswith("**Check the premise:** our official source lists whose citizens")
    assert "Ghana is not on that list" in final.content and "Apply to a college early." in final.content
    fixed = [c["claim"] for c in final.gate["changes"] if c["action"] == "corrected_rule"]
    assert fixed == ["No, you do not need a visa for Ireland.", "You can study in Ireland without one."]
    # the right answer for a Ghanaian is left alone, and never "corrected" into the exemption
    final = answerer.finish(answerer.prepare(q, mode="generate"), "Yes, as a Ghanaian you need a visa for Ireland.")
    assert final.content.startswith("Yes, as a Ghanaian you need a visa for Ireland.")
    assert not [c for c in final.gate["changes"] if c["action"] == "corrected_rule"]


def test_the_adapters_reversed_self_employment_rule_is_corrected(answerer):
    # the quickstart adapter's copy of the fact, reversed (its "(United Kingdom, work rights, …)" prefix aside)
    q = [{"role": "user", "content": "Can I work while studying in the UK on a student visa if my course is below "
                                     "degree level?"}]
    raw = ("Yes, you can work while studying in the UK on a student visa if your course is below degree level. "
           "Students working at degree level with a higher education provider may be self-employed or fill full "
           "permanent vacancies during official vacations.")
    final = answerer.finish(answerer.prepare(q, mode="generate"), raw)
    fix = [c for c in final.gate["changes"] if c["action"] == "corrected_rule"]
    assert [c["slot"]["rule"] for c in fix] == ["self_employment"]
    assert "may be self-employed or fill full permanent" not in final.content
    assert "no Student visa holder may be self-employed" in final.content


def test_a_test_premise_note_cites_the_destinations_own_fact(answerer):
    q = [{"role": "user", "content": "I'm from Pakistan. Should I take IELTS or Duolingo for Australia?"}]
    raw = "The choice between IELTS and Duolingo depends on your personal preference."
    final = answerer.finish(answerer.prepare(q, mode="generate"), raw)
    notes = [c for c in final.gate["changes"] if c["action"] == "corrected_premise"]
    assert [c["fact_id"] for c in notes] == ["au.english.student-visa"]
    assert "F-1" not in final.content and "Australia names the Duolingo English Test" in final.content


def test_a_follow_up_to_a_policy_question_is_a_policy_answer(answerer):
    # served (default, auto, 120 tokens) to the 485 follow-up of the real-style set
    q = [{"role": "user", "content": "What visa lets me work in Australia after graduating?"},
         {"role": "assistant", "content": "The Temporary Graduate visa (subclass 485)."},
         {"role": "user", "content": "Is there an age limit for that?"}]
    raw = ("The Temporary Graduate visa (subclass 485) is a visa that allows you to work in Australia after "
           "graduating. The maximum allowed age was set at 21 years old by the Australian Labor Party in 2013.")
    final = answerer.finish(answerer.prepare(q, mode="generate"), raw)
    assert "Australian Labor Party" not in final.content
    assert [c["kind"] for c in final.gate["changes"] if c["action"] == "removed_rule"] == ["rule_change"]
