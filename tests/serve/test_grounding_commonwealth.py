"""Commonwealth membership in the KB (gb.scholarships.commonwealth-citizens, Schedule 3 of the British Nationality
Act 1981): a false "Commonwealth country" premise is corrected, cited; a true one is left alone."""
from __future__ import annotations

from studyabroadgpt.kb.coverage import country_code
from studyabroadgpt.serve.premises import eligibility_list

FACT = "gb.scholarships.commonwealth-citizens"


def test_the_list_is_complete_and_every_name_resolves(answerer):
    lst = eligibility_list(answerer.kb.by_id[FACT])
    assert lst is not None and lst.complete and not lst.kinds
    # 56 countries of Schedule 3 (The Gambia restored in 2018) and the United Kingdom; the two-island names
    # split on "and" by the list reader still resolve ("Trinidad", "Tobago" → TT)
    assert len(lst.codes) == 57 and {"GB", "AG", "TT", "KN", "VC", "WS", "GM", "ZW", "TG", "GA"} <= lst.codes
    assert "PH" not in lst.codes and "US" not in lst.codes and "IE" not in lst.codes
    assert country_code("Trinidad") == "TT" and country_code("St Kitts") == "KN"


def _final(answerer, question, raw):
    turn = answerer.prepare([{"role": "user", "content": question}], mode="generate")
    return turn, answerer.finish(turn, raw)


def test_false_commonwealth_premise_is_corrected(answerer):
    q = ("I'm from the Philippines, which is a Commonwealth country, so can I apply for a Commonwealth "
         "Scholarship for my master's in the UK?")
    turn, final = _final(answerer, q, "Yes, as a citizen of a Commonwealth country you can apply for a "
                                      "Commonwealth Scholarship through the CSC.")
    assert FACT in {s.fact.id for s in turn.sources}, [s.fact.id for s in turn.sources]
    assert "The Philippines is not on that list" in final.content
    change = next(c for c in final.gate["changes"] if c["action"] == "corrected_premise" and c.get("fact_id") == FACT)
    assert change["citation"] is not None and any(s["id"] == FACT and s["cited"] for s in final.sources)


def test_true_commonwealth_premise_is_not_corrected(answerer):
    q = "As a Kenyan, which is a Commonwealth country, can I apply for a Commonwealth Scholarship in the UK?"
    _, final = _final(answerer, q, "Commonwealth Scholarships fund master's and PhD study in the UK for citizens "
                                   "of eligible low- and middle-income Commonwealth countries.")
    assert "not on that list" not in final.content
    q = "I'm from Trinidad. Is that a Commonwealth country for a Commonwealth Scholarship?"
    _, final = _final(answerer, q, "Commonwealth Scholarships fund master's and PhD study in the UK.")
    assert "not on that list" not in final.content


def test_the_scheme_for_the_nationality_is_linked_when_it_was_retrieved(answerer):
    q = "As an American, can I apply for a Chevening scholarship to study in the UK?"
    _, final = _final(answerer, q, "As an American, you can apply for a Chevening Scholarship.")
    note = next(p for p in final.content.split("\n\n") if p.startswith("**Check the premise:**"))
    assert "Marshall Scholarships" in note and "(https://www.marshallscholarship.org/)" in note
    # every [n] the answer shows is in its Sources list
    import re
    shown = {int(n) for n in re.findall(r"\[(\d+)\]", final.content)}
    listed = {s["index"] for s in final.sources if s["cited"]}
    assert shown <= listed, (shown, listed)
